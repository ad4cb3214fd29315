"""In-process RoomStore for tests and throwaway runs (nothing survives a restart)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from bridge.rooms.models import LIVE_STATES, TERMINAL_STATES, Room, RoomState
from bridge.rooms.store import StaleRoomError

from .memory_journal import MemoryJournal


class MemoryRoomStore(MemoryJournal):
    """Keeps records (plain dicts), not Room objects, so callers cannot mutate stored state."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, dict[str, Any]] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def put(self, room: Room) -> None:
        current = self._records.get(room.id)
        if current is not None and current["version"] != room.version:
            raise StaleRoomError(room.id, room.version, current["version"])
        rec = room.to_record()
        rec["version"] = room.version + 1
        self._records[room.id] = rec
        room.version += 1

    async def get(self, room_id: str) -> Room | None:
        rec = self._records.get(room_id)
        return Room.from_record(rec) if rec is not None else None

    async def list_rooms(
        self, *, tenant: str | None = None, states: Iterable[RoomState] | None = None
    ) -> list[Room]:
        wanted = {RoomState(s).value for s in states} if states is not None else None
        recs = [
            r
            for r in self._records.values()
            if (tenant is None or r["tenant"] == tenant)
            and (wanted is None or r["state"] in wanted)
        ]
        recs.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [Room.from_record(r) for r in recs]

    async def page(
        self, *, tenant: str, limit: int, states: Iterable[RoomState] | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Room]:
        wanted = {RoomState(s).value for s in states} if states is not None else None
        recs = (
            r
            for r in self._records.values()
            if r["tenant"] == tenant
            and (wanted is None or r["state"] in wanted)
            and (before is None or (r["created_at"], r["id"]) < before)
        )
        # nlargest keeps `limit` records, not a sorted copy of every room
        top = heapq.nlargest(limit, recs, key=lambda r: (r["created_at"], r["id"]))
        return [Room.from_record(r) for r in top]

    async def list_live(self) -> list[Room]:
        return await self.list_rooms(states=LIVE_STATES)

    async def usage_seconds(self, tenant: str, since: float) -> float:
        return sum(r.usage_seconds(since) for r in await self.list_rooms(tenant=tenant))

    async def delete_closed_before(self, ts: float) -> int:
        terminal = {s.value for s in TERMINAL_STATES}
        doomed = [
            rid
            for rid, r in self._records.items()
            if r["state"] in terminal and r["closed_at"] is not None and r["closed_at"] < ts
        ]
        for rid in doomed:
            del self._records[rid]
        self._purge_journal(doomed, ts)
        return len(doomed)
