"""The kiosk page and the JS client (``clients/js/bridge.mjs``) in a real headless Chromium.

The bridge runs as a real uvicorn server with the simulator (``bridge`` fixtures, dev mode unless a
test passes client keys). The Agora CDN is blocked: the page must work without video.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.simulator.feed import answer_for
from tests.helpers import poll

playwright_api = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")
expect = playwright_api.expect

CLIENT_MODULE = Path(__file__).resolve().parents[2] / "clients" / "js" / "bridge.mjs"

QA = ("The museum opens at 9am every day except Monday. Tickets cost 12 euros and children enter for free. "
      "The cafe on the top floor serves lunch until 3pm.")
QUESTION = "When does the museum open?"

expect.set_options(timeout=15_000)


async def sim_room(bridge: Any, channel: str) -> dict[str, Any]:
    rooms = [r for r in bridge.sim.state.snapshot()["rooms"] if r["channel"] == channel]
    assert len(rooms) == 1, rooms
    return rooms[0]


# -- serving ------------------------------------------------------------------------------------


def test_static_client_module_is_the_js_client() -> None:
    """``bridge/static/bridge.mjs`` is a symlink to ``clients/js/bridge.mjs`` (served below)."""
    assert (Path(__file__).resolve().parents[2] / "bridge" / "static" / "bridge.mjs").resolve() == CLIENT_MODULE


async def test_static_client_module_is_served(bridge: Any) -> None:
    """The symlinked ``/static/bridge.mjs`` is served, with the page's other files."""
    page = await bridge.http.get("/")
    assert page.status_code == 200 and 'src="/static/kiosk.js"' in page.text
    for path in ("/static/kiosk.js", "/static/kiosk.css"):
        assert (await bridge.http.get(path)).status_code == 200, path
    module = await bridge.http.get("/static/bridge.mjs")
    assert module.status_code == 200, (
        "GET /static/bridge.mjs answered 404: Starlette's StaticFiles refuses symlinks that leave the "
        "directory unless follow_symlink=True (bridge/app.py, the /static Mount)")
    assert module.text == CLIENT_MODULE.read_text()
    assert "javascript" in module.headers["content-type"]


# -- the kiosk page -----------------------------------------------------------------------------


async def test_kiosk_speak_ask_and_end(bridge: Any, open_page: Callable[..., Any]) -> None:
    page = await open_page(bridge)
    avatars = (await bridge.http.get("/v1/avatars")).json()["avatars"]
    chosen = avatars[1]

    select = page.get_by_test_id("avatar-select")
    await expect(select).to_be_enabled()
    await expect(select.locator("option")).to_have_count(len(avatars))
    await select.select_option(chosen["_id"])
    await page.get_by_test_id("qa-context").fill(QA)
    await page.get_by_test_id("open-room").click()

    await expect(page.get_by_test_id("room-state")).to_have_text("open")
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    await expect(page.get_by_test_id("room-avatar")).to_have_text(chosen["name"])
    await expect(page.get_by_test_id("video-note")).to_contain_text(
        "Video unavailable (Agora Web SDK not reachable) — commands and events still work")
    room_id = (await page.get_by_test_id("room-id").text_content()).strip()
    room = (await bridge.http.get(f"/v1/rooms/{room_id}")).json()
    assert room["avatar_id"] == chosen["_id"] and room["qa_context_chars"] == len(QA)
    assert (await sim_room(bridge, room["channel"]))["status"] == "open"

    # speak: the ack shows the queue position
    await page.get_by_test_id("command-text").fill("Welcome to the museum.")
    await page.get_by_test_id("speak").click()
    speak_ack = page.get_by_test_id("ack").filter(has_text="speak")
    await expect(speak_ack).to_contain_text("accepted at queue position 1")
    await expect(speak_ack).to_have_attribute("data-position", "1")
    await expect(page.locator('[data-testid="log-entry"][data-speaking="stopped"]')).to_have_count(1)

    # ask (Enter submits as Ask): ack, then the reply, and the speaking indicator on then off
    await page.evaluate("kiosk.speakingHistory.length = 0")
    await page.get_by_test_id("command-text").fill(QUESTION)
    await page.get_by_test_id("command-text").press("Enter")
    ask_ack = page.get_by_test_id("ack").filter(has_text="ask")
    await expect(ask_ack).to_contain_text("accepted at queue position 2")
    expected = answer_for(QUESTION, QA)
    final = page.locator('[data-testid="reply"][data-final="true"]')
    await expect(final).to_have_count(1)
    await expect(final.locator(".reply-text")).to_have_text(expected)
    await expect(final.locator(".reply-mark")).to_have_text("final")
    await expect(page.get_by_test_id("reply")).to_have_count(1)  # partial updates replaced, not appended
    await expect(page.get_by_test_id("speaking")).to_have_attribute("data-speaking", "false")
    await expect(page.locator('[data-testid="log-entry"][data-speaking="stopped"]')).to_have_count(2)
    history = await page.evaluate("kiosk.speakingHistory")
    assert history[:1] == [True] and history[-1] is False, history
    await expect(page.get_by_test_id("speaking")).to_contain_text("Avatar is quiet")
    await page.screenshot(path="/tmp/kiosk.png", full_page=True)

    # end the room: state closed, the simulator's channel left
    await page.get_by_test_id("end-room").click()
    await expect(page.get_by_test_id("room-state")).to_have_text("closed")
    await expect(page.get_by_test_id("room-close-reason")).to_have_text("client")
    await expect(page.get_by_test_id("conn-status")).to_have_text("disconnected")
    await expect(page.get_by_test_id("new-room")).to_be_visible()
    await expect(page.get_by_test_id("ask")).to_be_disabled()
    assert (await sim_room(bridge, room["channel"]))["status"] == "left"
    assert (await bridge.http.get(f"/v1/rooms/{room_id}")).json()["state"] == "closed"
    assert page.errors == []


async def test_kiosk_with_client_keys_asks_for_one_and_keeps_it_off_the_websocket(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    key = "kiosk-test-key-5f2c"
    bridge = await bridge_factory(api_keys={key: "acme"}, headers={"Authorization": f"Bearer {key}"})
    page = await open_page(bridge)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    await expect(page.get_by_test_id("auth-panel")).to_be_visible()
    await expect(page.get_by_test_id("open-room")).to_be_disabled()
    await page.get_by_test_id("api-key").fill("wrong-key")
    await page.get_by_test_id("api-key-save").click()
    await expect(page.locator("#auth-error")).to_contain_text("refused")
    await page.get_by_test_id("api-key").fill(key)
    await page.get_by_test_id("api-key-save").click()
    await expect(page.get_by_test_id("auth-panel")).to_be_hidden()
    await expect(page.get_by_test_id("avatar-select")).to_be_enabled()
    await page.get_by_test_id("qa-context").fill(QA)
    await page.get_by_test_id("open-room").click()
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    room_id = (await page.get_by_test_id("room-id").text_content()).strip()
    assert (await bridge.http.get(f"/v1/rooms/{room_id}")).json()["state"] == "open"  # the tenant's room

    await page.get_by_test_id("command-text").fill(QUESTION)
    await page.get_by_test_id("ask").click()
    await expect(page.locator('[data-testid="reply"][data-final="true"] .reply-text')).to_have_text(
        answer_for(QUESTION, QA))

    # a reload resumes the same room with a fresh ticket (key and room id live in sessionStorage)
    await page.reload()
    await expect(page.get_by_test_id("room-id")).to_have_text(room_id)
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    await expect(page.get_by_test_id("room-state")).to_have_text("open")
    await page.get_by_test_id("command-text").fill("Back again.")
    await page.get_by_test_id("speak").click()
    await expect(page.get_by_test_id("ack").filter(has_text="speak")).to_be_visible()

    assert len(sockets) == 2
    for url in sockets:
        assert "ticket=" in url and key not in url
    assert page.errors == []
    await page.get_by_test_id("end-room").click()
    await expect(page.get_by_test_id("room-state")).to_have_text("closed")


FORWARD_QA = """async ([first, last]) => {
  const enc = new TextEncoder();
  const qa = (message, pos) => enc.encode(JSON.stringify({ type: 'QA', message, pos }));
  return [kiosk.room.forwardRtcEvent('stream_message', 4242, qa(first, 'start')),
          kiosk.room.forwardRtcEvent('stream_message', 4242, qa(last, 'end'))];
}"""


async def test_kiosk_page_is_a_forwarder_with_its_forward_ticket(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    """BRIDGE_EVENT_SOURCE=browser: the replies come only from what the page forwards. The page asks
    for the forward scope when it opens a room and when it resumes it after a reload."""
    key = "kiosk-forward-key-9d1e"
    bridge = await bridge_factory(api_keys={key: "acme"}, headers={"Authorization": f"Bearer {key}"},
                                  event_source="browser")
    page = await open_page(bridge)
    asked: list[tuple[str, Any]] = []
    page.on("request", lambda r: asked.append((r.url, r.post_data_json)) if r.method == "POST" else None)
    await page.get_by_test_id("api-key").fill(key)
    await page.get_by_test_id("api-key-save").click()
    await expect(page.get_by_test_id("avatar-select")).to_be_enabled()
    await page.get_by_test_id("open-room").click()
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    room_id = (await page.get_by_test_id("room-id").text_content()).strip()
    assert [body["forward_events"] for url, body in asked if url.endswith("/v1/rooms")] == [True]

    final = page.locator('[data-testid="reply"][data-final="true"] .reply-text')
    assert await page.evaluate(FORWARD_QA, ["Forwarded ", "by the kiosk."]) == [True, True]
    await expect(final).to_have_text("Forwarded by the kiosk.")
    replies = [json.loads(e.data) for e in bridge.rooms.registry.live[room_id].events.history if e.type == "reply"]
    assert replies and all(e["source"] == "browser" for e in replies)

    await page.reload()  # resumes the room with a fresh ticket, asked for with the forward scope
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    assert [body for url, body in asked if url.endswith("/tickets")] == [{"forward_events": True}]
    assert await page.evaluate(FORWARD_QA, ["Still ", "forwarding."]) == [True, True]
    await expect(final).to_have_text("Still forwarding.")
    assert page.errors == []
    await page.get_by_test_id("end-room").click()
    await expect(page.get_by_test_id("room-state")).to_have_text("closed")


# -- the JS client module -----------------------------------------------------------------------

SETUP = """async ([qa, reconnect]) => {
  const mod = await import("/static/bridge.mjs");
  window.mod = mod;
  const client = new mod.BridgeClient();
  window.client = client;
  const avatars = await client.avatars();
  // forwardEvents: this page forwards channel events below, so its tickets need the forward scope
  const room = await client.createRoom({ avatarId: avatars[0]._id, qaContext: qa, forwardEvents: true }, { reconnect });
  window.room = room;
  window.events = [];
  room.on("*", (e) => window.events.push(e));
  const info = await room.connect();
  return { id: room.id, status: room.status, state: info.state, channel: info.channel, avatars: avatars.length };
}"""

FAST_RECONNECT = {"initialDelay": 50, "maxDelay": 200}


async def events_of(page: Any, kind: str) -> list[dict[str, Any]]:
    return await page.evaluate("(t) => window.events.filter((e) => e.type === t)", kind)


async def test_client_module_commands_errors_reconnect_and_forwarding(
        bridge: Any, open_page: Callable[..., Any]) -> None:
    page = await open_page(bridge, "/healthz")
    info = await page.evaluate(SETUP, [QA, FAST_RECONNECT])
    assert info["status"] == "open" and info["state"] == "open" and info["avatars"] == 3
    live = bridge.rooms.registry.live[info["id"]]
    assert live.clients == 1

    # ack resolves with the queue position
    ack = await page.evaluate("room.speak('Hello there.')")
    assert ack == {"type": "ack", "id": ack["id"], "kind": "speak", "position": 1, "positions": [1],
                   "utterance": ack["utterance"], "utterances": [ack["utterance"]]}
    assert (await page.evaluate("room.setQaContext('We open at 9am.')"))["chars"] == len("We open at 9am.")
    assert (await page.evaluate("room.flush()"))["kind"] == "flush"
    # a stream, then cancel: what A2E has cannot be taken back, and the page hears every utterance
    streamed = await page.evaluate("""async () => {
      const delta = await room.speakDelta('s', 'Streamed in the page! And');
      const end = await room.speakEnd('s');
      let refused = null;
      try { await room.cancel(delta.utterance); } catch (e) { refused = e.code; }
      return { delta, end, refused };
    }""")
    assert streamed["end"]["utterance"] == streamed["delta"]["utterance"] and len(streamed["end"]["positions"]) == 2
    assert streamed["refused"] == "not_cancellable"
    await poll(lambda: events_of(page, "utterance"))
    states = {(e["id"], e["state"]) for e in await events_of(page, "utterance")}
    assert (streamed["delta"]["utterance"], "queued") in states and (ack["utterance"], "sent") in states
    assert (await page.evaluate("room.ping()"))["type"] == "pong"

    # errors reject with a BridgeError carrying the server's code
    errors = await page.evaluate("""async () => {
      const out = [];
      for (const call of [() => room.speak('   '), () => room.ask('x'.repeat(600)), () => room.command('speak', {})]) {
        try { await call(); out.push(null); }
        catch (e) { out.push({ code: e.code, name: e.name, bridgeError: e instanceof mod.BridgeError, message: e.message }); }
      }
      return out;
    }""")
    assert [e["code"] for e in errors] == ["invalid_input", "invalid_input", "invalid_frame"]
    assert all(e["bridgeError"] and e["name"] == "BridgeError" for e in errors)

    # a QA stream-message forwarded as the Agora Web SDK would hand it over becomes a reply event
    reply = await page.evaluate("""async () => {
      const enc = new TextEncoder();
      const done = room.waitFor('reply', (e) => e.final && e.text === 'Forwarded answer.');
      room.forwardRtcEvent('audio_started', '4242');
      room.forwardRtcEvent('stream_message', 4242, enc.encode(JSON.stringify({type: 'QA', message: 'Forwarded ', pos: 'start'})));
      room.forwardRtcEvent('stream_message', 4242, enc.encode(JSON.stringify({type: 'QA', message: 'answer.', pos: 'end'})).buffer);
      const r = await done;
      const stopped = room.waitFor('speaking_stopped');
      room.forwardRtcEvent('audio_stopped', 4242);
      await stopped;
      return r;
    }""")
    assert reply["type"] == "reply" and reply["final"] is True and reply["reply_id"]
    partial = [e for e in await events_of(page, "reply") if e["reply_id"] == reply["reply_id"]]
    assert [e["text"] for e in partial] == ["Forwarded ", "Forwarded answer."]  # accumulated, then final
    assert await events_of(page, "speaking_started")

    # a malformed forward comes back as an error event (rtc_event frames are not acked)
    bad = await page.evaluate("""async () => {
      const err = room.waitFor('error', (e) => e.id == null);
      room.forwardRtcEvent('bogus', 1);
      return await err;
    }""")
    assert bad["code"] == "bad_request"

    # a drop: the command in flight rejects with connection_lost; the client reconnects with a
    # fresh ticket to the same room and the next command is acked
    dropped = await page.evaluate("""async () => {
      const lost = room.ping().then(() => null, (e) => ({ code: e.code, closeCode: e.closeCode }));
      room._ws.close(4999, 'test drop');
      const ack = await room.speak('After the drop.');
      return { lost: await lost, ack, status: room.status };
    }""")
    assert dropped["lost"] == {"code": "connection_lost", "closeCode": 4999}
    assert dropped["ack"]["kind"] == "speak" and dropped["status"] == "open"
    disconnected = await events_of(page, "disconnected")
    assert disconnected == [{"type": "disconnected", "code": 4999, "reason": "test drop", "willReconnect": True}]
    assert (await events_of(page, "reconnecting"))[0]["attempt"] == 1
    assert [e["reconnect"] for e in await events_of(page, "connected")] == [False, True]
    assert len(await events_of(page, "room")) >= 2  # the server's greeting on each connection
    assert live.clients == 1 and live.room.state.value == "open"

    # ask after the reconnect: the simulator's reply arrives on the new connection
    answer = await page.evaluate("""async (q) => {
      const done = room.waitFor('reply', (e) => e.final && !e.text.startsWith('Forwarded'));
      await room.ask(q);
      return (await done).text;
    }""", QUESTION)
    assert answer == answer_for(QUESTION, "We open at 9am.")

    # close({leave}): the room is left, the handle is done
    closed = await page.evaluate("""async () => {
      const info = await room.close({ leave: true });
      let after;
      try { await room.speak('too late'); } catch (e) { after = e.code; }
      return { state: info.state, status: room.status, after, types: window.events.map((e) => e.type).slice(-3) };
    }""")
    assert closed["state"] == "closed" and closed["status"] == "closed" and closed["after"] == "closed"
    assert "room_closed" in closed["types"] and closed["types"][-1] == "closed"
    assert (await sim_room(bridge, info["channel"]))["status"] == "left"
    assert page.errors == []


async def test_client_module_reconnects_after_a_server_side_drop(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    """The server closes the socket (4429: too many frames); pending commands fail, the client comes back."""
    bridge = await bridge_factory(ws_rate_limit=0.5, ws_rate_burst=5)
    page = await open_page(bridge, "/healthz")
    info = await page.evaluate(SETUP, [QA, FAST_RECONNECT])
    results = await page.evaluate("""async () => {
      const pings = [];
      for (let i = 0; i < 8; i++) pings.push(room.ping().then(() => 'pong', (e) => e.code));
      return await Promise.all(pings);
    }""")
    # a burst of 5 frames is allowed: 5 pongs, the 6th frame closes the socket, 7 and 8 are lost with it
    assert results.count("pong") == 5 and results[5:] == ["connection_lost"] * 3, results
    assert (await events_of(page, "disconnected"))[0]["code"] == 4429
    ack = await page.evaluate("room.speak('Still here.')")
    assert ack["kind"] == "speak"
    assert [e["reconnect"] for e in await events_of(page, "connected")] == [False, True]
    live = bridge.rooms.registry.live[info["id"]]
    assert live.clients == 1
    # close({leave: false}) only disconnects: the room stays open (the bridge leaves it once idle)
    assert await page.evaluate("room.close({ leave: false }).then(() => room.status)") == "closed"
    await page.wait_for_function("() => window.events.at(-1).type === 'closed'")
    assert live.room.state.value == "open"
    await poll(lambda: live.clients == 0, what="the closed client detached")
    await bridge.http.delete(f"/v1/rooms/{info['id']}")


async def test_client_module_reconnects_at_once_when_told_to_4012(bridge: Any, open_page: Callable[..., Any]) -> None:
    """A hand-over (many instances) closes with 4012: the first reconnect goes at once, whatever the backoff."""
    from bridge.frames import CloseCode

    page = await open_page(bridge, "/healthz")
    info = await page.evaluate(SETUP, [None, {"initialDelay": 60000, "maxDelay": 60000}])
    await poll(lambda: bridge.rooms.registry.live[info["id"]].events.subscriber_count == 1, what="the page attached")
    (conn,) = bridge.rooms.registry.live[info["id"]].events.subscribers()
    conn.shut(CloseCode.RECONNECT, "the room moved to another instance: reconnect")
    await page.wait_for_function("() => window.events.filter((e) => e.type === 'connected').length === 2",
                                 timeout=3000)
    assert (await events_of(page, "disconnected"))[0]["code"] == 4012
    assert [e["delay"] for e in await events_of(page, "reconnecting")] == [0]
    assert (await page.evaluate("room.speak('Right back.')"))["kind"] == "speak"
    await bridge.http.delete(f"/v1/rooms/{info['id']}")


async def test_client_module_does_not_reconnect_once_the_room_is_closed(
        bridge: Any, open_page: Callable[..., Any]) -> None:
    page = await open_page(bridge, "/healthz")
    info = await page.evaluate(SETUP, [None, FAST_RECONNECT])
    await page.evaluate("window.closedEvent = room.waitFor('closed'); undefined")
    response = await bridge.http.delete(f"/v1/rooms/{info['id']}")
    assert response.json()["state"] == "closed"
    event = await page.evaluate("window.closedEvent")
    assert event["code"] == 4000
    await page.wait_for_timeout(300)  # well past the first reconnect delay
    types = await page.evaluate("window.events.map((e) => e.type)")
    assert "room_closed" in types and "reconnecting" not in types
    state = await page.evaluate("""async () => {
      let code; try { await room.ping(); } catch (e) { code = e.code; }
      return { status: room.status, state: room.state, code };
    }""")
    assert state == {"status": "closed", "state": "closed", "code": "closed"}

    # connecting to a room that is gone fails without retrying
    gone = await page.evaluate("""async (id) => {
      const r = await client.getRoom(id);
      try { await r.connect(); return null; } catch (e) { return { code: e.code, http: e.status, status: r.status }; }
    }""", info["id"])
    assert gone == {"code": "room_not_open", "http": 409, "status": "closed"}  # no ticket for a closed room


EVENT_TYPES = ("room", "command", "utterance", "reply", "speaking_started", "speaking_stopped", "room_closed")


async def test_client_module_events_filter(bridge: Any, open_page: Callable[..., Any]) -> None:
    """``events``: the handle's socket takes only those room events (its own answers still come);
    an unknown type is refused for good, without reconnecting."""
    page = await open_page(bridge, "/healthz")
    got = await page.evaluate("""async () => {
      const { BridgeClient } = await import('/static/bridge.mjs');
      const client = new BridgeClient();
      const room = await client.createRoom({}, { events: ["command"] });
      const seen = [];
      let two;
      const commands = new Promise((resolve) => { two = resolve; });
      room.on("*", (e) => { seen.push(e.type); if (seen.filter((t) => t === "command").length === 2) two(); });
      await room.connect();
      const first = await room.speak("One.");
      await room.speak("Two.");
      await commands;
      const pong = await room.ping();  // after whatever the bridge gave this socket before it
      const upToPong = [...seen];
      const bad = await client.getRoom(room.id, { events: ["command", "acks"], reconnect: { initialDelay: 10 } });
      let refused;
      try { await bad.connect(); } catch (e) { refused = { code: e.closeCode, status: bad.status }; }
      await room.close();
      return { seen: upToPong, first: first.kind, pong: pong.type, refused };
    }""")
    assert got["first"] == "speak" and got["pong"] == "pong"
    # of the room's events, only the two commands (between them: the first's `sent`, the second's `queued`)
    assert [t for t in got["seen"] if t in EVENT_TYPES] == ["room", "command", "command"]
    assert got["refused"] == {"code": 1008, "status": "closed"}


async def test_client_module_http_errors(bridge: Any, open_page: Callable[..., Any]) -> None:
    page = await open_page(bridge, "/healthz")
    result = await page.evaluate("""async () => {
      const { BridgeClient } = await import('/static/bridge.mjs');
      const client = new BridgeClient({ baseUrl: location.origin + '/' });
      const out = {};
      try { await client.getRoom('rm_nope'); } catch (e) { out.missing = { code: e.code, status: e.status }; }
      try { await client.createRoom({ expireSeconds: 5 }); } catch (e) { out.invalid = { code: e.code, status: e.status }; }
      out.closeMissing = await client.closeRoom('rm_nope').then(() => null, (e) => e.code);
      return out;
    }""")
    assert result == {"missing": {"code": "not_found", "status": 404},
                      "invalid": {"code": "invalid_input", "status": 422},
                      "closeMissing": "not_found"}
