"""``?events=`` on the websocket: a client that asked for some event types gets only those (and
``room``/``room_closed``), always its own answers, while an unfiltered client of the same room gets
everything; an unknown type refuses the handshake with a structured error. Over real sockets."""

from __future__ import annotations

from typing import Any

from bridge import frames as p
from tests.helpers import closed, create_room, of_type, open_ws, poll, recv, send, until, wait_observed


async def frames_until_pong(ws: Any, frame_id: str) -> list[dict[str, Any]]:
    """Every frame up to the pong of a ping sent now (events delivered before it come before it)."""
    await send(ws, {"type": "ping", "id": frame_id})
    seen: list[dict[str, Any]] = []
    await until(ws, of_type("pong", id=frame_id), seen=seen)
    return seen


async def test_a_filtered_and_an_unfiltered_client_in_one_room(acme: Any) -> None:
    room = await create_room(acme)
    rid = room["id"]
    await wait_observed(acme, room)
    async with (await open_ws(acme, rid) as everything, await open_ws(acme, rid, events="command") as sender,
                await open_ws(acme, rid, events="") as quiet):
        for ws in (everything, sender, quiet):
            assert (await recv(ws))["type"] == "room"  # never filtered
        await send(sender, {"type": "speak", "id": "s1", "text": "Hello."})
        own = [await recv(sender) for _ in range(3)]
        # its own answers, then the event it asked for; none of the four `utterance` events between
        assert [(f["type"], f.get("id")) for f in own] == [("queued", "s1"), ("ack", "s1"), ("command", None)]
        uid = own[0]["utterance"]
        seen: list[dict[str, Any]] = []
        await until(everything, of_type("utterance", id=uid, state="done"), seen=seen)
        assert {"utterance", "command", "speaking_started"} <= {f["type"] for f in seen}
        # what `everything` saw was handed to every subscriber in the same loop callback: by now the
        # filtered ones had their chance, and a ping's answer comes after what they were given
        assert await frames_until_pong(sender, "after") == []
        assert await frames_until_pong(quiet, "after") == []
        # their own answers are never filtered: errors with an id, flush and cancel acks
        await send(quiet, {"type": "cancel", "id": "ut_nonexistent1"})
        assert (await recv(quiet))["code"] == "not_found"
        await send(quiet, {"type": "flush", "id": "f"})
        assert (await recv(quiet))["kind"] == "flush"
        # and the room's end reaches them all
        assert (await acme.http.delete(f"/v1/rooms/{rid}")).status_code == 200
        for ws in (sender, quiet):
            code, frames = await closed(ws)
            assert code == p.CloseCode.ROOM_CLOSED
            assert {f["type"] for f in frames} <= {"room", "room_closed"} and frames[-1]["type"] == "room_closed"


async def test_the_filter_takes_a_list(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"], events="utterance, command") as ws:  # spaces are allowed
        assert (await recv(ws))["type"] == "room"
        await send(ws, {"type": "speak", "id": "s", "text": "Hi."})
        seen: list[dict[str, Any]] = []
        await until(ws, of_type("command"), seen=seen)
        assert {f["type"] for f in seen} == {"utterance", "queued", "ack"}


async def test_an_unknown_event_type_refuses_the_socket(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"], events="command,acks,speaking") as ws:
        code, frames = await closed(ws)
    assert code == p.CloseCode.BAD_QUERY == 1008
    assert len(frames) == 1 and frames[0]["type"] == "error" and frames[0]["code"] == "invalid_input"
    assert frames[0]["details"][0]["loc"] == ["query", "events"]
    assert frames[0]["details"][0]["unknown"] == ["acks", "speaking"]
    assert "acks, speaking" in frames[0]["message"]
    # refused before the room was touched: no client slot taken, the room as it was
    await poll(lambda: acme.rooms.registry.live[room["id"]].clients == 0, what="no client counted")
    assert acme.rooms.registry.live[room["id"]].events.subscriber_count == 0


async def test_a_refused_key_is_told_so_before_its_filter(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"], headers={"Authorization": "Bearer nope"}, events="acks") as ws:
        code, frames = await closed(ws)
    assert code == p.CloseCode.UNAUTHORIZED and frames == []
