"""A2E failing in every way the simulator can fail: clear errors, no blind retries of paid or visible
calls, leaves that always get through, and a registry that never loses a room.

The bridge runs in-process; the simulator behind it is a real server, whose faults (timeouts, dropped
connections) need sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.a2e.errors import A2EBadRequest, A2ENotFound, A2ETimeout, A2EUnavailable
from bridge.errors import from_a2e
from bridge.rooms.models import RoomState
from bridge.simulator.state import AVATARS
from tests.helpers import add_fault, assert_error, clear_faults, create_room, fault_hits, poll

pytestmark = pytest.mark.in_process


async def assert_consistent(bridge) -> dict[str, Any]:
    """Once the closes under way have finished, the store, the manager and A2E agree on every room."""

    async def settled() -> bool:
        return not any(r.state in (RoomState.CREATING, RoomState.CLOSING) for r in await bridge.rooms.registry.store.list_rooms())

    await poll(settled, timeout=15, what="no room creating or closing")
    rooms = await bridge.rooms.registry.store.list_rooms()
    upstream = bridge.sim.state.rooms
    bridge.sim.state.refresh()
    for room in rooms:
        if room.state is RoomState.OPEN:
            assert room.id in bridge.rooms.registry.live, room
            assert upstream[room.channel].status == "open", room
        elif room.state is RoomState.CLOSED:
            assert room.id not in bridge.rooms.registry.live, room
            assert upstream[room.channel].status in ("left", "expired"), room
        else:
            assert room.state is RoomState.FAILED, room
            assert room.id not in bridge.rooms.registry.live and room.close_reason is not None, room
            assert not room.channel, room  # never minted: nothing charged
    known = {r.channel: r for r in rooms if r.channel}
    for channel, sim_room in upstream.items():
        assert channel in known, f"A2E room {channel} unknown to the bridge"
        if sim_room.status == "open":
            assert known[channel].state is RoomState.OPEN
    assert set(bridge.rooms.registry.live) == {r.id for r in rooms if r.state is RoomState.OPEN}
    return {r.id: r for r in rooms}


async def test_no_avatar_host_is_503_and_the_room_is_recorded_failed(bridge_factory):
    bridge = await bridge_factory()
    add_fault(bridge.sim, endpoint="/api/v1/streaming-avatar/agora-token", kind="code_1001", times=1)
    r = await bridge.http.post("/v1/rooms", json={})
    assert_error(r, 503, "no_avatar_host")
    assert int(r.headers["Retry-After"]) > 0
    assert fault_hits(bridge.sim) == [1]  # a mint is paid for: never retried blindly
    rooms = await assert_consistent(bridge)
    [failed] = rooms.values()
    assert failed.state is RoomState.FAILED and failed.close_reason.value == "error"
    assert "occupied" in failed.error
    assert bridge.sim.state.rooms == {}
    listed = (await bridge.http.get("/v1/rooms")).json()["rooms"]
    assert [(x["id"], x["state"]) for x in listed] == [(failed.id, "failed")]
    await create_room(bridge)  # the fault is spent: the next room opens
    await assert_consistent(bridge)


async def test_mint_that_never_answers(bridge_factory):
    bridge = await bridge_factory(a2e_timeout=0.5)
    for kind, status, code in (("timeout", 504, "outcome_unknown"), ("drop_connection", 504, "outcome_unknown"),
                               ("http_500", 503, "upstream_unavailable")):
        add_fault(bridge.sim, endpoint="agora_token", kind=kind, seconds=2)
        r = await bridge.http.post("/v1/rooms", json={})
        assert_error(r, status, code)
        assert fault_hits(bridge.sim) == [1], kind
        clear_faults(bridge.sim)
    rooms = await assert_consistent(bridge)
    assert [r.state for r in rooms.values()] == [RoomState.FAILED] * 3
    assert (await bridge.http.get("/readyz")).status_code == 200


async def test_leave_failing_once_is_retried(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    add_fault(bridge.sim, endpoint="leave", kind="http_500", times=1)
    r = await bridge.http.delete(f"/v1/rooms/{room['id']}")
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    assert fault_hits(bridge.sim) == [1]
    assert bridge.sim.state.counters["leave"] == 1
    assert bridge.sim.state.rooms[room["channel"]].status == "left"
    await assert_consistent(bridge)


async def test_leave_keeps_being_retried_past_the_clients_attempts(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    add_fault(bridge.sim, endpoint="leave", kind="http_500", times=5)
    add_fault(bridge.sim, endpoint="leave", kind="drop_connection", times=2)
    r = await bridge.http.delete(f"/v1/rooms/{room['id']}")
    assert r.status_code == 200 and r.json()["state"] in ("closing", "closed"), r.text
    rooms = await assert_consistent(bridge)
    assert rooms[room["id"]].state is RoomState.CLOSED
    assert fault_hits(bridge.sim) == [5, 2]
    assert bridge.sim.state.rooms[room["channel"]].status == "left"
    assert bridge.sim.state.rooms[room["channel"]].refunded > 0


async def test_leave_of_a_channel_a2e_forgot(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    bridge.sim.state.rooms.pop(room["channel"])  # A2E answers 404 for the channel
    r = await bridge.http.delete(f"/v1/rooms/{room['id']}")
    assert r.json()["state"] == "closed" and r.json()["close_reason"] == "client"
    assert room["id"] not in bridge.rooms.registry.live


async def test_speak_faults_are_clear_and_not_retried(bridge_factory):
    bridge = await bridge_factory(a2e_timeout=0.5)
    room = await create_room(bridge)
    rid, channel = room["id"], room["channel"]
    # sent and no answer (dropped, timed out): A2E may have said it, so it is not sent again and the
    # caller learns that the outcome is unknown; an answer (500, 429) says it was not carried out
    cases = [("drop_connection", 504, "outcome_unknown"), ("timeout", 504, "outcome_unknown"),
             ("http_500", 503, "upstream_unavailable"), ("http_429", 503, "upstream_rate_limited")]
    for n, (kind, status, code) in enumerate(cases):
        add_fault(bridge.sim, endpoint="speak", kind=kind, seconds=2)  # unlimited: a retry would count
        r = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": f"attempt {n}"})
        assert_error(r, status, code)
        if kind == "http_429":
            assert int(r.headers["Retry-After"]) >= 1
        assert fault_hits(bridge.sim) == [1], kind  # sent once: A2E may have said it already
        clear_faults(bridge.sim)
        r = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": f"after {kind}"})
        assert r.status_code == 200, r.text
    assert [c["text"] for c in bridge.sim.state.rooms[channel].commands] == [f"after {k}" for k, _, _ in cases]
    assert (await bridge.http.get(f"/v1/rooms/{rid}")).json()["state"] == "open"
    # ask behaves the same
    add_fault(bridge.sim, endpoint="ask", kind="drop_connection")
    assert_error(await bridge.http.post(f"/v1/rooms/{rid}/ask", json={"text": "well?"}), 504, "outcome_unknown")
    assert fault_hits(bridge.sim) == [1]
    clear_faults(bridge.sim)
    await assert_consistent(bridge)


@pytest.mark.parametrize("kind", ["lost_answer", "late_answer"])
async def test_a_sentence_a2e_said_but_did_not_confirm_is_said_once(bridge_factory, kind):
    """A2E carries the speak out, then its answer is lost or comes after the bridge stopped waiting:
    the sentence is never sent again, and the caller is told the outcome is unknown."""
    bridge = await bridge_factory(a2e_timeout=0.5)
    room = await create_room(bridge)
    rid, channel = room["id"], room["channel"]
    for command in ("speak", "ask"):
        add_fault(bridge.sim, endpoint=command, kind=kind, seconds=3)  # unlimited: a resend would count
        error = assert_error(await bridge.http.post(f"/v1/rooms/{rid}/{command}", json={"text": f"Once, {command}."}),
                             504, "outcome_unknown")
        assert "may or may not" in error["message"] and command in error["message"]
        assert fault_hits(bridge.sim) == [1]
        clear_faults(bridge.sim)
    assert [c["text"] for c in bridge.sim.state.rooms[channel].commands] == ["Once, speak.", "Once, ask."]
    r = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "And on."})
    assert r.status_code == 200 and r.json()["position"] == 3  # the queue goes on


async def test_a_failed_command_does_not_block_the_ones_behind_it(bridge_factory):
    bridge = await bridge_factory(a2e_timeout=5)
    room = await create_room(bridge)
    add_fault(bridge.sim, endpoint="speak", kind="http_500", times=1)
    replies = await asyncio.gather(*(bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": f"n{i}"})
                                     for i in range(5)))
    codes = sorted(r.status_code for r in replies)
    assert codes == [200, 200, 200, 200, 503]
    failed = next(r for r in replies if r.status_code == 503)
    sent = [c["text"] for c in bridge.sim.state.rooms[room["channel"]].commands]
    assert len(sent) == 4 and failed.request.content.decode().split('"')[-2] not in sent


async def test_qa_context_failure_keeps_the_room(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge, qa_context="first")
    add_fault(bridge.sim, endpoint="set_qa_context", kind="http_500")
    r = await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", json={"text": "second"})
    assert_error(r, 503, "upstream_unavailable")
    assert (await bridge.http.get(f"/v1/rooms/{room['id']}/qa-context")).json()["text"] == "first"
    assert (await bridge.http.get(f"/v1/rooms/{room['id']}")).json()["state"] == "open"
    clear_faults(bridge.sim)
    await assert_consistent(bridge)


async def test_balance_check_is_skipped_when_a2e_cannot_tell(bridge_factory):
    bridge = await bridge_factory()
    add_fault(bridge.sim, endpoint="remaining_coins", kind="http_500")
    room = await create_room(bridge)
    assert room["state"] == "open"
    assert fault_hits(bridge.sim)[0] >= 1
    await assert_consistent(bridge)


async def test_avatar_list_failure_when_no_avatar_is_given(bridge_factory):
    bridge = await bridge_factory()
    add_fault(bridge.sim, endpoint="streaming_avatars", kind="http_500")
    assert_error(await bridge.http.post("/v1/rooms", json={}), 503, "upstream_unavailable")
    clear_faults(bridge.sim)
    await assert_consistent(bridge)
    assert bridge.sim.state.rooms == {}


async def test_chaos_loses_nothing(bridge_factory):
    """Random faults everywhere while rooms open, talk and close: afterwards every room is accounted for."""
    # a default avatar: every attempt writes its record before it mints (no avatar lookup first)
    bridge = await bridge_factory(a2e_timeout=0.5, default_avatar_id=AVATARS[0]["_id"])
    for kind in ("http_500", "drop_connection", "timeout", "code_1001"):
        add_fault(bridge.sim, endpoint="*", kind=kind, rate=0.1, seconds=1)
    http = bridge.http

    async def session(i: int) -> None:
        r = await http.post("/v1/rooms", json={"expire_seconds": 120, "qa_context": f"facts {i}"})
        if r.status_code != 201:
            assert r.status_code in (502, 503, 504), r.text
            return
        rid = r.json()["id"]
        for n in range(4):
            r = await http.post(f"/v1/rooms/{rid}/speak", json={"text": f"room {i} line {n}"})
            assert r.status_code in (200, 409, 502, 503, 504), r.text
        if i % 3:
            r = await http.delete(f"/v1/rooms/{rid}")
            assert r.status_code == 200, r.text

    await asyncio.gather(*(session(i) for i in range(12)))
    assert sum(fault_hits(bridge.sim)) > 0  # the faults did fire
    clear_faults(bridge.sim)
    rooms = await assert_consistent(bridge)
    assert len(rooms) == 12
    # everything still open can be closed, and then A2E holds no open room
    for room in rooms.values():
        if room.state is RoomState.OPEN:
            assert (await http.delete(f"/v1/rooms/{room.id}")).json()["state"] == "closed"
    await assert_consistent(bridge)
    assert bridge.sim.state.open_rooms() == []


def test_what_a2e_failures_become() -> None:
    """The one translation (errors.from_a2e): the caller's input refused is a 4xx naming the field A2E
    named; a non-repeatable call without an answer is outcome_unknown; a read without one is unavailable."""
    refused = from_a2e(A2EBadRequest("target_lang is required", code=400, status=400, operation="dubbing_start"))
    assert (refused.status, refused.code) == (422, "invalid_input") and refused.details[0]["loc"] == ["target_lang"]
    vague = from_a2e(A2EBadRequest("bad request", code=30005, status=200, operation="video_generate"))
    assert vague.status == 422 and vague.details[0]["loc"] == [] and vague.details[0]["a2e_code"] == 30005
    missing = from_a2e(A2ENotFound("task not found: 0123", code=404, status=404, operation="dubbing_get"))
    assert (missing.status, missing.code) == (404, "not_found") and missing.details[0]["loc"] == ["_id"]
    lost = from_a2e(A2ETimeout("A2E did not answer in time", operation="speak"))
    assert (lost.status, lost.code) == (504, "outcome_unknown")
    assert from_a2e(A2ETimeout("A2E did not answer in time", operation="remaining_coins")).status == 503
    never_sent = from_a2e(A2EUnavailable("cannot connect", operation="speak", request_sent=False))
    assert (never_sent.status, never_sent.code) == (503, "upstream_unavailable")
    answered = from_a2e(A2EUnavailable("A2E answered HTTP 500", status=500, operation="speak"))
    assert answered.status == 503
