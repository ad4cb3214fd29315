// The operator page: live rooms, a room's transcript, usage per day (an SVG chart drawn here) and
// webhook deliveries, polled from the bridge's JSON API. No framework, no CDN, nothing inline.
const KEY_STORAGE = "a2e-bridge.operatorKey";
const SVG = "http://www.w3.org/2000/svg";
const DAYS = 30;
const $ = (id) => document.getElementById(id);

/** What the page holds; `window.operator` exposes it for debugging and tests. */
const operator = { room: null, after: 0, ticks: 0, timer: null, usage: [] };
window.operator = operator;

function storedKey() {
  try { return window.sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = {};
  const key = storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(path, { ...options, headers, cache: "no-store" });
  if (res.status === 401) throw new Unauthorized((await res.json()).error?.message || "unauthorized");
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(status, text) {
  $("status").dataset.status = status;
  $("status").textContent = text;
}

function age(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

// -- live rooms ---------------------------------------------------------------------------------
async function refreshRooms() {
  const { rooms, operator: isOperator } = await api("/v1/operator/rooms");
  // null: another instance of the fleet runs the room, and only it knows its clients and queue
  const known = (value) => (value === null || value === undefined ? "—" : String(value));
  $("who").textContent = isOperator ? "operator: every tenant" : "one tenant's rooms";
  $("room-count").textContent = `(${rooms.length})`;
  $("rooms-empty").hidden = rooms.length > 0;
  const body = $("rooms-body");
  body.replaceChildren(...rooms.map((room) => {
    const row = el("tr", { class: "pick", "data-testid": "room-row", "data-room-id": room.id, tabindex: "0",
                            "aria-selected": String(room.id === operator.room) });
    row.append(el("td", {}, room.id), el("td", {}, room.tenant), el("td", { class: `state-${room.state}` }, room.state),
               el("td", {}, age(room.age_seconds)), el("td", { "data-testid": "room-clients" }, known(room.clients)),
               el("td", { "data-testid": "room-queue" }, known(room.queue_depth)));
    if (room.instance) row.title = `run by instance ${room.instance}`;
    row.addEventListener("click", () => follow(room.id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") follow(room.id); });
    return row;
  }));
}

// -- a room's transcript ------------------------------------------------------------------------
function follow(roomId) {
  operator.room = roomId;
  operator.after = 0;
  $("transcript-room").textContent = roomId;
  $("transcript-hint").hidden = true;
  $("transcript").replaceChildren();
  for (const row of document.querySelectorAll("#rooms-body tr")) {
    row.setAttribute("aria-selected", String(row.dataset.roomId === roomId));
  }
  refreshTranscript().catch(failed);
}

async function refreshTranscript() {
  const roomId = operator.room;
  if (!roomId) return;
  const page = await api(`/v1/rooms/${encodeURIComponent(roomId)}/transcript?after=${operator.after}`);
  if (roomId !== operator.room) return; // another room was picked meanwhile
  operator.after = page.next_after;
  const list = $("transcript");
  for (const entry of page.entries) {
    const item = el("li", { "data-testid": "transcript-entry", "data-kind": entry.kind });
    const when = new Date(entry.at * 1000);
    item.append(el("time", { datetime: when.toISOString() }, when.toLocaleTimeString([], { hour12: false })),
                el("span", { class: `kind kind-${entry.kind}` }, entry.kind));
    if (entry.origin) item.append(el("span", { class: "origin" }, entry.origin));
    const text = entry.kind === "cancel" ? `dropped ${entry.count} pending command(s)` : entry.text;
    item.append(el("span", { class: "text", "data-testid": "transcript-text" }, text));
    list.append(item);
  }
  if (page.entries.length) list.scrollTop = list.scrollHeight;
}

// -- usage per day: an SVG bar chart (charged, with the refunded part over it) ------------------------
function lastDays(rows) {
  const byDay = new Map(rows.map((row) => [row.day, row]));
  const days = [];
  const today = new Date();
  for (let i = DAYS - 1; i >= 0; i -= 1) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i))
      .toISOString().slice(0, 10);
    days.push(byDay.get(day) || { day, coins_charged: 0, coins_refunded: 0, coins_net: 0, rooms: 0 });
  }
  // rows of days outside the window (a bridge on another clock) are shown too, after it
  for (const row of rows) if (!days.some((d) => d.day === row.day)) days.push(row);
  return days;
}

function drawUsage(rows, totals) {
  const chart = $("usage-chart");
  const days = lastDays(rows);
  operator.usage = days;
  const width = 600, height = 200, left = 34, bottom = 22, top = 8;
  const most = Math.max(1, ...days.map((d) => d.coins_charged));
  const step = (width - left) / days.length;
  const scale = (coins) => ((height - bottom - top) * coins) / most;
  const parts = [svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
                 svg("text", { x: 2, y: top + 8 }, String(most)), svg("text", { x: 2, y: height - bottom }, "0")];
  days.forEach((d, i) => {
    const x = left + i * step + 1;
    const charged = scale(d.coins_charged);
    const bar = svg("rect", { class: "bar", x, y: height - bottom - charged, width: Math.max(1, step - 2),
                              height: charged, "data-testid": "usage-bar", "data-day": d.day,
                              "data-coins-net": d.coins_net, "data-coins-charged": d.coins_charged });
    bar.append(svg("title", {}, `${d.day}: ${d.coins_net} coins net (${d.coins_charged} charged, ` +
                                `${d.coins_refunded} refunded), ${d.rooms} room(s)`));
    parts.push(bar);
    if (d.coins_refunded) {
      const refunded = scale(d.coins_refunded);
      parts.push(svg("rect", { class: "refund", x, y: height - bottom - charged, width: Math.max(1, step - 2),
                               height: refunded }));
    }
    if (i === days.length - 1) {
      parts.push(svg("text", { x: x + step - 2, y: height - 6, "text-anchor": "end" }, d.day.slice(5)));
    } else if (i % 5 === 0 && i < days.length - 3) {
      parts.push(svg("text", { x, y: height - 6 }, d.day.slice(5)));
    }
  });
  chart.replaceChildren(...parts);
  $("usage-totals").textContent = `${totals.rooms} room(s), ${totals.room_minutes_used} of ` +
    `${totals.room_minutes_reserved} room-minutes used; coins: ${totals.coins_charged} charged, ` +
    `${totals.coins_refunded} refunded, ${totals.coins_net} net`;
}

async function refreshUsage() {
  const report = await api("/v1/usage?group=day");
  drawUsage(report.usage, report.totals);
}

// -- webhook deliveries -------------------------------------------------------------------------
async function refreshDeliveries() {
  const { deliveries } = await api("/v1/webhooks/deliveries?limit=20");
  $("deliveries-empty").hidden = deliveries.length > 0;
  $("deliveries-body").replaceChildren(...deliveries.map((d) => {
    const row = el("tr", { "data-testid": "delivery-row" });
    row.append(el("td", {}, d.event), el("td", {}, d.room_id || "–"),
               el("td", { class: `status-${d.status}` }, d.status), el("td", {}, String(d.attempts)),
               el("td", {}, d.last_error || ""));
    return row;
  }));
}

// -- the loop -----------------------------------------------------------------------------------
function failed(err) {
  if (err instanceof Unauthorized) {
    clearInterval(operator.timer);
    operator.timer = null;
    $("board").hidden = true;
    $("auth-panel").hidden = false;
    $("auth-error").hidden = !storedKey();
    $("auth-error").textContent = err.message;
    setStatus("error", "key needed");
    return;
  }
  setStatus("error", String(err.message || err));
}

async function tick() {
  const jobs = [refreshRooms(), refreshTranscript()];
  if (operator.ticks % 3 === 0) jobs.push(refreshDeliveries());
  if (operator.ticks % 5 === 0) jobs.push(refreshUsage());
  operator.ticks += 1;
  await Promise.all(jobs);
  setStatus("live", `live · ${new Date().toLocaleTimeString([], { hour12: false })}`);
}

function start() {
  $("auth-panel").hidden = true;
  $("board").hidden = false;
  operator.ticks = 0;
  tick().then(() => {
    clearInterval(operator.timer);
    operator.timer = setInterval(() => tick().catch(failed), 1000);
  }, failed);
}

$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  try { window.sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim()); } catch { /* private mode */ }
  $("api-key").value = "";
  start();
});

start();
