"""``/v1/rooms/{id}/ws`` over real sockets: the bridge under uvicorn on loopback, the A2E simulator
behind it, the ``websockets`` client in front. Every wait is bounded (see ``tests.helpers.WAIT``)."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import httpx
import pytest

from bridge import frames as p
from bridge.a2e.client import A2EClient
from bridge.app import create_app
from bridge.serving import WS_IMPLEMENTATION, EmbeddedServer
from bridge.settings import Settings
from bridge.simulator.feed import answer_for
from tests.helpers import (
    ACME,
    GLOBEX,
    KEYS,
    WAIT,
    RawWS,
    add_fault,
    closed,
    fault_hits,
    of_type,
    open_ws,
    ping_pong,
    recv,
    send,
    stream_message,
    until,
    wait_observed,
)
from tests.helpers import create_room as _create_room

create_room = functools.partial(_create_room, headers=ACME)  # these tests speak as acme unless told otherwise

CONTEXT = ("Our store opens at nine in the morning. Parking is free behind the building. "
           "The cafe serves espresso and croissants.")


def sim_commands(bridge: Any, room: dict[str, Any]) -> list[dict[str, Any]]:
    return bridge.sim.state.rooms[room["channel"]].commands


# -- handshakes ------------------------------------------------------------------------------------
async def test_bearer_handshake_first_frame_is_the_room(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        first = await recv(ws)
        assert first["type"] == "room"
        assert first["room"]["id"] == room["id"] and first["room"]["state"] == "open"
        assert first["room"]["channel"] == room["channel"]
        await ping_pong(ws)
        assert acme.rooms.registry.live[room["id"]].clients == 1


async def test_ticket_handshake(acme: Any) -> None:
    room = await create_room(acme)
    assert room["ws_url"].endswith(f"/v1/rooms/{room['id']}/ws")
    async with await open_ws(acme, room["id"], headers=None, ticket=room["ws_ticket"]) as ws:
        assert (await recv(ws))["type"] == "room"
        await ping_pong(ws)
    fresh = (await acme.http.post(f"/v1/rooms/{room['id']}/tickets")).json()["ws_ticket"]
    async with await open_ws(acme, room["id"], headers=None, ticket=fresh) as ws:
        assert (await recv(ws))["type"] == "room"


async def refused(bridge: Any, room_id: str, **kwargs: Any) -> tuple[int | None, str]:
    """Connect and return the close code and reason; it must come promptly, with no frame first."""
    ws = await open_ws(bridge, room_id, **kwargs)
    code, frames = await closed(ws, timeout=WAIT)
    assert frames == []
    assert ws.protocol.close_rcvd is not None
    return code, ws.protocol.close_rcvd.reason


async def test_refused_handshakes(acme: Any) -> None:
    room = await create_room(acme)
    auth = acme.app.state.auth
    assert (await refused(acme, room["id"], headers=GLOBEX))[0] == p.CloseCode.NOT_FOUND  # another tenant's room
    assert (await refused(acme, "no-such-room"))[0] == p.CloseCode.NOT_FOUND
    # a genuine ticket, but for the other tenant: their room does not exist for them
    other = auth.issue_ticket(room["id"], "globex")
    assert (await refused(acme, room["id"], headers=None, ticket=other))[0] == p.CloseCode.NOT_FOUND

    assert (await refused(acme, room["id"], headers=None))[0] == p.CloseCode.UNAUTHORIZED
    assert (await refused(acme, room["id"], headers={"Authorization": "Bearer wrong"}))[0] == p.CloseCode.UNAUTHORIZED
    assert (await refused(acme, room["id"], headers={"Authorization": "Basic a2V5LWFjbWU="}))[0] == p.CloseCode.UNAUTHORIZED
    expired = auth.issue_ticket(room["id"], "acme", now=time.time() - 3600)
    code, reason = await refused(acme, room["id"], headers=None, ticket=expired)
    assert (code, reason) == (p.CloseCode.UNAUTHORIZED, "ticket expired")
    forged = room["ws_ticket"][:-4] + ("AAAA" if not room["ws_ticket"].endswith("AAAA") else "BBBB")
    assert await refused(acme, room["id"], headers=None, ticket=forged) == (p.CloseCode.UNAUTHORIZED, "invalid ticket")
    assert (await refused(acme, room["id"], headers=None, ticket="garbage"))[0] == p.CloseCode.UNAUTHORIZED
    other_room = await create_room(acme)
    code, reason = await refused(acme, room["id"], headers=None, ticket=other_room["ws_ticket"])
    assert (code, reason) == (p.CloseCode.UNAUTHORIZED, "ticket is for another room")
    # a refused ticket is refused even with a valid key alongside
    assert (await refused(acme, room["id"], headers=ACME, ticket=expired))[0] == p.CloseCode.UNAUTHORIZED


async def test_ticket_ttl_expires(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys={"key-acme": "acme"}, headers=ACME, ticket_ttl=0.001)
    room = await create_room(bridge)
    await asyncio.sleep(1.01)  # tickets carry whole seconds
    code, reason = await refused(bridge, room["id"], headers=None, ticket=room["ws_ticket"])
    assert (code, reason) == (p.CloseCode.UNAUTHORIZED, "ticket expired")


async def test_closed_room_refuses_with_4009(acme: Any) -> None:
    room = await create_room(acme)
    ticket = room["ws_ticket"]
    assert (await acme.http.delete(f"/v1/rooms/{room['id']}")).json()["state"] == "closed"
    assert (await refused(acme, room["id"]))[0] == p.CloseCode.ROOM_NOT_OPEN
    assert (await refused(acme, room["id"], headers=None, ticket=ticket))[0] == p.CloseCode.ROOM_NOT_OPEN
    assert (await refused(acme, room["id"], headers=GLOBEX))[0] == p.CloseCode.NOT_FOUND


# -- commands --------------------------------------------------------------------------------------
async def test_speak_and_ask_ack_after_a2e_accepted(acme: Any) -> None:
    room = await create_room(acme, qa_context=CONTEXT)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "s1", "text": "Welcome to the store."})
        ack = await until(ws, of_type("ack", id="s1"))
        # A2E (the simulator) has the command by the time the client sees the ack
        assert [c["text"] for c in sim_commands(acme, room)] == ["Welcome to the store."]
        assert ack["kind"] == "speak" and ack["position"] == 1 and ack["positions"] == [1]
        await send(ws, {"type": "ask", "id": 2, "text": "When do you open?"})
        ack = await until(ws, of_type("ack", id=2))
        assert ack["kind"] == "ask" and ack["position"] == 2
        assert [c["kind"] for c in sim_commands(acme, room)] == ["speak", "ask"]
        assert acme.sim.state.counters["speak"] == 1 and acme.sim.state.counters["ask"] == 1


async def test_a_speak_a2e_carried_out_without_answering_is_outcome_unknown(bridge_factory: Any) -> None:
    """The answer to a speak is lost after A2E said it: the frame gets ``outcome_unknown`` and the
    sentence is not sent again (the avatar says it once)."""
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME)
    room = await create_room(bridge)
    add_fault(bridge.sim, endpoint="speak", kind="lost_answer")  # every time: a resend would be lost as well
    async with await open_ws(bridge, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "s1", "text": "Only once."})
        error = await until(ws, of_type("error", id="s1"))
        assert error["code"] == "outcome_unknown" and "not send it again" in error["message"]
        assert [c["text"] for c in sim_commands(bridge, room)] == ["Only once."]
        assert fault_hits(bridge.sim) == [1]
        await ping_pong(ws)  # and the connection goes on


async def test_long_speak_is_split_and_acked_with_every_position(acme: Any) -> None:
    room = await create_room(acme)
    text = " ".join(f"This is sentence number {i} of a long announcement." for i in range(20))
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "long", "text": text})
        ack = await until(ws, of_type("ack", id="long"))
        chunks = sim_commands(acme, room)
        assert len(chunks) > 1 and ack["positions"] == list(range(1, len(chunks) + 1))
        assert all(len(c["text"]) <= 500 for c in chunks)


async def test_no_ack_until_a2e_answers_and_flush(acme: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While A2E has not answered, no ack; flush drops what waits behind it and says so."""
    room = await create_room(acme)
    gate = asyncio.Event()
    a2e = acme.app.state.a2e
    real_speak = a2e.speak

    async def gated_speak(channel: str, text: str, **kwargs: Any) -> Any:
        await gate.wait()
        return await real_speak(channel, text, **kwargs)

    monkeypatch.setattr(a2e, "speak", gated_speak)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        for i in range(3):
            await send(ws, {"type": "speak", "id": f"s{i}", "text": f"Sentence {i}."})
        seen: list[dict[str, Any]] = []
        await send(ws, {"type": "ping", "id": "alive"})
        await until(ws, of_type("pong", id="alive"), seen=seen)  # frames are handled in order: all three are queued
        await send(ws, {"type": "flush", "id": "f"})
        ack = await until(ws, of_type("ack", id="f"), seen=seen)
        queued = {f["id"]: f["utterance"] for f in seen if f["type"] == "queued"}
        assert ack == {"type": "ack", "id": "f", "kind": "flush", "flushed": 2, "dropped": [queued["s1"], queued["s2"]]}
        dropped = [await until(ws, of_type("error", code="flushed"), seen=seen) for _ in range(2)]
        assert sorted(e["id"] for e in dropped) == ["s1", "s2"]
        assert not [f for f in seen if f.get("type") == "ack"]  # s0 is still with A2E
        assert sim_commands(acme, room) == []
        gate.set()
        ack = await until(ws, of_type("ack", id="s0"))
        assert ack["position"] == 1 and [c["text"] for c in sim_commands(acme, room)] == ["Sentence 0."]
        await send(ws, {"type": "flush", "id": "f2"})
        assert (await until(ws, of_type("ack", id="f2")))["flushed"] == 0


async def test_set_qa_context(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "set_qa_context", "id": "q", "text": CONTEXT})
        ack = await until(ws, of_type("ack", id="q"))
        assert ack == {"type": "ack", "id": "q", "kind": "set_qa_context", "chars": len(CONTEXT)}
        assert acme.sim.state.rooms[room["channel"]].qa_context == CONTEXT
        await send(ws, {"type": "set_qa_context", "id": "big", "text": "x" * 5001})
        error = await until(ws, of_type("error", id="big"))
        assert error["code"] == "invalid_input"
        assert error["details"] == {"limit": 5000, "length": 5001}
        assert acme.sim.state.rooms[room["channel"]].qa_context == CONTEXT
        await ping_pong(ws)
        await send(ws, {"type": "set_qa_context", "id": "max", "text": "y" * 5000})
        assert (await until(ws, of_type("ack", id="max")))["chars"] == 5000
    assert (await acme.http.get(f"/v1/rooms/{room['id']}/qa-context")).json()["chars"] == 5000


async def test_ping_pong(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "ping", "id": 41})
        assert await recv(ws) == {"type": "pong", "id": 41}
        await send(ws, {"type": "ping"})
        assert await recv(ws) == {"type": "pong", "id": None}


BAD_FRAMES = [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_json"),
    (json.dumps({"type": "dance", "id": "x"}), "unknown_type"),
    (json.dumps({"type": "speak", "id": "x"}), "invalid_frame"),
    (json.dumps({"type": "speak", "id": "x", "text": 3}), "invalid_frame"),
    (json.dumps({"type": "ask", "id": "x", "text": ""}), "invalid_frame"),
    (json.dumps({"type": "ping", "id": 1.5}), "invalid_frame"),
    (json.dumps({"type": "speak", "id": "x", "text": "   "}), "invalid_input"),
    (json.dumps({"type": "ask", "id": "x", "text": "why? " * 120}), "invalid_input"),
    (json.dumps({"type": "rtc_event", "id": "x", "event": {"kind": "nope", "uid": 1}}), "bad_request"),
    (json.dumps({"type": "speak", "id": "x", "text": "y" * 2100}), "frame_too_large"),
    (b"\x00\x01binary", "binary_not_supported"),
]


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(bridge_factory: Any) -> None:
    bridge = await bridge_factory(ws_max_frame_bytes=2048)
    room = await create_room(bridge, headers={})
    async with await open_ws(bridge, room["id"], headers=None) as ws:
        await recv(ws)
        for n, (frame, code) in enumerate(BAD_FRAMES):
            await ws.send(frame)
            error = await recv(ws)
            assert error["type"] == "error" and error["code"] == code and error["message"], (frame[:80], error)
            if '"id": "x"' in str(frame) and code != "frame_too_large":  # too large: not even parsed
                assert error["id"] == "x", error  # the client's id comes back whenever there is one
            else:
                assert "id" not in error
            await ping_pong(ws, n)  # still usable
        await send(ws, {"type": "speak", "id": "ok", "text": "Still here."})
        assert (await until(ws, of_type("ack", id="ok")))["position"] == 1
        assert bridge.sim.state.counters.get("speak") == 1  # none of the bad frames reached A2E


async def test_flood_closes_with_4429(bridge_factory: Any) -> None:
    bridge = await bridge_factory(ws_rate_limit=5, ws_rate_burst=10)
    room = await create_room(bridge, headers={})
    async with await open_ws(bridge, room["id"], headers=None) as ws:
        await recv(ws)
        for i in range(40):
            await send(ws, {"type": "ping", "id": i})
        code, frames = await closed(ws)
        assert code == p.CloseCode.FLOOD
        pongs = [f["id"] for f in frames if f["type"] == "pong"]
        assert 10 <= len(pongs) <= 12 and pongs == sorted(pongs)  # the burst, then a little refill
    # the room is unharmed
    assert bridge.rooms.registry.live[room["id"]].room.state.value == "open"
    async with await open_ws(bridge, room["id"], headers=None) as ws:
        await recv(ws)
        await ping_pong(ws)


async def test_the_rate_limit_refills(bridge_factory: Any) -> None:
    bridge = await bridge_factory(ws_rate_limit=50, ws_rate_burst=5)
    room = await create_room(bridge, headers={})
    async with await open_ws(bridge, room["id"], headers=None) as ws:
        await recv(ws)
        for i in range(15):  # 3x the burst, but paced under the rate
            await ping_pong(ws, i)
            await asyncio.sleep(0.03)


# -- several clients -------------------------------------------------------------------------------
async def test_three_clients_share_one_order_and_every_event(acme: Any) -> None:
    room = await create_room(acme, qa_context=CONTEXT)
    await wait_observed(acme, room)
    clients = [await open_ws(acme, room["id"]) for _ in range(3)]
    try:
        for ws in clients:
            assert (await recv(ws))["type"] == "room"
        per_client = 6

        logs: list[list[dict[str, Any]]] = [[], [], []]

        async def talk(n: int, ws: Any) -> list[int]:
            for i in range(per_client):
                await send(ws, {"type": "speak", "id": f"c{n}-{i}", "text": f"Client {n} says {i}."})
            acks = {}
            while len(acks) < per_client:
                frame = await until(ws, of_type("ack"), seen=logs[n])
                acks[frame["id"]] = frame["position"]
            return [acks[f"c{n}-{i}"] for i in range(per_client)]

        positions = await asyncio.gather(*(talk(n, ws) for n, ws in enumerate(clients)))
        everything = sorted(pos for mine in positions for pos in mine)
        assert everything == list(range(1, 3 * per_client + 1))  # unique, no gaps: one shared order
        for mine in positions:
            assert mine == sorted(mine)  # each client's commands keep their order
        # A2E received them in exactly that order
        by_position = {pos: f"Client {n} says {i}." for n, mine in enumerate(positions) for i, pos in enumerate(mine)}
        assert [c["text"] for c in sim_commands(acme, room)] == [by_position[i] for i in sorted(by_position)]

        # one client asks; every client sees every command event and the whole reply
        await send(clients[0], {"type": "ask", "id": "q", "text": "Where is parking?"})
        expected = answer_for("Where is parking?", CONTEXT)
        for ws, seen in zip(clients, logs):
            await until(ws, lambda f: f.get("type") == "reply" and f["final"], seen=seen)
            await until(ws, of_type("speaking_stopped"), seen=seen)
            commands = [f["seq"] for f in seen if f["type"] == "command"]
            assert commands == list(range(1, 3 * per_client + 2))
            assert any(f["type"] == "speaking_started" for f in seen)
        # a client leaving does not end the room
        await clients[2].close()
        await send(clients[1], {"type": "speak", "id": "after", "text": "Still open."})
        ack = await until(clients[1], of_type("ack", id="after"))
        assert ack["position"] == 3 * per_client + 2
        event = await until(clients[0], of_type("command", seq=3 * per_client + 2))
        assert event == {"type": "command", "kind": "speak", "seq": 3 * per_client + 2, "text": "Still open.",
                         "utterance": ack["utterance"]}
        assert acme.rooms.registry.live[room["id"]].room.state.value == "open"
        assert expected
    finally:
        for ws in clients:
            await ws.close()


async def test_ask_reply_and_speaking_events_at_every_client(acme: Any) -> None:
    room = await create_room(acme, qa_context=CONTEXT)
    await wait_observed(acme, room)
    clients = [await open_ws(acme, room["id"]) for _ in range(2)]
    try:
        for ws in clients:
            await recv(ws)
        question = "Do you serve espresso?"
        await send(clients[1], {"type": "ask", "id": "q", "text": question})
        expected = answer_for(question, CONTEXT)
        assert "espresso" in expected
        for ws in clients:
            seen: list[dict[str, Any]] = []
            await until(ws, of_type("speaking_stopped"), seen=seen, timeout=10)
            kinds = [f["type"] for f in seen]
            assert kinds.index("speaking_started") < kinds.index("reply")
            replies = [f for f in seen if f["type"] == "reply"]
            finals = [f for f in replies if f["final"]]
            assert len(finals) == 1 and finals[0]["text"] == expected
            assert len({f["reply_id"] for f in replies}) == 1
            assert all(expected.startswith(f["text"]) for f in replies)  # accumulated text, growing
            assert kinds.index("reply") > kinds.index("command")
            assert seen[-1]["type"] == "reply" and seen[-1]["final"]  # speaking_stopped after the reply
    finally:
        for ws in clients:
            await ws.close()


async def test_forwarded_rtc_events_from_two_clients_make_one_reply(acme: Any) -> None:
    room = await create_room(acme)
    clients = [await open_ws(acme, room["id"]) for _ in range(2)]
    uid = 4242  # not the simulated avatar, which says nothing here
    events = [{"kind": "audio_started", "uid": uid}, stream_message(uid, "Hello ", "start"),
              stream_message(uid, "from the ", "middle"), stream_message(uid, "kiosk.", "end"),
              {"kind": "audio_stopped", "uid": uid}]
    try:
        for ws in clients:
            await recv(ws)
        for event in events:  # both kiosks see the same channel and forward everything
            for ws in clients:
                await send(ws, {"type": "rtc_event", "event": event})
        for ws in clients:
            seen: list[dict[str, Any]] = []
            await until(ws, of_type("speaking_stopped"), seen=seen)
            await ping_pong(ws)  # nothing else was pending
            reply_id, src = seen[1]["reply_id"], "browser"  # forwarded events say where they came from
            assert seen == [
                {"type": "speaking_started", "source": src},
                {"type": "reply", "text": "Hello ", "final": False, "reply_id": reply_id, "source": src},
                {"type": "reply", "text": "Hello from the ", "final": False, "reply_id": reply_id, "source": src},
                {"type": "reply", "text": "Hello from the kiosk.", "final": True, "reply_id": reply_id, "source": src},
            ]
    finally:
        for ws in clients:
            await ws.close()


# -- the room ends ---------------------------------------------------------------------------------
async def test_room_deleted_over_http_closes_every_client(acme: Any) -> None:
    room = await create_room(acme)
    clients = [await open_ws(acme, room["id"]) for _ in range(3)]
    for ws in clients:
        await recv(ws)
    response = await acme.http.delete(f"/v1/rooms/{room['id']}")
    assert response.status_code == 200
    for ws in clients:
        code, frames = await closed(ws)
        assert code == p.CloseCode.ROOM_CLOSED
        assert frames[-1]["type"] == "room_closed" and frames[-1]["reason"] == "client"
        assert frames[-1]["room"]["state"] == "closed"
        assert [f["room"]["state"] for f in frames if f["type"] == "room"] == ["closing"]


async def test_commands_in_a_closing_room_are_refused(acme: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    room = await create_room(acme)
    gate = asyncio.Event()
    real_leave = acme.app.state.a2e.leave

    async def slow_leave(channel: str) -> Any:
        await gate.wait()
        return await real_leave(channel)

    monkeypatch.setattr(acme.app.state.a2e, "leave", slow_leave)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        deleting = asyncio.create_task(acme.http.delete(f"/v1/rooms/{room['id']}"))
        await until(ws, lambda f: f["type"] == "room" and f["room"]["state"] == "closing")
        await send(ws, {"type": "speak", "id": "late", "text": "Too late."})
        assert (await until(ws, of_type("error", id="late")))["code"] == "room_not_open"
        assert (await refused(acme, room["id"]))[0] == p.CloseCode.ROOM_NOT_OPEN  # closing: no new clients
        gate.set()
        code, frames = await closed(ws)
        assert code == p.CloseCode.ROOM_CLOSED and frames[-1]["type"] == "room_closed"
        await deleting


# -- slow readers ----------------------------------------------------------------------------------
async def test_a_slow_reader_is_dropped_with_4008_and_the_room_goes_on(bridge_factory: Any) -> None:
    bridge = await bridge_factory(ws_send_buffer=8, ws_rate_limit=1000, ws_rate_burst=1000)
    room = await create_room(bridge, headers={})
    lr = bridge.rooms.registry.live[room["id"]]
    readers = [await open_ws(bridge, room["id"], headers=None) for _ in range(2)]
    slow = await RawWS.open(bridge.url, room["id"], paused=True)  # will read, too late
    dead = await RawWS.open(bridge.url, room["id"], paused=True)  # never reads at all
    try:
        for ws in readers:
            await recv(ws)
        assert lr.clients == 4
        # A forwarded reply grows with each chunk: 48 chunks of 8 KiB make ~9 MiB of reply events,
        # more than the kernel buffers of a client that does not read.
        chunk, count = "x" * 8192, 48
        events = [stream_message(77, chunk, "start")] + [stream_message(77, chunk, "middle")] * (count - 2) + [
            stream_message(77, chunk, "end")]

        async def read_all(ws: Any) -> int:
            got = 0
            while True:
                frame = await recv(ws, timeout=20)
                if frame["type"] == "reply":
                    got += 1
                    if frame["final"]:
                        return got

        reading = [asyncio.create_task(read_all(ws)) for ws in readers]
        for event in events:
            await send(readers[0], {"type": "rtc_event", "event": event})
        assert await asyncio.wait_for(asyncio.gather(*reading), 30) == [count, count]  # nothing lost for them

        slow.resume()  # it reads now: what was sent before the overflow, then 4008
        code, frames, _ = await slow.until_close()
        assert code == p.CloseCode.SLOW_CONSUMER
        assert frames[0]["type"] == "room"
        assert 0 < len([f for f in frames if f["type"] == "reply"]) < count
        # the one that never reads is let go as well: the room no longer counts it
        deadline = time.monotonic() + 10
        while lr.clients > 2:
            assert time.monotonic() < deadline, f"slow clients still attached: {lr.clients}"
            await asyncio.sleep(0.05)
        assert lr.events.subscriber_count == 2
        # and the room keeps working for the others
        await send(readers[1], {"type": "speak", "id": "go", "text": "Carry on."})
        assert (await until(readers[1], of_type("ack", id="go")))["position"] == 1
        await until(readers[0], of_type("command", seq=1))
    finally:
        slow.abort()
        dead.abort()
        for ws in readers:
            await ws.close()


# -- heartbeats ------------------------------------------------------------------------------------
async def test_a_client_that_stops_answering_pings_is_dropped(tmp_path: Any, sim: Any) -> None:
    """uvicorn pings every ``ws_ping_interval`` and drops a client that does not answer. The client
    is a raw socket that never answers (a ``websockets`` client answers pings by itself, even with
    ``ping_interval=None``). The bridge runs here the way ``a2e-bridge serve`` runs it: uvicorn
    with ``ws_ping_interval`` and ``ws_ping_timeout`` both set from ``Settings.ws_ping_interval``."""
    settings = Settings(_env_file=None, db=str(tmp_path / "bridge.db"), a2e_timeout=2.0, ws_ping_interval=0.2)
    async with A2EClient("test-key", sim.url, timeout=2.0) as client:
        app = create_app(settings, a2e=client)
        server = EmbeddedServer.for_app(app, ws_ping_interval=settings.ws_ping_interval,
                                        ws_ping_timeout=settings.ws_ping_interval, ws=WS_IMPLEMENTATION)
        url = await server.start()
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                room = (await http.post("/v1/rooms", json={})).json()
            raw = await RawWS.open(url, room["id"])
            lr = app.state.rooms.registry.live[room["id"]]
            assert lr.clients == 1
            code, frames, opcodes = await raw.until_close()  # within its bound: the ping timeout closed it
            assert frames[0]["type"] == "room"
            assert 0x9 in opcodes  # pinged
            assert code == 1011  # keepalive ping timeout
            deadline = time.monotonic() + WAIT
            while lr.clients:
                assert time.monotonic() < deadline, "the unresponsive client is still attached"
                await asyncio.sleep(0.02)
            assert lr.room.state.value == "open"  # the room outlives it
            raw.abort()
        finally:
            await server.stop()


async def test_ticket_clients_are_kept_holding_a_valid_ticket(bridge_factory: Any) -> None:
    """A browser has no key: the bridge pushes a new ticket before the one it holds expires, and a
    reconnect with it works after the original ticket has expired."""
    bridge = await bridge_factory(api_keys=KEYS, ticket_ttl=3)
    room = await create_room(bridge)
    async with await open_ws(bridge, room["id"], headers=None, ticket=room["ws_ticket"]) as ws:
        pushed = await until(ws, of_type("ticket"))
        assert pushed["expires_in"] == 3 and pushed["ws_ticket"] != room["ws_ticket"]
        newer = await until(ws, of_type("ticket"))  # and again, half-way through that one's life

    def expiry(ticket: str) -> int:  # tickets are room.tenant.expiry.signature
        return int(ticket.split(".")[2])

    assert expiry(newer["ws_ticket"]) > expiry(room["ws_ticket"])
    await asyncio.sleep(max(0.0, expiry(room["ws_ticket"]) + 0.1 - time.time()))  # let the first one lapse
    code, _ = await refused(bridge, room["id"], headers=None, ticket=room["ws_ticket"])
    assert code == p.CloseCode.UNAUTHORIZED
    async with await open_ws(bridge, room["id"], headers=None, ticket=newer["ws_ticket"]) as ws:
        assert (await recv(ws))["type"] == "room"


async def test_key_clients_get_no_tickets(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=KEYS, ticket_ttl=0.2)
    room = await create_room(bridge)
    async with await open_ws(bridge, room["id"]) as ws:
        seen: list[dict[str, Any]] = []
        await recv(ws)
        await asyncio.sleep(0.5)  # several ticket lifetimes
        await send(ws, {"type": "ping", "id": "p"})
        await until(ws, of_type("pong", id="p"), seen=seen)
        assert not [f for f in seen if f["type"] == "ticket"]
