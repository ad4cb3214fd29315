"""The RoomStore contract: the port the room domain owns (``bridge/store/`` implements it).

Rooms are persisted because A2E keeps charging for a room the bridge forgets:
after a crash the bridge reloads ``list_live()`` and gives those rooms back. The same store keeps
what operators read about rooms (``bridge/rooms/journal.py``): transcripts, the webhook outbox and
the usage ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from bridge.rooms.journal import OutboxStore, TranscriptStore, UsageStore
from bridge.rooms.models import Room, RoomError, RoomState


class StaleRoomError(RoomError):
    """``put`` of a copy older than the stored room: someone else wrote it since.

    Raised instead of silently losing that other write (e.g. a close racing an
    idle reaper). Re-``get`` the room and retry.
    """

    def __init__(self, room_id: str, expected: int, actual: int):
        self.room_id, self.expected, self.actual = room_id, expected, actual
        super().__init__(f"room {room_id}: stored version {actual}, yours {expected}")


@runtime_checkable
class RoomStore(TranscriptStore, OutboxStore, UsageStore, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True if the store can serve requests (readiness probe)."""
        ...

    async def put(self, room: Room) -> None:
        """Insert or replace; durable once it returns.

        If the room is already stored, ``room.version`` must equal the stored
        version (else StaleRoomError). On success the version is bumped both in
        the store and on ``room``, so the same object can be put again.
        """
        ...

    async def get(self, room_id: str) -> Room | None: ...

    async def list_rooms(
        self, *, tenant: str | None = None, states: Iterable[RoomState] | None = None
    ) -> list[Room]:
        """Newest first (created_at, then id, descending)."""
        ...

    async def page(
        self, *, tenant: str, limit: int, states: Iterable[RoomState] | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Room]:
        """At most ``limit`` rooms of ``tenant``, newest first, strictly older than the keyset
        ``before`` = (created_at, id) of the last room of the previous page: one page of a listing,
        without reading the rest."""
        ...

    async def list_live(self) -> list[Room]:
        """Creating/open/closing rooms: the ones A2E may still be charging for."""
        ...

    async def usage_seconds(self, tenant: str, since: float) -> float:
        """Room-seconds ``tenant`` consumed since ``since`` (see Room.usage_seconds)."""
        ...

    async def delete_closed_before(self, ts: float) -> int:
        """Delete closed/failed rooms whose closed_at < ts, with their transcripts and ledger
        records, and settled webhook deliveries created before ts; returns how many rooms."""
        ...
