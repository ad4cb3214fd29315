"""Redis RoomStore: the one registry of every instance of a fleet (``BRIDGE_REDIS_URL``).

Each room is a JSON string; sorted sets and sets index it (every room, a tenant's rooms by created_at,
the live ones, the ended ones by closed_at), written with the room by one Lua script that also checks
the version, so two instances writing the same room cannot both win (StaleRoomError). A new room can
instead be written by :meth:`RedisRoomStore.insert_within_caps`, which counts the tenant's live rooms
and the day's reserved seconds in the same script: two instances racing for a tenant's last slot
cannot both take it. Key names: ``redis_keys.py``; the scripts: ``redis_scripts.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone

from bridge.rooms.models import LIVE_STATES, Room, RoomState
from bridge.rooms.store import StaleRoomError

from .redis_base import chunks, dumps, guarded
from .redis_journal import RedisTranscript, RedisUsage
from .redis_outbox import RedisOutbox

__all__ = ["RedisRoomStore"]

DAY_COUNTER_TTL = 3 * 86400  # a day's reserved seconds are read that day; the key then expires


class RedisRoomStore(RedisTranscript, RedisOutbox, RedisUsage):
    """Rooms here; transcripts and the ledger in ``redis_journal.py``, the outbox in ``redis_outbox.py``."""

    def _room_keys(self, room: Room) -> list[str]:
        k = self.keys
        return [k.room(room.id), k.rooms, k.tenant_rooms(room.tenant), k.live, k.closed,
                k.tenant_live(room.tenant), k.tenant_closed(room.tenant), k.reservations,
                k.browser_key_live(room.opened_by or "")]

    @staticmethod
    def _room_args(room: Room) -> list[str | int]:
        rec = room.to_record()
        rec["version"] = room.version + 1
        closed_at = "" if room.closed_at is None else repr(room.closed_at)
        used = 0.0 if room.is_live else room.usage_seconds(room.created_at)  # Room.usage_seconds: one formula
        return [room.id, room.version, dumps(rec), repr(room.created_at), int(room.is_live), closed_at, repr(used),
                int(room.opened_by is not None)]

    @guarded
    async def put(self, room: Room) -> None:
        stored = int(await self.script("PUT")(keys=self._room_keys(room), args=self._room_args(room)))
        if stored != -1:
            raise StaleRoomError(room.id, room.version, stored)
        room.version += 1  # written: the object matches the store, as with the other stores

    @guarded
    async def insert_within_caps(self, room: Room, *, max_rooms: int, max_room_seconds_today: float,
                                 day_start: float, max_key_rooms: int | None = None) -> str | None:
        """Insert a new live ``room`` if its tenant has fewer than ``max_rooms`` live rooms and the
        seconds reserved since ``day_start`` (UTC midnight) plus ``room.expire_seconds`` stay within
        ``max_room_seconds_today`` (and, for a room a browser key opens, that key has fewer than
        ``max_key_rooms``); else return the refused cap's name (``browser_key_rooms``,
        ``concurrent_rooms``, ``room_minutes_per_day``) and write nothing. One Lua script: atomic
        across instances.

        The day's counter grows by ``expire_seconds`` (what A2E charges at mint) and, when the room
        ends, gives back what it did not use (see ``put``), so it tracks ``usage_seconds`` of the
        rooms reserved that day (a room running past midnight counts on the day it was opened)."""
        if not room.is_live:
            raise ValueError(f"room {room.id} is {room.state.value}: only a live room takes a slot")
        day = datetime.fromtimestamp(day_start, tz=timezone.utc).strftime("%Y-%m-%d")
        refused = await self.script("RESERVE")(
            keys=[*self._room_keys(room), self.keys.tenant_seconds(room.tenant, day)],
            args=[*self._room_args(room), max_rooms, repr(float(max_room_seconds_today)), room.expire_seconds,
                  DAY_COUNTER_TTL, "" if room.opened_by is None or max_key_rooms is None else max_key_rooms])
        if refused == "exists":
            raise StaleRoomError(room.id, room.version, -1)
        if refused:
            return str(refused)
        room.version += 1
        return None

    @guarded
    async def reserved_seconds(self, tenant: str, day_start: float) -> float:
        """The tenant's reserved seconds of the day starting at ``day_start`` (the counter the cap reads)."""
        day = datetime.fromtimestamp(day_start, tz=timezone.utc).strftime("%Y-%m-%d")
        value = await self.redis.get(self.keys.tenant_seconds(tenant, day))
        return float(value) if value is not None else 0.0

    async def _rooms(self, ids: list[str]) -> list[Room]:
        rooms = []
        for batch in chunks(ids):
            for data in await self.redis.mget([self.keys.room(i) for i in batch]):
                if data is not None:  # deleted meanwhile
                    rooms.append(Room.from_record(json.loads(data)))
        return rooms

    @guarded
    async def get(self, room_id: str) -> Room | None:
        data = await self.redis.get(self.keys.room(room_id))
        return Room.from_record(json.loads(data)) if data is not None else None

    @guarded
    async def list_rooms(
        self, *, tenant: str | None = None, states: Iterable[RoomState] | None = None
    ) -> list[Room]:
        wanted = {RoomState(s) for s in states} if states is not None else None
        if wanted is not None and not wanted:
            return []
        if wanted is not None and wanted <= LIVE_STATES:  # the live set, not every room ever kept
            live_ids: list[str] = list(await self.redis.smembers(
                self.keys.live if tenant is None else self.keys.tenant_live(tenant)))
            rooms = sorted(await self._rooms(live_ids), key=lambda r: (r.created_at, r.id), reverse=True)
        else:
            index = self.keys.rooms if tenant is None else self.keys.tenant_rooms(tenant)
            rooms = await self._rooms(await self.redis.zrevrange(index, 0, -1))  # newest first, then by id
        return [r for r in rooms if wanted is None or r.state in wanted]

    @guarded
    async def page(
        self, *, tenant: str, limit: int, states: Iterable[RoomState] | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Room]:
        wanted = {RoomState(s) for s in states} if states is not None else None
        if limit <= 0 or (wanted is not None and not wanted):
            return []
        # Walk the tenant's zset down from the keyset, a batch at a time: scores are created_at and
        # equal scores come by id, which is the order of the page (created_at, id) descending.
        top = "+inf" if before is None else repr(before[0])
        found: list[Room] = []
        offset = 0
        while len(found) < limit:
            batch: list[tuple[str, float]] = await self.redis.zrevrangebyscore(
                self.keys.tenant_rooms(tenant), top, "-inf", start=offset, num=max(limit, 50), withscores=True)
            if not batch:
                break
            offset += len(batch)
            ids = [i for i, score in batch if before is None or (score, i) < before]
            found += [r for r in await self._rooms(ids) if wanted is None or r.state in wanted]
        return found[:limit]

    async def list_live(self) -> list[Room]:
        return await self.list_rooms(states=LIVE_STATES)

    @guarded
    async def usage_seconds(self, tenant: str, since: float) -> float:
        # Only rooms that can have cost something after `since`: the live ones and those that ended
        # after it; the math itself is Room.usage_seconds, as in the other stores.
        ids: list[str] = [*await self.redis.smembers(self.keys.tenant_live(tenant)),
                          *await self.redis.zrangebyscore(self.keys.tenant_closed(tenant), f"({since!r}", "+inf")]
        return sum(r.usage_seconds(since) for r in await self._rooms(ids))

    @guarded
    async def delete_closed_before(self, ts: float) -> int:
        k = self.keys
        ids: list[str] = await self.redis.zrangebyscore(k.closed, "-inf", f"({ts!r}")
        for batch in chunks(ids):
            rooms = await self._rooms(batch)
            async with self.redis.pipeline(transaction=True) as pipe:
                for room in rooms:
                    pipe.zrem(k.tenant_rooms(room.tenant), room.id)
                    pipe.zrem(k.tenant_closed(room.tenant), room.id)
                    pipe.zrem(k.usage_tenant(room.tenant), room.id)
                pipe.delete(*(k.room(i) for i in batch), *(k.transcript(i) for i in batch),
                            *(k.usage(i) for i in batch))
                pipe.zrem(k.rooms, *batch)
                pipe.zrem(k.closed, *batch)
                pipe.zrem(k.usage_opened, *batch)
                pipe.hdel(k.reservations, *batch)
                await pipe.execute()
        await self._purge_outbox(ts)
        return len(ids)
