// The kiosk page: pick an avatar, open a room, speak/ask, watch replies and the avatar's state.
// No framework, no build step: plain DOM on top of the bridge's JS client.
import { BridgeClient, BridgeError } from "./bridge.mjs";
import { loadAgora } from "./agora.mjs";

const KEY_STORAGE = "a2e-bridge.apiKey";
const ROOM_STORAGE = "a2e-bridge.roomId";
const MAX_LOG = 200;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

/** What the page holds; `window.kiosk` exposes it for debugging and tests. */
const kiosk = {
  client: null,
  room: null,
  avatars: [],
  rtc: null, // the Agora client while the video is joined
  speakingHistory: [],
  agora: null, // promise of window.AgoraRTC or null
};
window.kiosk = kiosk;

// -- small helpers ------------------------------------------------------------------------------

function storage() {
  try { return window.sessionStorage; } catch { return null; }
}

function makeClient() {
  const apiKey = storage()?.getItem(KEY_STORAGE) || undefined;
  kiosk.client = new BridgeClient({ baseUrl: location.origin, apiKey });
  return kiosk.client;
}

function show(el, visible) {
  el.hidden = !visible;
}

function setError(el, message) {
  el.textContent = message || "";
  show(el, Boolean(message));
}

function describeError(err) {
  if (err instanceof BridgeError) return `${err.message} (${err.code})`;
  return String(err?.message || err);
}

function timeOf(date = new Date()) {
  return date.toLocaleTimeString([], { hour12: false });
}

function setConnStatus(status, text) {
  const el = $("conn-status");
  el.dataset.status = status;
  el.textContent = text;
}

function log(kind, text, extra = {}) {
  const li = document.createElement("li");
  li.setAttribute("data-testid", kind === "ack" ? "ack" : "log-entry");
  li.dataset.kind = kind;
  for (const [k, v] of Object.entries(extra)) li.dataset[k] = String(v);
  const time = document.createElement("time");
  time.textContent = timeOf();
  const label = document.createElement("span");
  label.className = "kind";
  label.textContent = kind.replace("_", " ");
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(time, label, body);
  const list = $("log");
  list.prepend(li);
  while (list.children.length > MAX_LOG) list.lastElementChild.remove();
  return li;
}

// -- avatars and the API key -------------------------------------------------------------------

async function loadAvatars() {
  const select = $("avatar-select");
  select.disabled = true;
  $("open-room").disabled = true;
  setError($("setup-error"), "");
  try {
    kiosk.avatars = await kiosk.client.avatars();
  } catch (err) {
    if (err.status === 401) {
      askForKey(storage()?.getItem(KEY_STORAGE) ? "The bridge refused this key." : "");
      select.innerHTML = '<option value="">API key required</option>';
      return false;
    }
    select.innerHTML = '<option value="">Could not load avatars</option>';
    setError($("setup-error"), `Could not load the avatars: ${describeError(err)}`);
    return false;
  }
  show($("auth-panel"), false);
  select.replaceChildren();
  for (const a of kiosk.avatars) {
    const option = document.createElement("option");
    option.value = a._id;
    const extra = [a.language, a.gender].filter(Boolean).join(", ");
    option.textContent = extra ? `${a.name} (${extra})` : a.name;
    select.append(option);
  }
  if (!kiosk.avatars.length) {
    select.innerHTML = '<option value="">No streaming avatars available</option>';
    return false;
  }
  select.disabled = false;
  $("open-room").disabled = false;
  return true;
}

function askForKey(message) {
  show($("auth-panel"), true);
  setError($("auth-error"), message);
  $("api-key").focus();
}

$("auth-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  storage()?.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  makeClient();
  if (await loadAvatars()) await resumeRoom();
});

// -- opening a room ----------------------------------------------------------------------------

$("setup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("open-room");
  button.disabled = true;
  button.textContent = "Opening…";
  setError($("setup-error"), "");
  try {
    const expire = Number($("expire-seconds").value) || undefined;
    const room = await kiosk.client.createRoom({
      avatarId: $("avatar-select").value || undefined,
      qaContext: $("qa-context").value.trim() || undefined,
      expireSeconds: expire,
      forwardEvents: true, // this page forwards the Agora channel's stream-messages (rtc_event)
    });
    await attachRoom(room);
  } catch (err) {
    if (err.status === 401) askForKey("The bridge asks for a client key.");
    setError($("setup-error"), `Could not open a room: ${describeError(err)}`);
  } finally {
    button.disabled = false;
    button.textContent = "Open room";
  }
});

/** Show a room, wire its events, connect its websocket and (if possible) its video. */
async function attachRoom(room) {
  kiosk.room = room;
  storage()?.setItem(ROOM_STORAGE, room.id);
  $("replies").replaceChildren();
  $("log").replaceChildren();
  show($("replies-empty"), true);
  setSpeaking(false);
  show($("setup-panel"), false);
  show($("room-panel"), true);
  show($("new-room"), false);
  $("room-id").textContent = room.id;
  const avatar = kiosk.avatars.find((a) => a._id === room.info.avatar_id);
  $("room-avatar").textContent = avatar ? avatar.name : room.info.avatar_id || "–";
  $("room-qa").value = $("qa-context").value;
  renderRoom(room.info);
  setCommandsEnabled(false);
  wireRoom(room);
  setConnStatus("connecting", "connecting…");
  try {
    await room.connect();
  } catch (err) {
    log("error", `Could not connect: ${describeError(err)}`);
    setConnStatus("closed", "disconnected");
    return;
  }
  $("command-text").focus();
  startVideo(room);
}

function wireRoom(room) {
  room.on("connected", (e) => {
    setConnStatus("open", "connected");
    setCommandsEnabled(room.state === "open");
    log("connection", e.reconnect ? "Reconnected to the room." : "Connected to the room.");
  });
  room.on("disconnected", (e) => {
    setCommandsEnabled(false);
    setConnStatus(e.willReconnect ? "reconnecting" : "closed", e.willReconnect ? "reconnecting…" : "disconnected");
    if (e.code === 4000) log("connection", "The bridge closed the connection: the room ended.");
    else log("connection", `Connection lost (code ${e.code}${e.reason ? `: ${e.reason}` : ""})${e.willReconnect ? "; reconnecting" : ""}.`);
  });
  room.on("reconnecting", (e) => {
    setConnStatus("reconnecting", `reconnecting (attempt ${e.attempt})…`);
  });
  room.on("closed", () => {
    setConnStatus("closed", "disconnected");
    setCommandsEnabled(false);
    if (kiosk.room === room) roomEnded(room);
  });
  room.on("room", (e) => {
    renderRoom(e.room);
    setCommandsEnabled(room.connected && e.room.state === "open");
    log("room", `Room is ${e.room.state}.`);
  });
  room.on("room_closed", (e) => {
    renderRoom(e.room);
    log("room", `Room closed (${e.reason}).`);
  });
  room.on("command", (e) => log("command", `Sent to the avatar: ${e.kind} #${e.seq} “${e.text}”`, { seq: e.seq }));
  room.on("reply", showReply);
  room.on("speaking_started", () => { setSpeaking(true); log("speaking", "Avatar started speaking.", { speaking: "started" }); });
  room.on("speaking_stopped", () => { setSpeaking(false); log("speaking", "Avatar stopped speaking.", { speaking: "stopped" }); });
  room.on("error", (e) => {
    if (e.id == null) log("error", `${e.message} (${e.code})`, { code: e.code });
  });
}

function renderRoom(info) {
  if (!info) return;
  const state = $("room-state");
  state.textContent = info.state;
  state.dataset.state = info.state;
  $("room-channel").textContent = info.channel || "–";
  $("room-close-reason").textContent = info.close_reason || "–";
  kiosk.expiresAt = info.expires_at_epoch ? info.expires_at_epoch * 1000 : Date.parse(info.expires_at || "");
  renderExpiry();
  $("end-room").disabled = info.state === "closed" || info.state === "failed";
}

function renderExpiry() {
  const el = $("room-expires");
  const room = kiosk.room;
  if (!kiosk.expiresAt || Number.isNaN(kiosk.expiresAt) || !room) { el.textContent = "–"; return; }
  const when = new Date(kiosk.expiresAt);
  if (room.state !== "open") { el.textContent = timeOf(when); return; }
  const left = Math.max(0, Math.round((kiosk.expiresAt - Date.now()) / 1000));
  el.textContent = `${timeOf(when)} (in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")})`;
}
setInterval(renderExpiry, 1000);

function setCommandsEnabled(enabled) {
  for (const id of ["command-text", "ask-btn", "speak-btn", "flush-btn", "qa-update"]) $(id).disabled = !enabled;
}

function setSpeaking(on) {
  const el = $("speaking");
  el.dataset.speaking = String(on);
  $("speaking-text").textContent = on ? "Avatar is speaking" : "Avatar is quiet";
  kiosk.speakingHistory.push(on);
}

function showReply(e) {
  show($("replies-empty"), false);
  const list = $("replies");
  let li = list.querySelector(`li[data-reply-id="${CSS.escape(e.reply_id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.setAttribute("data-testid", "reply");
    li.dataset.replyId = e.reply_id;
    const text = document.createElement("span");
    text.className = "reply-text";
    const mark = document.createElement("span");
    mark.className = "reply-mark";
    li.append(text, mark);
    list.prepend(li);
  }
  li.querySelector(".reply-text").textContent = e.text; // the whole reply so far: replace
  li.dataset.final = String(Boolean(e.final));
  li.querySelector(".reply-mark").textContent = e.final ? "final" : "…";
  li.setAttribute("aria-busy", String(!e.final));
}

// -- commands ----------------------------------------------------------------------------------

$("command-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const room = kiosk.room;
  const input = $("command-text");
  const text = input.value.trim();
  if (!room || !text) return;
  const kind = ev.submitter?.value === "speak" ? "speak" : "ask";
  input.value = "";
  input.focus();
  const entry = log("pending", `${kind} “${text}” sent, waiting for the bridge…`, { command: kind });
  try {
    const ack = kind === "speak" ? await room.speak(text) : await room.ask(text);
    const positions = ack.positions || [ack.position];
    entry.remove();
    log("ack", `${kind} “${text}” accepted at queue position${positions.length > 1 ? "s" : ""} ${positions.join(", ")}`,
      { command: kind, position: ack.position, positions: positions.join(",") });
  } catch (err) {
    entry.remove();
    log("error", `${kind} “${text}” failed: ${describeError(err)}`, { command: kind, code: err.code });
  }
});

$("flush-btn").addEventListener("click", async () => {
  try {
    const ack = await kiosk.room.flush();
    log("ack", `Flushed ${ack.flushed} pending command${ack.flushed === 1 ? "" : "s"}.`, { command: "flush" });
  } catch (err) {
    log("error", `Flush failed: ${describeError(err)}`, { code: err.code });
  }
});

$("qa-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const ack = await kiosk.room.setQaContext($("room-qa").value);
    log("ack", `QA context set (${ack.chars} characters).`, { command: "set_qa_context" });
  } catch (err) {
    log("error", `Setting the QA context failed: ${describeError(err)}`, { code: err.code });
  }
});

// -- ending ------------------------------------------------------------------------------------

$("end-room").addEventListener("click", async () => {
  const room = kiosk.room;
  if (!room) return;
  const button = $("end-room");
  button.disabled = true;
  button.textContent = "Ending…";
  try {
    const info = await room.close({ leave: true });
    renderRoom(info);
    if (info.state !== "closed") log("room", `Room is ${info.state} (the bridge keeps retrying the leave).`);
  } catch (err) {
    button.disabled = false;
    log("error", `Ending the room failed: ${describeError(err)}`, { code: err.code });
  } finally {
    button.textContent = "End room";
  }
});

function roomEnded(room) {
  storage()?.removeItem(ROOM_STORAGE);
  setSpeaking(false);
  stopVideo();
  show($("new-room"), true);
  if (room.state === "open") {
    // the connection gave up while the room may still be open upstream
    log("error", "The connection to the room ended.");
  }
}

$("new-room").addEventListener("click", () => {
  kiosk.room = null;
  show($("room-panel"), false);
  show($("setup-panel"), true);
  setConnStatus("idle", "not connected");
  $("avatar-select").focus();
});

// -- video (Agora Web SDK, optional) -------------------------------------------------------------

function videoNote(text, state) {
  const note = $("video-note");
  note.textContent = text;
  note.dataset.state = state;
  show(note, Boolean(text));
}

async function startVideo(room) {
  videoNote("Loading video…", "loading");
  const AgoraRTC = await kiosk.agora;
  if (kiosk.room !== room || room.status === "closed") return;
  if (!AgoraRTC) {
    videoNote("Video unavailable (Agora Web SDK not reachable) — commands and events still work.", "unavailable");
    return;
  }
  const info = room.info;
  try {
    AgoraRTC.setLogLevel?.(3);
    const rtc = AgoraRTC.createClient({ mode: "rtc", codec: "vp8" });
    kiosk.rtc = rtc;
    AgoraRTC.onAutoplayFailed = () => show($("audio-unlock"), true);
    rtc.on("user-published", async (user, mediaType) => {
      await rtc.subscribe(user, mediaType);
      if (mediaType === "video") {
        videoNote("", "playing");
        user.videoTrack.play($("video-box"), { fit: "contain" });
      } else if (mediaType === "audio") {
        user.audioTrack.play();
        room.forwardRtcEvent("audio_started", user.uid);
      }
    });
    rtc.on("user-unpublished", (user, mediaType) => {
      if (mediaType === "audio") room.forwardRtcEvent("audio_stopped", user.uid);
      if (mediaType === "video") videoNote("The avatar's video stopped.", "stopped");
    });
    rtc.on("user-left", (user) => room.forwardRtcEvent("audio_stopped", user.uid));
    rtc.on("stream-message", (uid, payload) => room.forwardRtcEvent("stream_message", uid, payload));
    videoNote("Joining the avatar's channel…", "joining");
    await rtc.join(info.app_id, info.channel, info.token || null, info.uid ?? null);
    if (kiosk.rtc !== rtc) { await rtc.leave(); return; }
    videoNote("Waiting for the avatar's video…", "waiting");
  } catch (err) {
    kiosk.rtc = null;
    videoNote(`Video unavailable (${err?.message || err}) — commands and events still work.`, "error");
  }
}

function stopVideo() {
  const rtc = kiosk.rtc;
  kiosk.rtc = null;
  if (rtc) rtc.leave().catch(() => {});
  $("video-box").replaceChildren();
  const note = $("video-note");
  if (note.dataset.state !== "unavailable") videoNote("Video ended.", "ended");
}

$("audio-unlock").addEventListener("click", () => {
  show($("audio-unlock"), false);
  for (const user of kiosk.rtc?.remoteUsers || []) user.audioTrack?.play();
});

// -- start -------------------------------------------------------------------------------------

/** Resume the room this tab had open (after a reload): connects with a fresh ticket. */
async function resumeRoom() {
  const id = storage()?.getItem(ROOM_STORAGE);
  if (!id) return;
  try {
    const room = await kiosk.client.getRoom(id, { forwardEvents: true });
    if (room.state !== "open") {
      storage()?.removeItem(ROOM_STORAGE);
      return;
    }
    await attachRoom(room);
    log("room", "Resumed the room this tab had open.");
  } catch {
    storage()?.removeItem(ROOM_STORAGE);
  }
}

kiosk.agora = loadAgora({ off: params.get("video") === "off" });
makeClient();
document.documentElement.dataset.ready = "loading";
loadAvatars()
  .then((ok) => (ok ? resumeRoom() : undefined))
  .finally(() => { document.documentElement.dataset.ready = "true"; });
