// The kiosk: attract → engage → talk → "are you still there?" → release → attract, for days.
// No room is open on the attract screen (no coins spent); a touch, a key or a voice opens one;
// after the quiet time the room is left (A2E refunds the unused time). The state is on
// <html data-state>; `window.kiosk` exposes it for operators' debugging and the tests.
import { BridgeClient } from "../bridge.mjs";
import { loadAgora } from "../agora.mjs";
import { SessionStore, loadConfig, openRoom, storedRoom } from "./session.js";
import { Video } from "./video.js";
import { Voice } from "./voice.js";
import { Watchdog } from "./watchdog.js";

const KEY_STORAGE = "a2e-bridge.apiKey"; // the console's: one client key per tab
const CAPTION_HOLD_MS = 4000; // a finished answer stays on screen this long
const MAX_EVENTS = 100;

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const params = new URLSearchParams(location.search);

const kiosk = {
  state: "loading", config: null, client: null, room: null, speaking: false, inflight: 0,
  events: [], // what happened, newest last (bounded)
  counts: { opened: 0, warm: 0, rejoined: 0, replaced: 0, released: 0, watchdog: 0 },
};
window.kiosk = kiosk;

let store, video, voice, watchdog;
let opening = null; // the room being opened, shared by every interaction meanwhile
let lostRoom = false; // the bridge closed the last room under us: the next one replaces it
const timers = { idle: null, prompt: null, count: null, caption: null };

const engaged = () => kiosk.state === "engaged" || kiosk.state === "prompt";

function record(type, detail = {}) {
  kiosk.events.push({ type, at: Date.now(), ...detail });
  if (kiosk.events.length > MAX_EVENTS) kiosk.events.splice(0, kiosk.events.length - MAX_EVENTS);
  window.dispatchEvent(new CustomEvent(`kiosk:${type}`, { detail }));
}

function storageKey() {
  try { return window.sessionStorage.getItem(KEY_STORAGE) || undefined; } catch { return undefined; }
}

// -- what the screen shows -----------------------------------------------------------------------

function setState(state) {
  kiosk.state = state;
  root.dataset.state = state;
  $("prompt").hidden = state !== "prompt";
}

function conn(status, text) {
  $("conn").dataset.status = status;
  $("conn-text").textContent = text;
}

function notice(text, kind = "") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

function setSpeaking(on) {
  if (on !== kiosk.speaking) record("speaking", { on });
  kiosk.speaking = on;
  root.dataset.speaking = String(on);
  $("standin").classList.toggle("speaking", on);
}

function showHeard(text, final) {
  const el = $("heard");
  el.textContent = text;
  el.dataset.state = final ? "final" : "interim";
  el.hidden = !text;
}

function showCaption(e) {
  const el = $("caption");
  clearTimeout(timers.caption);
  el.classList.remove("fading");
  el.textContent = e.text; // the whole reply so far: replace
  el.dataset.final = String(Boolean(e.final));
  el.hidden = !e.text;
}

function fadeCaption() {
  clearTimeout(timers.caption);
  timers.caption = setTimeout(() => $("caption").classList.add("fading"), CAPTION_HOLD_MS);
}

function clearScreen() {
  showHeard("", true);
  clearTimeout(timers.caption);
  $("caption").hidden = true;
  $("caption").textContent = "";
  notice("");
  setSpeaking(false);
  // A fresh input for the next visitor: the browser's undo history (Ctrl+Z) would otherwise keep
  // every earlier visitor's typing, and the nodes it was typed into, for the page's whole life.
  const input = $("ask-text");
  const fresh = input.cloneNode(false);
  fresh.value = "";
  input.replaceWith(fresh);
}

// -- idle: quiet → "are you still there?" → release ----------------------------------------------

function activity() {
  if (kiosk.state === "prompt") setState("engaged");
  clearTimeout(timers.prompt);
  clearInterval(timers.count);
  if (kiosk.state === "engaged") {
    clearTimeout(timers.idle);
    timers.idle = setTimeout(quiet, kiosk.config.idleSeconds * 1000);
  }
}

function quiet() {
  if (kiosk.state !== "engaged") return;
  if (kiosk.speaking || kiosk.inflight || opening) { activity(); return; } // not quiet yet
  setState("prompt");
  let left = Math.ceil(kiosk.config.promptSeconds);
  $("prompt-count").textContent = `Ending in ${left} s`;
  timers.count = setInterval(() => { left = Math.max(0, left - 1); $("prompt-count").textContent = `Ending in ${left} s`; }, 1000);
  timers.prompt = setTimeout(() => release("idle"), kiosk.config.promptSeconds * 1000);
  record("prompt");
}

async function release(reason) {
  if (kiosk.state === "attract" || kiosk.state === "releasing") return;
  setState("releasing");
  for (const t of ["idle", "prompt"]) clearTimeout(timers[t]);
  clearInterval(timers.count);
  const room = kiosk.room;
  kiosk.room = null;
  root.dataset.room = "";
  store.clear();
  watchdog.reset();
  video.stop();
  if (room) {
    try { await room.close({ leave: true }); } catch { /* the bridge leaves it once idle */ }
  }
  clearScreen();
  kiosk.counts.released += 1;
  record("released", { reason, id: room?.id ?? null });
  setState("attract");
  conn("idle", "ready");
  voice.listenForWake();
}

// -- the room --------------------------------------------------------------------------------------

function attach(room) {
  kiosk.room = room;
  root.dataset.room = room.id;
  // a room being left (release) may still say something: only the current room reaches the screen
  const on = (type, fn) => room.on(type, (e) => { if (kiosk.room === room) fn(e); });
  on("connected", () => conn("open", "connected"));
  on("disconnected", (e) => conn(e.willReconnect ? "reconnecting" : "closed",
    e.willReconnect ? "reconnecting…" : "disconnected"));
  on("reconnecting", () => conn("reconnecting", "reconnecting…"));
  on("ticket", (t) => store.ticket(room.id, t.ws_ticket, t.expires_in));
  on("reply", (e) => { showCaption(e); activity(); });
  on("speaking_started", () => { setSpeaking(true); watchdog.started(); activity(); });
  on("speaking_stopped", () => {
    setSpeaking(false);
    watchdog.stopped();
    fadeCaption();
    activity();
  });
  on("closed", (e) => roomGone(room, e));
}

/** The bridge closed the room (expiry, upstream gone, DELETE elsewhere): replaced on the next interaction. */
function roomGone(room, e) {
  kiosk.room = null;
  root.dataset.room = "";
  lostRoom = true;
  store.clear();
  watchdog.reset();
  video.stop();
  setSpeaking(false);
  conn("closed", "disconnected");
  record("room_lost", { id: room.id, code: e.code });
}

function ensureRoom() {
  if (kiosk.room && kiosk.room.status !== "closed") return Promise.resolve(kiosk.room);
  if (!opening) opening = openForVisitor().finally(() => { opening = null; });
  return opening;
}

async function openForVisitor() {
  conn("connecting", "connecting…");
  let opened;
  try {
    opened = await openRoom(kiosk.client, kiosk.config);
  } catch (err) {
    conn("closed", "not connected");
    if (err.status === 401) askForKey();
    notice("The avatar is not available right now. Please try again in a moment.", "open_failed");
    record("open_failed", { code: err.code });
    throw err;
  }
  const { info, room } = opened;
  if (!engaged()) { // released while it was opening: nobody to talk to
    room.close({ leave: true }).catch(() => {});
    throw new Error("released");
  }
  store.opened(info);
  attach(room);
  try {
    await room.connect();
  } catch (err) {
    if (kiosk.room === null) notice("The avatar is not available right now. Please try again in a moment.", "open_failed");
    throw err;
  }
  if (kiosk.room !== room) throw new Error("released"); // release() took it and left it
  kiosk.counts.opened += 1;
  if (info.warm) kiosk.counts.warm += 1;
  if (lostRoom) kiosk.counts.replaced += 1;
  record("room_opened", { id: room.id, warm: Boolean(info.warm), replaced: lostRoom });
  lostRoom = false;
  notice("");
  video.start(room);
  return room;
}

/** After a reload or a crash: the room this tab had, with its stored ticket, never a new mint. */
async function rejoin() {
  const saved = store.load();
  if (!saved) return false;
  const room = storedRoom(kiosk.client, saved);
  setState("engaged");
  attach(room);
  conn("connecting", "reconnecting…");
  try {
    await room.connect();
  } catch {
    if (kiosk.room === room) kiosk.room = null;
    root.dataset.room = "";
    lostRoom = false;
    store.clear();
    record("rejoin_failed", { id: saved.id });
    return false;
  }
  kiosk.counts.rejoined += 1;
  record("rejoined", { id: room.id });
  video.start(room);
  activity();
  return true;
}

// -- the visitor -----------------------------------------------------------------------------------

function engage(how) {
  if (kiosk.state === "attract") {
    setState("engaged");
    if (how !== "voice") voice.stop(); // a visitor talking to the attract screen is heard to the end
    record("engaged", { how });
    if (params.get("fullscreen") === "1") root.requestFullscreen?.().catch(() => {});
  }
  if (!engaged()) return;
  activity();
  ensureRoom().catch(() => {});
}

async function ask(text, via) {
  text = text.trim();
  if (!text) return;
  engage(via);
  if (!engaged()) return;
  showHeard(text, true);
  kiosk.inflight += 1;
  try {
    // twice at most: a room that ended under the question (expiry, upstream gone) is replaced once
    for (let attempt = 1; attempt <= 2; attempt++) {
      const room = await ensureRoom();
      const entry = watchdog.sent("ask");
      try {
        await room.ask(text);
        watchdog.accepted(entry);
        record("asked", { text, via, id: room.id });
        return;
      } catch (err) {
        watchdog.cancel(entry);
        if (attempt === 1 && ["closed", "room_not_open"].includes(err.code) && engaged()) continue;
        notice("Sorry, that did not reach the avatar. Please ask again.", "ask_failed");
        record("ask_failed", { code: err.code });
        return;
      }
    }
  } catch {
    // no room: the notice says so; the next interaction tries again
  } finally {
    kiosk.inflight -= 1;
    activity();
  }
}

function onWatchdog(report) {
  kiosk.counts.watchdog += 1;
  notice("The avatar is not answering right now. Please try again.", "watchdog");
  record("watchdog", report);
  const room = kiosk.room;
  if (!room) return;
  kiosk.client.request("POST", `/v1/rooms/${encodeURIComponent(room.id)}/watchdog`,
    { kind: report.kind, waited_seconds: Math.round(report.waitedSeconds * 10) / 10 }).catch(() => {});
}

function onHeard(text, final, mode) {
  if (kiosk.state !== "attract" && !engaged()) return;
  if (mode === "wake" && kiosk.state === "attract") engage("voice");
  activity();
  showHeard(text, final); // shown before it is sent
  if (!final) return;
  if (mode === "wake") voice.stop(); // engaged now: push-to-talk from here on
  ask(text, "voice");
}

// -- wiring ----------------------------------------------------------------------------------------

function wire() {
  document.addEventListener("pointerdown", (e) => {
    if (e.target.closest("#auth-panel")) return;
    if (kiosk.state === "attract" || engaged()) engage("touch"); // engaged: replaces a room the bridge closed
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest?.("#auth-panel")) return;
    if (kiosk.state === "attract") {
      if (document.activeElement !== $("ask-text")) $("ask-text").focus();
      engage("key");
    } else if (engaged()) {
      activity();
    }
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("ask-text").value;
    $("ask-text").value = "";
    ask(text, "typed");
  });
  $("prompt-yes").addEventListener("click", () => activity());
  const ptt = $("ptt");
  ptt.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    engage("voice");
    ptt.dataset.listening = "true";
    voice.hold();
  });
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
    ptt.addEventListener(type, () => {
      if (ptt.dataset.listening !== "true") return;
      ptt.dataset.listening = "false";
      voice.letGo();
    });
  }
}

function askForKey() {
  $("auth-panel").hidden = false;
  $("api-key").focus();
}

function showCost(config) {
  const el = $("cost");
  if (config.warmRooms > 0) {
    el.textContent = `Warm start: ${config.warmRooms} room${config.warmRooms === 1 ? "" : "s"} kept open · `
      + `≈ ${config.warmCoinsPerHour} coins/hour while waiting · ≈ ${config.coinsPerHour} coins/hour per visitor`;
  } else if (config.coinsPerHour > 0) {
    el.textContent = `No room open while waiting · ≈ ${config.coinsPerHour} coins/hour per visitor`;
  }
  el.hidden = !el.textContent;
}

async function start() {
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    try { window.sessionStorage.setItem(KEY_STORAGE, key); } catch { /* storage off */ }
    location.reload(); // start again, with the key
  });
  kiosk.client = new BridgeClient({ baseUrl: location.origin, apiKey: storageKey() });
  try {
    kiosk.config = await loadConfig(kiosk.client, params, root.dataset);
  } catch (err) {
    if (err.status === 401) askForKey();
    notice(err.status === 404 ? "This kiosk profile does not exist." : `The kiosk cannot start: ${err.message}`, "config");
    root.dataset.state = "error";
    return;
  }
  const config = kiosk.config;
  root.lang = config.language;
  store = new SessionStore(config);
  video = new Video({ box: $("video"), agora: loadAgora({ off: params.get("video") === "off" }),
    onState: (state) => { root.dataset.video = state; } });
  voice = new Voice({ lang: config.language, onHeard });
  // with no event source there are no speaking events to wait for
  watchdog = new Watchdog({ seconds: config.eventSource === "none" ? 0 : config.watchdogSeconds, onFire: onWatchdog });
  $("ptt").hidden = !voice.available;
  if (voice.available) $("attract-hint").textContent = "Touch the screen, say hello, or type your question to start.";
  showCost(config);
  wire();
  if (!(await rejoin())) {
    setState("attract");
    conn("idle", "ready");
    voice.listenForWake();
  }
}

start();
