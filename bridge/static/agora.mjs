// The Agora Web SDK, as the bridge's pages load it (the console at / and the kiosk at /kiosk).

const AGORA_TIMEOUT_MS = 5000;

/**
 * The Agora Web SDK this bridge is configured with (BRIDGE_AGORA_SDK_URL / BRIDGE_AGORA_SDK_INTEGRITY),
 * rendered by the server into <html data-agora-sdk… >. Never taken from the page's own URL: a script
 * URL from the query string would run in this origin, next to the API key in sessionStorage.
 */
export function agoraSdk() {
  const { agoraSdk: src = "", agoraSdkIntegrity: integrity = "" } = document.documentElement.dataset;
  let url;
  try { url = new URL(src); } catch { return null; }
  return url.protocol === "https:" ? { src: url.href, integrity } : null;
}

/**
 * Load the Agora Web SDK with a dynamic script tag; resolves to AgoraRTC or null (offline is normal).
 * @param {{off?: boolean, timeoutMs?: number}} [opts] `off`: the page was asked not to show video
 */
export function loadAgora({ off = false, timeoutMs = AGORA_TIMEOUT_MS } = {}) {
  if (window.AgoraRTC) return Promise.resolve(window.AgoraRTC);
  if (off) return Promise.resolve(null);
  const sdk = agoraSdk();
  if (!sdk) return Promise.resolve(null);
  return new Promise((resolve) => {
    const script = document.createElement("script");
    const done = (value) => { clearTimeout(timer); resolve(value); };
    const timer = setTimeout(() => { script.remove(); resolve(null); }, timeoutMs);
    if (sdk.integrity) {
      script.integrity = sdk.integrity; // the browser refuses the file unless it has this hash
      script.crossOrigin = "anonymous"; // SRI on a cross-origin script needs a CORS request
    }
    script.src = sdk.src;
    script.async = true;
    script.onload = () => done(window.AgoraRTC || null);
    script.onerror = () => { script.remove(); done(null); };
    document.head.append(script);
  });
}
