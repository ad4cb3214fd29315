// A frontend-only page on its own origin: it opens a room on the bridge with a publishable browser key,
// talks over the websocket and reads the room's events over SSE. Its configuration comes from data
// attributes its server fills in (the bridge, the key, where the client module is loaded from).
const cfg = document.documentElement.dataset;
const { BridgeClient } = await import(cfg.module);
const client = new BridgeClient({ baseUrl: cfg.bridge, apiKey: cfg.key });
const seen = { ws: [], sse: [] };
let room = null;
let events = null;

window.frontend = {
  /** Open a room, connect its websocket and its SSE stream; resolves once both are open. */
  async open(qaContext) {
    room = await client.createRoom({ qaContext, expireSeconds: 120 });
    room.on("reply", (e) => { if (e.final) seen.ws.push(e.text); });
    await room.connect();
    const { ws_ticket } = await client.newTicket(room.id);
    await new Promise((resolve, reject) => {
      events = new EventSource(`${room.info.events_url}?ticket=${encodeURIComponent(ws_ticket)}`);
      events.addEventListener("reply", (m) => { const e = JSON.parse(m.data); if (e.final) seen.sse.push(e.text); });
      events.onopen = resolve;
      events.onerror = () => reject(new Error(`SSE failed (readyState ${events.readyState})`));
    });
    return { id: room.id, channel: room.info.channel };
  },
  async ask(question) { return room.ask(question); },
  replies() { return seen; },
  async listRooms() {
    try { await client.listRooms(); return "listed"; } catch (e) { return e.code; }
  },
  async end() {
    events.close();
    await room.close({ leave: true });
    return room.status;
  },
};

// What a page on an origin the bridge does not list meets at each door.
window.doors = {
  async createRoom() {
    try { await client.createRoom({}); return "created"; } catch (e) { return e.code; }
  },
  async simplePost() {  // no preflight: the browser sends it, the bridge must refuse it itself
    await fetch(`${cfg.bridge}/v1/rooms`, { method: "POST", mode: "no-cors", body: "{}" });
    return "sent";
  },
  sse(url) {
    return new Promise((resolve) => {
      const es = new EventSource(url);
      es.onopen = () => { es.close(); resolve("open"); };
      es.onerror = () => { const state = es.readyState; es.close(); resolve(state === EventSource.CLOSED ? "refused" : "retrying"); };
    });
  },
  ws(url) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => { ws.close(); resolve("open"); };
      ws.onclose = (e) => resolve(`closed ${e.code}`);
    });
  },
};
window.ready = true;
