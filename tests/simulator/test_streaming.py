"""The simulator's streaming-avatar rooms: tokens, QA context, commands, leave, expiry, credits, capacity."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EBadRequest, A2ECapacityBusy, A2ENotFound
from bridge.rtc.accesstoken import (
    PRIVILEGE_JOIN_CHANNEL,
    SERVICE_RTC,
    parse_token,
    verify_token,
)
from bridge.rtc.simulated import feed_url
from bridge.simulator.state import AVATARS, QA_CONTEXT_LIMIT, SimConfig
from tests.helpers import FakeClock, add_fault, fault_hits

AVATAR = AVATARS[0]["_id"]


async def sim_state(sim: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        return (await http.get("/_sim/state")).json()


async def room_of(sim: Any, channel: str) -> dict[str, Any]:
    (room,) = [r for r in (await sim_state(sim))["rooms"] if r["channel"] == channel]
    return room


async def test_agora_token_is_an_access_token2(sim: Any, a2e: A2EClient) -> None:
    before = int(time.time())
    room = await a2e.agora_token(AVATAR, 900)
    assert room["token"].startswith("007")
    assert isinstance(room["uid"], int) and room["uid"] != 0
    assert room["appId"] == sim.state.config.app_id
    assert room["channel"].startswith("sim_")

    info = parse_token(room["token"])
    assert info["app_id"] == sim.state.config.app_id
    rtc = info["rtc"]
    assert rtc is not None and rtc["type"] == SERVICE_RTC
    assert rtc["channel"] == room["channel"] and rtc["uid"] == str(room["uid"])
    assert PRIVILEGE_JOIN_CHANNEL in rtc["privileges"]
    assert info["expire"] == 900
    assert abs(info["expires_at"] - room["expire_epoch_timestamp"]) <= 1
    assert verify_token(room["token"], sim.state.config.app_certificate)

    expiry = room["expire_epoch_timestamp"]
    assert isinstance(expiry, int) and before + 900 <= expiry <= int(time.time()) + 901
    utc = datetime.fromisoformat(room["expire_date_UTC"])
    assert utc.utcoffset() is not None and utc.utcoffset().total_seconds() == 0
    assert abs(utc.timestamp() - expiry) < 1


async def test_two_rooms_never_share_a_channel(a2e: A2EClient) -> None:
    rooms = [await a2e.agora_token(AVATAR, 60) for _ in range(5)]
    assert len({r["channel"] for r in rooms}) == 5


async def test_default_expiry_and_bounds(sim: Any, a2e: A2EClient) -> None:
    room = await a2e.call("agora_token", avatar_id=AVATAR)  # no expire_seconds
    assert parse_token(room["token"])["expire"] == sim.state.config.default_expire_seconds
    for bad in (0, -5, sim.state.config.max_expire_seconds + 1, "600", 1.5, True):
        with pytest.raises(A2EBadRequest, match="expire_seconds"):
            await a2e.call("agora_token", avatar_id=AVATAR, expire_seconds=bad)
    with pytest.raises(A2EBadRequest, match="avatar"):
        await a2e.agora_token("0123456789abcdef01234567", 60)


async def test_qa_context_limit(sim: Any, a2e: A2EClient) -> None:
    channel = (await a2e.agora_token(AVATAR, 60))["channel"]
    text = "q" * QA_CONTEXT_LIMIT
    assert QA_CONTEXT_LIMIT == 5000
    await a2e.set_qa_context(channel, text)
    assert (await a2e.call("get_qa_context", channel=channel))["text"] == text

    async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": "Bearer k"}) as http:
        reply = await http.post("/api/v1/streaming-avatar/set-qa-context", json={"channel": channel, "text": text + "q"})
    body = reply.json()
    assert reply.status_code == 200  # A2E-style: HTTP 200 with a non-zero code
    assert body["code"] == 400 and "5000" in body["msg"] and body["data"] is None and body["trace_id"]
    assert (await a2e.call("get_qa_context", channel=channel))["text"] == text  # unchanged
    assert (await room_of(sim, channel))["qa_context_chars"] == 5000


async def test_commands_only_on_open_channels(sim_factory: Any) -> None:
    sim = await sim_factory()
    async with A2EClient("k", sim.url, timeout=2) as a2e:
        for op in ("ask", "speak", "set_qa_context"):
            with pytest.raises(A2ENotFound):
                await a2e.call(op, channel="sim_nosuchroom", text="hello")
        channel = (await a2e.agora_token(AVATAR, 60))["channel"]
        await a2e.ask(channel, "what is this?")
        await a2e.speak(channel, "hello")
        with pytest.raises(A2EBadRequest, match="empty"):
            await a2e.speak(channel, "   ")
        assert (await room_of(sim, channel))["commands"] == 2
        await a2e.leave(channel)
        for op in ("ask", "speak", "set_qa_context"):
            with pytest.raises(A2ENotFound, match="left"):
                await a2e.call(op, channel=channel, text="still there?")
        assert (await room_of(sim, channel))["commands"] == 2
        # the QA context of a closed room can still be read
        assert (await a2e.call("get_qa_context", channel=channel))["text"] == ""


async def test_leave_is_idempotent_and_refunds_once(sim: Any, a2e: A2EClient) -> None:
    start = (await a2e.remaining_coins())["coins"]
    channel = (await a2e.agora_token(AVATAR, 600))["channel"]
    room = await room_of(sim, channel)
    assert room["charged"] == 10  # 600 s at 1 coin a minute, paid up front
    assert (await a2e.remaining_coins())["coins"] == start - 10

    assert await a2e.leave(channel) == {}
    room = await room_of(sim, channel)
    assert room["status"] == "left" and room["left_at"] is not None
    assert 0 < room["refunded"] <= room["charged"]
    after_leave = (await a2e.remaining_coins())["coins"]
    assert after_leave == start - room["charged"] + room["refunded"]

    for _ in range(3):
        assert await a2e.leave(channel) == {}
    assert (await a2e.remaining_coins())["coins"] == after_leave
    assert (await room_of(sim, channel))["refunded"] == room["refunded"]

    with pytest.raises(A2ENotFound):
        await a2e.leave("sim_nosuchroom")


async def test_rooms_expire_at_their_expiry(sim_factory: Any) -> None:
    clock = FakeClock()
    sim = await sim_factory(clock=clock)
    async with A2EClient("k", sim.url, timeout=2) as a2e:
        start = (await a2e.remaining_coins())["coins"]
        channel = (await a2e.agora_token(AVATAR, 1))["channel"]
        clock.advance(0.999)
        assert (await room_of(sim, channel))["status"] == "open"
        clock.advance(0.001)
        assert (await room_of(sim, channel))["status"] == "expired"
        assert (await sim_state(sim))["open_rooms"] == 0
        with pytest.raises(A2ENotFound, match="expired"):
            await a2e.speak(channel, "too late")
        await a2e.leave(channel)  # leaving an expired room succeeds, and refunds nothing
        room = await room_of(sim, channel)
        assert room["status"] == "expired" and room["refunded"] == 0
        assert (await a2e.remaining_coins())["coins"] == start - room["charged"]


async def frames_until_closed(sim: Any, channel: str, during: Any = None) -> list[dict[str, Any]]:
    """Every frame of the channel's event feed (the simulated Agora channel) until the feed ends."""
    frames = []
    async with connect(feed_url(sim.url, channel)) as ws:
        if during is not None:
            await during()
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionClosedOK):
                while True:
                    frames.append(json.loads(await ws.recv()))
    return frames


async def test_feed_ends_at_expiry_without_any_request(sim: Any, a2e: A2EClient) -> None:
    channel = (await a2e.agora_token(AVATAR, 1))["channel"]
    await frames_until_closed(sim, channel)
    assert (await room_of(sim, channel))["status"] == "expired"


async def test_feed_ends_at_expiry_seen_through_sim_state(sim: Any, a2e: A2EClient) -> None:
    sim.state.clock = clock = FakeClock()  # expiry is noticed by the state request, not by the timer
    channel = (await a2e.agora_token(AVATAR, 1))["channel"]

    async def expire_and_look() -> None:
        clock.advance(1)
        assert (await room_of(sim, channel))["status"] == "expired"

    await frames_until_closed(sim, channel, expire_and_look)


async def test_feed_plays_answers_and_ends_on_leave(sim: Any, a2e: A2EClient) -> None:
    room = await a2e.agora_token(AVATAR, 60)
    channel = room["channel"]
    await a2e.set_qa_context(channel, "The shop opens at nine.")
    async with connect(feed_url(sim.url, channel)) as ws:
        await a2e.ask(channel, "When does the shop open?")
        kinds = []
        async with asyncio.timeout(10):
            while not kinds or kinds[-1] != "audio_stopped":
                frame = json.loads(await ws.recv())
                assert frame["uid"] == room["uid"] + 1  # the avatar, not the viewer
                kinds.append(frame["kind"])
        assert kinds[0] == "audio_started" and "stream_message" in kinds
        await a2e.leave(channel)
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()


async def test_capacity_counts_open_rooms_only(sim_factory: Any) -> None:
    clock = FakeClock()
    sim = await sim_factory(max_channels=2, clock=clock)
    async with A2EClient("k", sim.url, timeout=2) as a2e:
        short = (await a2e.agora_token(AVATAR, 1))["channel"]
        long = (await a2e.agora_token(AVATAR, 600))["channel"]
        with pytest.raises(A2ECapacityBusy) as info:
            await a2e.agora_token(AVATAR, 60)
        assert info.value.code == 1001 and "hosts are occupied" in info.value.msg
        coins = (await a2e.remaining_coins())["coins"]
        assert coins == sim.state.config.coins - 1 - 10  # the refused mint charged nothing
        clock.advance(1)  # the short room expires and frees its host
        assert (await room_of(sim, short))["status"] == "expired"
        third = (await a2e.agora_token(AVATAR, 60))["channel"]
        with pytest.raises(A2ECapacityBusy):
            await a2e.agora_token(AVATAR, 60)
        await a2e.leave(long)
        await a2e.agora_token(AVATAR, 60)
        assert third != long


async def test_defaults_allow_100_concurrent_one_hour_rooms(sim_factory: Any) -> None:
    defaults = SimConfig()
    assert defaults.max_channels >= 100
    sim = await sim_factory()  # only the task and speech speeds differ from SimConfig()
    assert (sim.state.config.coins, sim.state.config.max_channels) == (defaults.coins, defaults.max_channels)
    async with A2EClient("k", sim.url, timeout=10) as a2e:
        start = (await a2e.remaining_coins())["coins"]
        rooms = await asyncio.gather(*(a2e.agora_token(AVATAR, 3600) for _ in range(100)))
        assert len({r["channel"] for r in rooms}) == 100
        state = await sim_state(sim)
        assert state["open_rooms"] == 100
        assert state["coins"] == start - 100 * 60
        await asyncio.gather(*(a2e.leave(r["channel"]) for r in rooms))
        state = await sim_state(sim)
        assert state["open_rooms"] == 0
        assert all(r["status"] == "left" for r in state["rooms"])
        # each refund rounds down, so at most one coin per room is kept
        assert start - 100 <= state["coins"] < start


async def test_swallow_fault_answers_ok_and_the_avatar_stays_silent(sim: Any, a2e: A2EClient) -> None:
    """``swallow``: A2E's success answer, nothing done: no channel events for the swallowed ask."""
    room = await a2e.agora_token(AVATAR, 60)
    channel = room["channel"]
    await a2e.set_qa_context(channel, "The shop opens at nine.")
    add_fault(sim, endpoint="ask", kind="swallow", times=1)
    async with connect(feed_url(sim.url, channel)) as ws:
        assert await a2e.ask(channel, "When does the shop open?") == {}
        await a2e.speak(channel, "Hello.")  # the next command plays; the swallowed ask never did
        kinds = []
        async with asyncio.timeout(10):
            while not kinds or kinds[-1] != "audio_stopped":
                kinds.append(json.loads(await ws.recv())["kind"])
    assert kinds == ["audio_started", "audio_stopped"]  # a speak: no QA stream-messages
    assert fault_hits(sim) == [1] and "ask" not in sim.state.counters
    await a2e.leave(channel)
