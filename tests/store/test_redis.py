"""What only the Redis store does: two stores on one Redis (two connections, as two instances) racing
for a tenant's last slot, for the day's room-minutes, writing the same room; and Redis going away and
coming back under a store that stays open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.errors import StoreUnavailable
from bridge.frames import ErrorCode
from bridge.rooms.journal import Delivery, TranscriptEntry, UsageRecord
from bridge.rooms.models import CloseReason, Room, RoomState
from bridge.store import RedisRoomStore, StaleRoomError
from tests.helpers import RedisServer

S = RoomState
DAY = 1_800_000_000.0 - 1_800_000_000.0 % 86400  # a UTC midnight
HOUR = 3600.0


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisRoomStore, RedisRoomStore]]:
    """Two stores, each with its own connection pool: two instances of a fleet."""
    a, b = RedisRoomStore(redis_url), RedisRoomStore(redis_url)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def new_room(tenant: str = "t", *, expire: int = 600, at: float = DAY + HOUR) -> Room:
    return Room.new(tenant=tenant, avatar_id="av", expire_seconds=expire, now=at)


async def reserve(store: RedisRoomStore, room: Room, *, max_rooms: int = 100, seconds: float = 1e9) -> str | None:
    return await store.insert_within_caps(room, max_rooms=max_rooms, max_room_seconds_today=seconds, day_start=DAY)


async def test_two_instances_racing_for_the_last_slot_exactly_one_wins(pair):
    a, b = pair
    for n in range(40):
        tenant = f"race-{n}"
        for _ in range(2):
            assert await reserve(a, new_room(tenant), max_rooms=3) is None
        contenders = [new_room(tenant), new_room(tenant)]
        results = await asyncio.gather(reserve(a, contenders[0], max_rooms=3), reserve(b, contenders[1], max_rooms=3))
        assert sorted(results, key=str) == [None, "concurrent_rooms"], (n, results)
        winner, loser = contenders if results[0] is None else contenders[::-1]
        assert (await b.get(winner.id)).version == winner.version == 1
        assert await a.get(loser.id) is None and loser.version == 0  # the refused room: nothing written
        assert len(await a.list_rooms(tenant=tenant, states=[S.CREATING])) == 3


async def test_a_closed_room_frees_its_slot_for_the_other_instance(pair):
    a, b = pair
    first = new_room()
    assert await reserve(a, first, max_rooms=1) is None
    assert await reserve(b, new_room(), max_rooms=1) == "concurrent_rooms"
    first.transition(S.CLOSING, reason=CloseReason.CLIENT, now=DAY + HOUR + 10)
    await a.put(first)  # closing is still live: A2E may be charging
    assert await reserve(b, new_room(), max_rooms=1) == "concurrent_rooms"
    first.transition(S.CLOSED, now=DAY + HOUR + 20)
    await a.put(first)
    assert await reserve(b, new_room(), max_rooms=1) is None


async def test_a_browser_keys_last_room_across_instances(pair):
    """A browser key's rooms cap holds across the fleet: racing for its last room, one instance wins;
    the key's closed room gives the slot back; another key and the tenant's own rooms are not counted."""
    a, b = pair

    def keyed(key: str | None) -> Room:
        return Room.new(tenant="t", avatar_id="av", expire_seconds=600, now=DAY + HOUR, opened_by=key)

    async def by_key(store: RedisRoomStore, room: Room) -> str | None:
        return await store.insert_within_caps(room, max_rooms=100, max_room_seconds_today=1e9, day_start=DAY,
                                              max_key_rooms=2)

    assert await reserve(a, keyed(None)) is None  # the tenant's own room: not the key's
    first = keyed("pk_1")
    assert await by_key(a, first) is None
    racers = [keyed("pk_1"), keyed("pk_1")]
    results = await asyncio.gather(by_key(a, racers[0]), by_key(b, racers[1]))
    assert sorted(results, key=str) == [None, "browser_key_rooms"]
    assert await by_key(b, keyed("pk_2")) is None  # another key has its own count
    assert await by_key(b, keyed("pk_1")) == "browser_key_rooms"
    first.transition(S.CLOSING, reason=CloseReason.CLIENT, now=DAY + HOUR + 10)
    await a.put(first)  # closing: still the key's (A2E may be charging)
    assert await by_key(b, keyed("pk_1")) == "browser_key_rooms"
    first.transition(S.CLOSED, now=DAY + HOUR + 20)
    await a.put(first)
    assert await by_key(b, keyed("pk_1")) is None


async def test_the_days_room_minutes_across_instances(pair):
    a, b = pair
    cap = 1000.0
    racers = [new_room(expire=600), new_room(expire=600)]
    results = await asyncio.gather(reserve(a, racers[0], seconds=cap), reserve(b, racers[1], seconds=cap))
    assert sorted(results, key=str) == [None, "room_minutes_per_day"]
    opened = racers[0] if results[0] is None else racers[1]
    assert await a.reserved_seconds("t", DAY) == 600
    assert await b.usage_seconds("t", DAY) == 600  # a live room: its whole reservation
    # the room ends after 100 s: the day gets back what it did not use, and agrees with usage_seconds
    opened.state = S.OPEN
    opened.transition(S.CLOSING, reason=CloseReason.CLIENT, now=opened.created_at + 90)
    await a.put(opened)
    opened.transition(S.CLOSED, now=opened.created_at + 100)
    await a.put(opened)
    assert await b.reserved_seconds("t", DAY) == pytest.approx(100) == await b.usage_seconds("t", DAY)
    assert await reserve(b, new_room(expire=600), seconds=cap) is None  # 100 + 600 <= 1000 now
    assert await reserve(a, new_room(expire=600), seconds=cap) == "room_minutes_per_day"
    # a mint that failed cost nothing: its whole reservation comes back
    failed = new_room(expire=300)
    assert await reserve(a, failed, seconds=cap) is None
    assert await a.reserved_seconds("t", DAY) == pytest.approx(1000)
    failed.transition(S.FAILED, reason=CloseReason.ERROR, now=failed.created_at + 1)
    await b.put(failed)
    assert await a.reserved_seconds("t", DAY) == pytest.approx(700) == await a.usage_seconds("t", DAY)
    assert await a.reserved_seconds("t", DAY + 86400) == 0  # another day, another counter
    assert await reserve(a, new_room("other", expire=900), seconds=cap) is None  # another tenant


async def test_stale_room_across_instances(pair):
    a, b = pair
    room = new_room()
    await a.put(room)
    theirs = await b.get(room.id)
    room.transition(S.CLOSING, reason=CloseReason.IDLE, now=DAY + HOUR + 5)
    await a.put(room)
    theirs.transition(S.CLOSING, reason=CloseReason.CLIENT, now=DAY + HOUR + 6)
    with pytest.raises(StaleRoomError) as stale:
        await b.put(theirs)
    assert (stale.value.expected, stale.value.actual) == (1, 2)
    assert (await b.get(room.id)).close_reason is CloseReason.IDLE
    # the same version written by both at once: one wins, the other is told
    copies = [await a.get(room.id), await b.get(room.id)]
    for copy, reason in zip(copies, (CloseReason.CLIENT, CloseReason.EXPIRY)):
        copy.transition(S.CLOSED, now=DAY + HOUR + 7)
        copy.error = reason.value
    results = await asyncio.gather(a.put(copies[0]), b.put(copies[1]), return_exceptions=True)
    assert sum(isinstance(r, StaleRoomError) for r in results) == 1 and results.count(None) == 1
    assert (await a.get(room.id)).version == 3
    with pytest.raises(StaleRoomError):  # a room id that is taken cannot be reserved again
        await reserve(b, Room.from_record({**new_room().to_record(), "id": room.id}))


async def test_prefix_keeps_fleets_apart(redis_url):
    one, two = RedisRoomStore(redis_url, prefix="one:"), RedisRoomStore(redis_url, prefix="two:")
    await one.open()
    await two.open()
    try:
        room = new_room()
        await one.put(room)
        assert await two.get(room.id) is None and await two.list_live() == []
        assert [r.id for r in await one.list_live()] == [room.id]
    finally:
        await one.close()
        await two.close()


async def test_redis_down_then_back_without_reopening(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    store = RedisRoomStore(server.url)
    await store.open()
    try:
        room = new_room()
        await store.put(room)
        assert await store.ping() is True
        server.kill()
        assert await store.ping() is False
        calls = [store.get(room.id), store.put(room), store.list_live(), store.page(tenant="t", limit=5),
                 store.usage_seconds("t", DAY), reserve(store, new_room()), store.delete_closed_before(DAY),
                 store.add_transcript([TranscriptEntry(room_id=room.id, kind="speak", text="hi", at=DAY)]),
                 store.transcript(room.id), store.charge(UsageRecord(room.id, "t", DAY, 600, 1)),
                 store.enqueue(Delivery("msg_1", "t", "room.opened", "{}", DAY, room.id)),
                 store.due_deliveries(DAY, 10)]
        for call in calls:
            with pytest.raises(StoreUnavailable) as down:
                await call
            assert down.value.status == 503 and down.value.code is ErrorCode.STORE_UNAVAILABLE
            assert down.value.headers["Retry-After"] == "1"
        assert room.version == 1  # a failed put leaves the object as it was
        with_password = RedisRoomStore(server.url.replace("redis://", "redis://:sekrit-password@"))
        await with_password.open()
        assert await with_password.ping() is False
        with pytest.raises(StoreUnavailable) as down:
            await with_password.get(room.id)
        assert "sekrit" not in str(down.value) and "sekrit" not in str(down.value.__cause__)
        await with_password.close()
        server.start()  # same port, empty: Redis restarted without persistence
        assert await store.ping() is True
        assert await store.get(room.id) is None
        room.version = 0
        await store.put(room)  # the scripts are loaded again by themselves
        assert await reserve(store, new_room(), max_rooms=2) is None
        assert room.id in {r.id for r in await store.list_live()}
    finally:
        await store.close()
        server.stop()
