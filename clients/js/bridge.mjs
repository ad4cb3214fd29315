// a2e-bridge JavaScript client: one dependency-free ES module for browsers (and Node >= 22, or
// Node 20 with --experimental-websocket, or any runtime given a WebSocket implementation).
//
//   import { BridgeClient } from "/static/bridge.mjs";
//   const client = new BridgeClient({ baseUrl: location.origin });       // apiKey only outside dev mode
//   const room = await client.createRoom({ avatarId, qaContext: "We open at 9am." });
//   room.on("reply", (e) => show(e.reply_id, e.text, e.final));           // text is the whole reply so far
//   await room.connect();                                                 // the websocket, with the room's ticket
//   const ack = await room.ask("When do you open?");                      // resolves on the server's ack
//   await room.close();                                                   // leave the room and disconnect
//
// The HTTP calls carry the client key (if any) as a Bearer token; the websocket never does: it
// authenticates with short-lived tickets, and a fresh one is fetched for every reconnect.

/** Close codes the bridge uses (CloseEvent.code). */
export const CloseCodes = Object.freeze({
  ROOM_CLOSED: 4000,
  SLOW_CONSUMER: 4008,
  ROOM_NOT_OPEN: 4009,
  RECONNECT: 4012, // the bridge instance stops serving the room (a deploy): reconnect at once
  UNAUTHORIZED: 4401,
  NOT_FOUND: 4404,
  FLOOD: 4429,
  BAD_QUERY: 1008, // refused at the handshake: an `events` filter naming an unknown event type
});

/** After these close codes the room will not come back: no reconnect. */
const TERMINAL_CODES = new Set([
  CloseCodes.ROOM_CLOSED, CloseCodes.UNAUTHORIZED, CloseCodes.NOT_FOUND, CloseCodes.ROOM_NOT_OPEN,
  CloseCodes.BAD_QUERY,
]);

/** Events the client itself emits (the others are the server's frames, by their `type`). */
export const ClientEvents = Object.freeze(["connected", "disconnected", "reconnecting", "closed"]);

/**
 * An error from the bridge (HTTP error body, websocket `error` frame) or from the connection.
 *
 * Codes are the bridge's (`invalid_input`, `room_not_open`, `queue_full`, `unauthorized`, ...) plus
 * the client's own: `connection_lost` (the socket dropped while the command was pending),
 * `closed` (the room handle was closed), `not_connected`, `timeout`, `network_error`.
 */
export class BridgeError extends Error {
  /**
   * @param {string} code machine-readable code
   * @param {string} message human-readable message
   * @param {{status?: number, details?: any, closeCode?: number, frame?: object}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "BridgeError";
    /** @type {string} */
    this.code = code;
    /** @type {number|undefined} HTTP status, for HTTP errors */
    this.status = extra.status;
    /** @type {any} the error's `details`, if the bridge sent any */
    this.details = extra.details;
    /** @type {number|undefined} the websocket close code, for `connection_lost` */
    this.closeCode = extra.closeCode;
    /** @type {object|undefined} the `error` frame, for websocket errors */
    this.frame = extra.frame;
  }
}

/**
 * @typedef {object} RoomInfo  A room as the bridge describes it (GET /v1/rooms/{id}).
 * @property {string} id
 * @property {string} state `creating` | `open` | `closing` | `closed` | `failed`
 * @property {string} channel Agora channel
 * @property {string} app_id Agora app id
 * @property {string} token Agora RTC token
 * @property {number} uid the uid to join the channel as
 * @property {string} expires_at ISO time
 * @property {string} [ws_url]
 * @property {string} [ws_ticket]
 * @property {number} [ws_ticket_expires_in]
 */

/**
 * @typedef {object} Ack  The server's `ack` frame.
 * @property {"ack"} type
 * @property {string|number} id
 * @property {string} kind `speak` | `ask` | `flush` | `cancel` | `speak_delta` | `speak_end` | `set_qa_context`
 * @property {number} [position] first queue position (speak/ask)
 * @property {number[]} [positions] every queue position (long speech is split at sentences)
 * @property {string} [utterance] the speak's, ask's or stream's utterance id (cancel it with {@link Room#cancel})
 * @property {string[]} [utterances] the ids of its pieces, one per position
 * @property {number} [flushed] commands dropped (flush)
 * @property {string[]} [dropped] every utterance id the flush cancelled
 * @property {string[]} [cancelled] every utterance id the cancel removed
 * @property {number} [chars] QA context length (set_qa_context)
 */

/**
 * @typedef {object} ReconnectOptions
 * @property {number} [initialDelay=500] ms before the first retry
 * @property {number} [maxDelay=15000] ms, the longest wait between retries
 * @property {number} [factor=2] growth of the delay per attempt
 * @property {number} [maxAttempts=Infinity] consecutive failed attempts before giving up
 */

function toBase64(bytes) {
  if (typeof bytes === "string") bytes = new TextEncoder().encode(bytes);
  else if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  else if (ArrayBuffer.isView(bytes)) bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  else throw new TypeError("bytes must be a Uint8Array, an ArrayBuffer, a typed array or a string");
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * The bridge's HTTP API.
 */
export class BridgeClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the bridge, e.g. `http://127.0.0.1:8000` (default: the page's origin)
   * @param {string} [options.apiKey] a client key, sent as `Authorization: Bearer` on HTTP calls only
   * @param {typeof fetch} [options.fetch] a fetch implementation (default: the global one)
   * @param {any} [options.WebSocket] a WebSocket constructor (default: the global one)
   * @param {number} [options.timeout=30000] ms per HTTP request
   */
  constructor({ baseUrl, apiKey, fetch: fetchImpl, WebSocket: wsImpl, timeout = 30000 } = {}) {
    if (!baseUrl) {
      if (typeof location === "undefined") throw new TypeError("baseUrl is required outside a browser");
      baseUrl = location.origin;
    }
    /** @type {string} */
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    /** @type {string|undefined} */
    this.apiKey = apiKey || undefined;
    this.timeout = timeout;
    this._fetch = fetchImpl || globalThis.fetch?.bind(globalThis);
    this._WebSocket = wsImpl || globalThis.WebSocket;
  }

  /**
   * One HTTP call; resolves with the JSON body, rejects with a {@link BridgeError}.
   * @param {string} method
   * @param {string} path
   * @param {any} [body]
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeout);
    let response;
    try {
      response = await this._fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: controller.signal,
      });
    } catch (err) {
      const timedOut = controller.signal.aborted;
      throw new BridgeError(timedOut ? "timeout" : "network_error",
        timedOut ? `${method} ${path}: no answer within ${this.timeout} ms` : `${method} ${path}: ${err?.message || err}`);
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      const e = data && data.error;
      throw new BridgeError(e?.code || `http_${response.status}`,
        e?.message || `${method} ${path}: HTTP ${response.status}`, { status: response.status, details: e?.details });
    }
    return data;
  }

  /**
   * The streaming avatars A2E offers.
   * @returns {Promise<Array<{_id: string, name: string, [key: string]: any}>>}
   */
  async avatars() {
    return (await this.request("GET", "/v1/avatars")).avatars;
  }

  /**
   * Open a room (A2E charges `expireSeconds` up front and refunds on leave: close it when done).
   * Accepts camelCase or the API's snake_case names.
   * @param {object} [opts]
   * @param {string} [opts.avatarId] default: the bridge's default avatar
   * @param {number} [opts.expireSeconds]
   * @param {string} [opts.qaContext] what `ask` answers from (at most 5,000 characters)
   * @param {boolean} [opts.forwardEvents] this page forwards the channel's events it receives
   *   (`forwardRtcEvent`): its tickets get the bridge's forward scope (also on reconnect)
   * @param {object} [roomOptions] see {@link Room}
   * @returns {Promise<Room>} not connected yet: call {@link Room#connect}
   */
  async createRoom(opts = {}, roomOptions = {}) {
    const body = {};
    const avatarId = opts.avatarId ?? opts.avatar_id;
    const expire = opts.expireSeconds ?? opts.expire_seconds;
    const qa = opts.qaContext ?? opts.qa_context;
    const forward = Boolean(opts.forwardEvents ?? opts.forward_events ?? roomOptions.forwardEvents);
    if (avatarId != null && avatarId !== "") body.avatar_id = avatarId;
    if (expire != null) body.expire_seconds = expire;
    if (qa != null && qa !== "") body.qa_context = qa;
    if (forward) body.forward_events = true;
    const info = await this.request("POST", "/v1/rooms", body);
    return new Room(this, info, { ...roomOptions, forwardEvents: forward });
  }

  /**
   * A handle on an existing room (e.g. to resume after a page reload); connect() fetches a ticket.
   * @param {string} id
   * @param {object} [roomOptions] see {@link Room}
   * @returns {Promise<Room>}
   */
  async getRoom(id, roomOptions = {}) {
    return new Room(this, await this.request("GET", `/v1/rooms/${encodeURIComponent(id)}`), roomOptions);
  }

  /**
   * The caller's rooms, newest first: every page, fetched `pageSize` (1-200) at a time by
   * following the bridge's `next_cursor`.
   * @param {{live?: boolean, pageSize?: number}} [opts]
   * @returns {Promise<RoomInfo[]>}
   */
  async listRooms({ live = false, pageSize = 200 } = {}) {
    const rooms = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: String(pageSize) });
      if (live) query.set("state", "live");
      if (cursor) query.set("cursor", cursor);
      const page = await this.request("GET", `/v1/rooms?${query}`);
      rooms.push(...page.rooms);
      cursor = page.next_cursor; // absent from bridges that did not page
    } while (cursor);
    return rooms;
  }

  /**
   * Leave a room (idempotent).
   * @param {string} id
   * @returns {Promise<RoomInfo>} the room, `closing` or `closed`
   */
  async closeRoom(id) {
    return this.request("DELETE", `/v1/rooms/${encodeURIComponent(id)}`);
  }

  /**
   * A fresh websocket ticket for a live room.
   * @param {string} id
   * @param {{forwardEvents?: boolean}} [opts] `forwardEvents`: the ticket may forward channel events
   * @returns {Promise<{ws_ticket: string, ws_ticket_expires_in: number, ws_url: string}>}
   */
  async newTicket(id, { forwardEvents = false } = {}) {
    const path = `/v1/rooms/${encodeURIComponent(id)}/tickets`;
    return forwardEvents ? this.request("POST", path, { forward_events: true }) : this.request("POST", path);
  }
}

/**
 * One room and its websocket. Commands resolve on the server's `ack` (or `pong`) and reject with a
 * {@link BridgeError} on the server's `error`. Events: the server's frames by `type` (`room`,
 * `command`, `reply`, `utterance` (`{id, seq, kind, state, parent, position?, text?, estimated?,
 * reason?}`: `queued` → `sent` → `speaking` → `done`, or `cancelled` / `failed`), `queued` (this
 * client's speak/ask got its utterance ids), `speaking_started`, `speaking_stopped`, `room_closed`,
 * and `error` frames that answer no pending command, such as a room brain's failure) and the client's own `connected`, `disconnected` `{code, reason,
 * willReconnect}`, `reconnecting` `{attempt, delay}` and `closed` `{code, reason}` (for good).
 * `ticket` `{ws_ticket, expires_in}` (a renewed ticket, a credential) reaches only listeners of
 * `ticket`, never `"*"`.
 */
export class Room {
  /**
   * @param {BridgeClient} client
   * @param {RoomInfo} info
   * @param {object} [options]
   * @param {ReconnectOptions|false} [options.reconnect] `false` disables reconnecting
   * @param {number} [options.commandTimeout=120000] ms before a pending command rejects with `timeout`
   * @param {number} [options.connectTimeout=10000] ms for the socket to open and send its `room` frame
   * @param {boolean} [options.forwardEvents=false] fetch tickets that may forward channel events
   * @param {string[]} [options.events] only these room events (the bridge's `?events=`, e.g.
   *   `["command", "reply"]`); `room`, `room_closed` and the answers to this client's commands always come
   */
  constructor(client, info, { reconnect = {}, commandTimeout = 120000, connectTimeout = 10000,
    forwardEvents = false, events = undefined } = {}) {
    /** @type {BridgeClient} */
    this.client = client;
    /** @type {string} */
    this.id = info.id;
    /** @type {RoomInfo} the latest room description (updated by `room` and `room_closed` events) */
    this.info = { ...info };
    delete this.info.ws_ticket;
    /** @type {"idle"|"connecting"|"open"|"reconnecting"|"closed"} the websocket's status */
    this.status = "idle";
    this.reconnectOptions = reconnect === false ? false
      : { initialDelay: 500, maxDelay: 15000, factor: 2, maxAttempts: Infinity, ...reconnect };
    this.commandTimeout = commandTimeout;
    this.connectTimeout = connectTimeout;
    /** @type {boolean} whether this handle's tickets carry the forward scope */
    this.forwardEvents = Boolean(forwardEvents);
    /** @type {string[]|null} the event types this handle asks for (null: every event) */
    this.events = events == null ? null : [...events];
    /** @type {WebSocket|null} the current socket (internal; tests may close it to simulate a drop) */
    this._ws = null;
    this._ticket = info.ws_ticket
      ? { ticket: info.ws_ticket, url: info.ws_url, until: Date.now() + 1000 * ((info.ws_ticket_expires_in ?? 60) - 5) }
      : null;
    this._listeners = new Map();
    this._pending = new Map();
    this._nextId = 1;
    this._abort = new AbortController();
    this._ready = null; // {promise, resolve, reject} while connecting/reconnecting
    this._attempt = 0;
  }

  /** @returns {string} the room's state as last reported (`open`, `closing`, `closed`, ...) */
  get state() {
    return this.info.state;
  }

  /** @returns {boolean} whether the websocket is open and the room frame arrived */
  get connected() {
    return this.status === "open";
  }

  // -- events ---------------------------------------------------------------------------------

  /**
   * Listen to an event type, or to every event with `"*"`.
   * @param {string} type
   * @param {(event: object) => void} fn receives the event object (it has a `type`)
   * @returns {() => void} call it to stop listening
   */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /**
   * Listen to the next event of a type only.
   * @param {string} type
   * @param {(event: object) => void} fn
   * @returns {() => void}
   */
  once(type, fn) {
    const off = this.on(type, (event) => { off(); fn(event); });
    return off;
  }

  /**
   * @param {string} type
   * @param {(event: object) => void} fn
   */
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  /**
   * A promise for the next event of `type` that satisfies `predicate`.
   * @param {string} type
   * @param {(event: object) => boolean} [predicate]
   * @param {number} [timeout=30000] ms, then rejects with `timeout`
   * @returns {Promise<object>}
   */
  waitFor(type, predicate = () => true, timeout = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new BridgeError("timeout", `no ${type} event within ${timeout} ms`)); }, timeout);
      const off = this.on(type, (event) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }

  _emit(event, keys = [event.type, "*"]) {
    for (const key of keys) {
      for (const fn of [...(this._listeners.get(key) || [])]) {
        try {
          fn(event);
        } catch (err) {
          setTimeout(() => { throw err; }); // a listener's bug must not break the client
        }
      }
    }
  }

  // -- connection -----------------------------------------------------------------------------

  /**
   * Open the websocket with the room's ticket (or a fresh one). Resolves once the server sent the
   * room's description; reconnects by itself afterwards when the connection drops.
   * @returns {Promise<RoomInfo>}
   */
  async connect() {
    if (this.status === "closed") throw new BridgeError("closed", "this room handle was closed");
    if (this.status === "open") return this.info;
    if (this._ready) return this._ready.promise;
    this.status = "connecting";
    const ready = this._newReady();
    try {
      await this._open(false);
    } catch (err) {
      if (this.status !== "closed") this._finish(err.closeCode ?? 1006, err.message, err);
      throw err;
    }
    return ready.promise;
  }

  _newReady() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {});
    this._ready = { promise, resolve, reject };
    return this._ready;
  }

  /** A ticket: the creation ticket while it is fresh, else a new one from the bridge. */
  async _takeTicket() {
    const cached = this._ticket;
    this._ticket = null; // a ticket is used once
    if (cached && cached.until > Date.now()) return cached;
    const t = await this.client.newTicket(this.id, { forwardEvents: this.forwardEvents });
    return { ticket: t.ws_ticket, url: t.ws_url };
  }

  _wsUrl(ticket) {
    let url = ticket.url || this.info.ws_url;
    if (!url) url = `${this.client.baseUrl}/v1/rooms/${encodeURIComponent(this.id)}/ws`;
    url = url.replace(/^http/, "ws");
    url = `${url}${url.includes("?") ? "&" : "?"}ticket=${encodeURIComponent(ticket.ticket)}`;
    return this.events ? `${url}&events=${this.events.map(encodeURIComponent).join(",")}` : url;
  }

  /**
   * One connection attempt: resolves when the `room` frame arrived, rejects (with `closeCode`)
   * if the socket closed or timed out before.
   */
  async _open(isReconnect) {
    const ticket = await this._takeTicket();
    if (this.status === "closed") throw new BridgeError("closed", "this room handle was closed");
    const WS = this.client._WebSocket;
    if (!WS) throw new BridgeError("not_connected", "no WebSocket implementation: pass options.WebSocket");
    const ws = new WS(this._wsUrl(ticket));
    this._ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      const timer = setTimeout(() => {
        if (!welcomed) {
          reject(new BridgeError("timeout", `no room frame within ${this.connectTimeout} ms`, { closeCode: 1006 }));
          try { ws.close(); } catch { /* already closing */ }
        }
      }, this.connectTimeout);
      ws.onmessage = (msg) => {
        let frame;
        try { frame = JSON.parse(typeof msg.data === "string" ? msg.data : ""); } catch { return; }
        if (!frame || typeof frame !== "object") return;
        if (!welcomed && frame.type === "room") {
          welcomed = true;
          clearTimeout(timer);
          this.status = "open";
          this._attempt = 0;
          this._handle(frame);
          const ready = this._ready;
          this._ready = null;
          this._emit({ type: "connected", reconnect: isReconnect });
          ready?.resolve(this.info);
          resolve(this.info);
          this._flushQueued();
          return;
        }
        this._handle(frame);
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (this._ws !== ws) return; // an old socket
        this._ws = null;
        if (!welcomed) {
          reject(new BridgeError(ev.code === CloseCodes.UNAUTHORIZED ? "unauthorized" : "connection_failed",
            `websocket closed before the room frame (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`,
            { closeCode: ev.code }));
          return;
        }
        this._onDrop(ev.code, ev.reason || "");
      };
      ws.onerror = () => { /* a close event follows */ };
    });
  }

  _onDrop(code, reason) {
    if (this.status === "closed") return;
    const willReconnect = this.reconnectOptions !== false && !TERMINAL_CODES.has(code);
    // Commands the server may have seen are lost with the socket; unsent ones wait for the next.
    this._rejectPending((id) => new BridgeError("connection_lost",
      `the connection dropped (code ${code}) before command ${id} was answered`, { closeCode: code }),
    willReconnect);
    this._emit({ type: "disconnected", code, reason, willReconnect });
    if (!willReconnect) {
      this._finish(code, reason);
      return;
    }
    this.status = "reconnecting";
    this._newReady();
    this._reconnectLoop(code);
  }

  async _reconnectLoop(lastCode) {
    const o = this.reconnectOptions;
    while (this.status === "reconnecting") {
      this._attempt += 1;
      if (this._attempt > o.maxAttempts) {
        this._finish(lastCode, `gave up after ${o.maxAttempts} reconnect attempts`);
        return;
      }
      const cap = Math.min(o.maxDelay, o.initialDelay * o.factor ** (this._attempt - 1));
      // "equal jitter"; told to reconnect (another instance serves the room now): the first try at once
      const delay = lastCode === CloseCodes.RECONNECT && this._attempt === 1 ? 0
        : Math.round(cap / 2 + Math.random() * cap / 2);
      this._emit({ type: "reconnecting", attempt: this._attempt, delay });
      await sleep(delay, this._abort.signal);
      if (this.status !== "reconnecting") return;
      try {
        await this._open(true);
        return;
      } catch (err) {
        if (this.status !== "reconnecting") return;
        // the room is gone or we may not use it: a ticket refusal (401/403/404/409) or a terminal close
        const fatal = TERMINAL_CODES.has(err.closeCode) || [401, 403, 404, 409].includes(err.status);
        if (fatal) {
          this._finish(err.closeCode ?? 4404, err.message, err);
          return;
        }
        lastCode = err.closeCode ?? lastCode;
      }
    }
  }

  /** The handle is done for good: reject everything, emit `closed` once. */
  _finish(code, reason, error) {
    if (this.status === "closed") return;
    this.status = "closed";
    this._abort.abort();
    const err = error instanceof BridgeError ? error
      : new BridgeError("closed", `the room connection ended (code ${code}${reason ? `: ${reason}` : ""})`, { closeCode: code });
    this._rejectPending(() => err);
    if (this._ready) {
      this._ready.reject(err);
      this._ready = null;
    }
    this._emit({ type: "closed", code, reason });
  }

  _rejectPending(makeError, onlySent = false) {
    for (const [id, p] of [...this._pending]) {
      if (onlySent && !p.sent) continue; // queued, waiting for the connection
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(makeError(id));
    }
  }

  /**
   * Leave the room (DELETE, which ends A2E's charge) and disconnect; the `room` (closing) and
   * `room_closed` events still arrive before the socket closes. `{leave: false}` only disconnects
   * (the bridge leaves the room once it is idle). Like the Python client, leaving is the default.
   * @param {{leave?: boolean}} [opts]
   * @returns {Promise<RoomInfo|undefined>} the room after leaving, with `leave`
   */
  async close({ leave = true } = {}) {
    try {
      if (leave) {
        const info = await this.client.closeRoom(this.id);
        if (this.status !== "closed" && this._ws && info?.state === "closed") {
          // the server is about to send room_closed and close with 4000: let it, briefly
          await this.waitFor("closed", undefined, 1000).catch(() => {});
        }
        this.info = { ...this.info, ...info };
        return this.info;
      }
      return undefined;
    } finally {
      const ws = this._ws;
      this._ws = null;
      this._finish(1000, "closed by the client");
      if (ws) {
        try { ws.close(1000, "client closed"); } catch { /* already closed */ }
      }
    }
  }

  // -- frames ---------------------------------------------------------------------------------

  _handle(frame) {
    switch (frame.type) {
      case "ack":
      case "pong": {
        const p = this._pending.get(frame.id);
        if (p) {
          this._pending.delete(frame.id);
          clearTimeout(p.timer);
          p.resolve(frame);
        }
        break;
      }
      case "error": {
        const p = frame.id != null ? this._pending.get(frame.id) : undefined;
        if (p) {
          this._pending.delete(frame.id);
          clearTimeout(p.timer);
          p.reject(new BridgeError(frame.code || "error", frame.message || "error", { details: frame.details, frame }));
        }
        break;
      }
      case "room":
        if (frame.room) this.info = { ...this.info, ...frame.room };
        break;
      case "room_closed":
        if (frame.room) this.info = { ...this.info, ...frame.room };
        break;
      case "ticket": // the bridge keeps ticket-authenticated clients holding a valid ticket
        this._ticket = { ticket: frame.ws_ticket, until: Date.now() + 1000 * ((frame.expires_in ?? 60) - 5) };
        // not an application event: only `ticket` listeners hear it (a page that keeps a fresh
        // ticket to rejoin the room after a reload), never "*" (which logs may print)
        this._emit({ type: "ticket", ws_ticket: frame.ws_ticket, expires_in: frame.expires_in }, ["ticket"]);
        return;
      default:
        break;
    }
    this._emit(frame); // acks and errors too (for logs): an error answering a command has its `id`
  }

  /**
   * Send a command frame; resolves on its `ack`/`pong`.
   * @param {string} type
   * @param {object} [fields]
   * @param {string} [id] the frame's id (default: a fresh one; `cancel` uses the utterance's)
   * @returns {Promise<Ack>}
   */
  command(type, fields = {}, id = `c${this._nextId++}`) {
    if (this.status === "closed") return Promise.reject(new BridgeError("closed", "this room handle was closed"));
    if (this.status === "idle") return Promise.reject(new BridgeError("not_connected", "call connect() first"));
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, frame: { type, id, ...fields }, sent: false };
      p.timer = setTimeout(() => {
        if (this._pending.delete(id)) reject(new BridgeError("timeout", `no answer to ${type} ${id} within ${this.commandTimeout} ms`));
      }, this.commandTimeout);
      this._pending.set(id, p);
      if (this.status === "open" && this._ws?.readyState === 1) this._sendPending(p);
      // else: connecting/reconnecting: sent once the connection is back (_flushQueued)
    });
  }

  _sendPending(p) {
    try {
      this._ws.send(JSON.stringify(p.frame));
      p.sent = true;
    } catch (err) {
      this._pending.delete(p.frame.id);
      clearTimeout(p.timer);
      p.reject(new BridgeError("connection_lost", `could not send: ${err?.message || err}`));
    }
  }

  _flushQueued() {
    for (const p of [...this._pending.values()]) {
      if (!p.sent && this.status === "open" && this._ws?.readyState === 1) this._sendPending(p);
    }
  }

  /**
   * Make the avatar say `text` (long text is split at sentences; `positions` lists each part).
   * @param {string} text
   * @returns {Promise<Ack>} once A2E accepted it
   */
  speak(text) {
    return this.command("speak", { text });
  }

  /**
   * Ask the avatar (answered from the QA context); the answer arrives as `reply` events.
   * @param {string} text
   * @returns {Promise<Ack>} once A2E accepted the question
   */
  ask(text) {
    return this.command("ask", { text });
  }

  /**
   * Drop the room's pending commands (their promises reject with `flushed`) and stop its streams
   * and brain answers.
   * @returns {Promise<Ack>} `flushed` counts the commands, `dropped` lists every utterance id cancelled
   */
  flush() {
    return this.command("flush");
  }

  /**
   * Cancel a queued utterance (a speak, ask, stream, or one piece of it) by its id, from a `queued`
   * or `utterance` event. A2E cannot stop a sentence it was given: what it has is not cancellable
   * (rejects with `not_cancellable`).
   * @param {string} utterance
   * @returns {Promise<Ack>} `cancelled` lists every utterance id removed
   */
  cancel(utterance) {
    return this.command("cancel", {}, utterance);
  }

  /**
   * Add text to a stream (e.g. an LLM's answer as it arrives); each sentence is spoken as soon as it
   * is complete. Mind the bridge's frame rate limit: send what arrived, not one frame per token.
   * @param {string} stream a name for the stream on this connection
   * @param {string} text
   * @returns {Promise<Ack>} `utterance` is the stream's id
   */
  speakDelta(stream, text) {
    return this.command("speak_delta", { stream, text });
  }

  /**
   * End a stream: what is left of it is spoken.
   * @param {string} stream
   * @returns {Promise<Ack>} once A2E accepted every piece (`positions`, `utterances`)
   */
  speakEnd(stream) {
    return this.command("speak_end", { stream });
  }

  /**
   * Replace the room's QA context (at most 5,000 characters).
   * @param {string} text
   * @returns {Promise<Ack>} `chars` is the new length
   */
  setQaContext(text) {
    return this.command("set_qa_context", { text });
  }

  /**
   * Round trip to the bridge.
   * @returns {Promise<{type: "pong", id: string}>}
   */
  ping() {
    return this.command("ping");
  }

  /**
   * Forward an Agora channel event this page received (the bridge turns the avatar's QA
   * stream-messages into `reply` events, audio into `speaking_*`). Fire and forget: the bridge
   * does not acknowledge these; a malformed one comes back as an `error` event, and so does one
   * from a connection whose ticket lacks the forward scope (`forbidden`: create or get the room
   * with `forwardEvents: true`).
   * @param {"stream_message"|"audio_started"|"audio_stopped"} kind
   * @param {number|string} uid the remote user's Agora uid
   * @param {Uint8Array|ArrayBuffer|string} [bytes] the stream-message payload
   * @returns {boolean} whether it was sent (false while not connected)
   */
  forwardRtcEvent(kind, uid, bytes) {
    if (this.status !== "open" || this._ws?.readyState !== 1) return false;
    const numeric = typeof uid === "number" ? uid : Number(uid);
    const event = { kind, uid: Number.isInteger(numeric) ? numeric : uid };
    if (kind === "stream_message") event.data_b64 = toBase64(bytes ?? new Uint8Array());
    try {
      this._ws.send(JSON.stringify({ type: "rtc_event", event }));
      return true;
    } catch {
      return false;
    }
  }
}

export default BridgeClient;
