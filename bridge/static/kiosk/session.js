// The kiosk's configuration (a profile from the bridge, or the page's URL) and its room: opened
// through the bridge's API, kept in this tab's sessionStorage (room id, websocket URL and the
// freshest ticket) so that a reload or a crashed tab rejoins the same room instead of minting one.

import { Room } from "../bridge.mjs";

const RECONNECT = { initialDelay: 300, maxDelay: 5000 };
const TICKET_MARGIN_MS = 10_000; // a stored ticket this close to its end is not worth trying

function numberOr(value, fallback) {
  const n = Number(value);
  return value != null && value !== "" && Number.isFinite(n) && n > 0 ? n : fallback;
}

/**
 * What this kiosk opens and how it behaves: the profile `?profile=NAME` (GET /v1/kiosk/profiles/NAME),
 * else the URL's `avatar`, `qa`, `brain`, `idle`, `prompt`, `lang`, `watchdog`, `expire`.
 */
export async function loadConfig(client, params, dataset) {
  const coinsPerMinute = numberOr(dataset.coinsPerMinute, 0);
  const base = {
    profile: null, avatarId: null, qaContext: null, brain: null, idleSeconds: 30, promptSeconds: 10,
    language: navigator.language || "en-US", watchdogSeconds: 10, expireSeconds: null, warmRooms: 0,
    coinsPerHour: 60 * coinsPerMinute, warmCoinsPerHour: 0, eventSource: dataset.eventSource || "none",
  };
  const name = params.get("profile");
  if (name) {
    const p = await client.request("GET", `/v1/kiosk/profiles/${encodeURIComponent(name)}`);
    return {
      ...base, profile: p.name, avatarId: p.avatar_id, brain: p.brain, idleSeconds: p.idle_seconds,
      promptSeconds: p.prompt_seconds, language: p.language, watchdogSeconds: p.watchdog_seconds,
      expireSeconds: p.expire_seconds, warmRooms: p.warm_rooms, coinsPerHour: p.coins_per_hour,
      warmCoinsPerHour: p.warm_coins_per_hour,
    };
  }
  return {
    ...base,
    avatarId: params.get("avatar") || null,
    qaContext: params.get("qa") || null,
    brain: params.get("brain") || null,
    idleSeconds: numberOr(params.get("idle"), base.idleSeconds),
    promptSeconds: numberOr(params.get("prompt"), base.promptSeconds),
    language: params.get("lang") || base.language,
    watchdogSeconds: numberOr(params.get("watchdog"), base.watchdogSeconds),
    expireSeconds: numberOr(params.get("expire"), null),
  };
}

export class SessionStore {
  constructor(config) {
    this.key = `a2e-kiosk.room.${config.profile || "url"}`;
    try { this.storage = window.sessionStorage; } catch { this.storage = null; }
  }

  load() {
    try {
      const saved = JSON.parse(this.storage?.getItem(this.key) || "null");
      return saved && typeof saved.id === "string" ? saved : null;
    } catch {
      return null;
    }
  }

  save(value) {
    try { this.storage?.setItem(this.key, JSON.stringify(value)); } catch { /* storage full or off */ }
  }

  /** A room was opened: its id, websocket URL and creation ticket. */
  opened(info) {
    this.save({ id: info.id, wsUrl: info.ws_url, ticket: info.ws_ticket,
      until: Date.now() + 1000 * (info.ws_ticket_expires_in ?? 0) });
  }

  /** The bridge pushed a fresh ticket to the room's websocket. */
  ticket(id, ticket, expiresIn) {
    const saved = this.load();
    if (saved?.id === id) this.save({ ...saved, ticket, until: Date.now() + 1000 * (expiresIn ?? 0) });
  }

  clear() {
    try { this.storage?.removeItem(this.key); } catch { /* storage off */ }
  }
}

/** Open a room for a visitor: from the profile (a warm one if it keeps some), else POST /v1/rooms. */
export async function openRoom(client, config) {
  let info;
  if (config.profile) {
    info = await client.request("POST", `/v1/kiosk/profiles/${encodeURIComponent(config.profile)}/rooms`);
  } else {
    const body = { forward_events: true }; // the page forwards what its Agora SDK receives
    if (config.avatarId) body.avatar_id = config.avatarId;
    if (config.qaContext) body.qa_context = config.qaContext;
    if (config.expireSeconds) body.expire_seconds = config.expireSeconds;
    if (config.brain && config.brain !== "a2e") body.brain = config.brain;
    info = await client.request("POST", "/v1/rooms", body);
  }
  return { info, room: new Room(client, info, { forwardEvents: true, reconnect: RECONNECT }) };
}

/** A handle on the stored room, with the stored ticket while it is fresh (else connect() asks for one). */
export function storedRoom(client, saved) {
  const left = saved.until - Date.now();
  const info = { id: saved.id, ws_url: saved.wsUrl };
  if (saved.ticket && left > TICKET_MARGIN_MS) {
    info.ws_ticket = saved.ticket;
    info.ws_ticket_expires_in = Math.floor(left / 1000) + 5; // Room keeps a 5 s margin of its own
  }
  return new Room(client, info, { forwardEvents: true, reconnect: RECONNECT });
}
