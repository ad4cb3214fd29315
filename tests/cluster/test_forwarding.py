"""One room, clients on three instances: commands forwarded to the owner and acked end to end, the
room's events on every instance in one order, SSE resuming on any instance."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import ACME, WAIT, EventStream, Fleet, create_room_sync, recv, send

BROADCAST = ("command", "utterance")  # what every client of the room gets, wherever it is connected


async def open_room_ws(fleet: Fleet, name: str, room_id: str, query: str = "") -> ClientConnection:
    url = fleet.urls[name].replace("http", "ws", 1) + f"/v1/rooms/{room_id}/ws{query}"
    ws = await asyncio.wait_for(connect(url, additional_headers=ACME, max_size=None), WAIT)
    assert (await recv(ws))["type"] == "room"
    return ws


async def read_until(ws: ClientConnection, frames: list[dict[str, Any]], done: Any) -> None:
    while not done(frames):
        frames.append(await recv(ws, timeout=10))


def test_clients_on_three_instances_see_the_same_ordered_acks_and_events(fleet: Fleet,
                                                                          shared_redis: redis.Redis) -> None:
    fleet.start("a", "b", "c")
    room = create_room_sync(fleet.urls["a"], ACME)
    assert shared_redis.get(f"a2eb:lease:{room['id']}") == "a"

    async def scenario() -> None:
        sockets = {name: await open_room_ws(fleet, name, room["id"]) for name in ("a", "b", "c")}
        # a mirror's client that takes only commands: the owner's events replayed there are filtered too
        only_commands = await open_room_ws(fleet, "c", room["id"], "?events=command")
        seen: dict[str, list[dict[str, Any]]] = {name: [] for name in sockets}
        for turn in range(3):  # interleaved: a, b, c, a, b, c, ...
            for name, ws in sockets.items():
                await send(ws, {"type": "speak", "id": f"{name}{turn}", "text": f"{name} says {turn}."})
        commands = 9
        await asyncio.gather(*(read_until(ws, seen[name], lambda fs: sum(
            f["type"] == "command" for f in fs) >= commands and sum(f["type"] == "ack" for f in fs) >= 3)
            for name, ws in sockets.items()))
        # REST through the third instance, and an SSE stream on the second resuming after event 2
        r = await asyncio.to_thread(httpx.post, f"{fleet.urls['c']}/v1/rooms/{room['id']}/speak",
                                    json={"text": "Over REST."}, headers=ACME, timeout=10)
        assert r.status_code == 200, r.text
        rest = r.json()
        for name, ws in sockets.items():
            await read_until(ws, seen[name], lambda fs: sum(f["type"] == "command" for f in fs) >= commands + 1)
        filtered: list[dict[str, Any]] = []
        await read_until(only_commands, filtered, lambda fs: len(fs) >= commands + 1)
        await send(only_commands, {"type": "ping", "id": "last"})  # after whatever else it was given
        assert (await recv(only_commands)) == {"type": "pong", "id": "last"}
        await only_commands.close()
        async with httpx.AsyncClient(timeout=10) as http, http.stream(
                "GET", f"{fleet.urls['b']}/v1/rooms/{room['id']}/events", headers={**ACME, "Last-Event-ID": "2"}) as resp:
            assert resp.status_code == 200
            stream = EventStream(resp)
            resumed = []
            while len([e for e in resumed if e["event"] == "command"]) < commands + 1:
                event = await stream.next(10)
                assert event is not None
                resumed.append(event)
        for ws in sockets.values():
            await ws.close()

        broadcast = {name: [f for f in frames if f["type"] in BROADCAST] for name, frames in seen.items()}
        assert broadcast["a"] == broadcast["b"] == broadcast["c"]  # the same events, in the same order
        assert filtered == [f for f in broadcast["c"] if f["type"] == "command"]
        positions = [f["seq"] for f in broadcast["a"] if f["type"] == "command"]
        assert positions == sorted(positions) and len(set(positions)) == commands + 1
        for name, frames in seen.items():
            acks = [f for f in frames if f["type"] == "ack"]
            assert [a["id"] for a in acks] == [f"{name}{t}" for t in range(3)]  # each sender's order holds
            for ack in acks:
                queued = next((f for f in frames if f["type"] == "queued" and f["id"] == ack["id"]), None)
                assert queued is not None, (name, [(f["type"], f.get("id")) for f in frames])
                said = next(i for i, f in enumerate(frames) if f["type"] == "command"
                            and f["utterance"] == ack["utterance"])
                assert frames.index(queued) < frames.index(ack) < said  # queued, ack, then the event
                assert ack["positions"] == [frames[said]["seq"]]
        assert rest["positions"] == [positions[-1]]
        # SSE on b resumed after id 2: the same events, ids continuing
        ids = [int(e["id"]) for e in resumed if "id" in e]
        assert ids and ids[0] == 3 and ids == sorted(ids)
        assert [e["data"] for e in resumed if e["event"] in BROADCAST][-(commands + 1) * 2:] == \
            broadcast["a"][-(commands + 1) * 2:]

    asyncio.run(scenario())
    # A2E got each speak once, from the owner
    sim_room = next(r for r in fleet.sim_state()["rooms"] if r["channel"] == room["channel"])
    assert sim_room["commands"] == 10


def test_errors_come_back_as_they_were_raised(fleet: Fleet) -> None:
    """A refusal by the owner reaches a client of another instance with the same status and code."""
    fleet.start("a", "b")
    room = create_room_sync(fleet.urls["a"], ACME)
    r = httpx.delete(f"{fleet.urls['b']}/v1/rooms/{room['id']}/utterances/ut_nope", headers=ACME, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = httpx.post(f"{fleet.urls['b']}/v1/rooms/{room['id']}/flush", headers=ACME, timeout=10)
    assert r.status_code == 200 and r.json() == {"flushed": 0, "dropped": []}, r.text

    async def bad_stream() -> dict[str, Any]:
        async with await open_room_ws(fleet, "b", room["id"]) as ws:
            await send(ws, {"type": "speak_end", "id": "e", "stream": "never-opened"})
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    error = asyncio.run(bad_stream())
    assert error["type"] == "error" and error["code"] == "not_found" and error["id"] == "e", error
    # closed through b: left at A2E by its owner, answered with the room as it is
    r = httpx.delete(f"{fleet.urls['b']}/v1/rooms/{room['id']}", headers=ACME, timeout=10)
    assert r.status_code == 200 and r.json()["state"] in ("closing", "closed"), r.text
    assert room["channel"] not in fleet.open_channels()
