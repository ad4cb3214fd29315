"""The live rooms of this process: one lookup, listing, and who is watching (attach/detach/touch).

Transports resolve ``(tenant, room_id)`` here once, at their edge, and pass the :class:`LiveRoom`
inward; nothing deeper takes ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from bridge import metrics
from bridge.errors import NotFound, RoomNotOpen
from bridge.rtc.reassembler import Reassembler

from .events import RoomEvents
from .models import Room, RoomState
from .store import RoomStore

if TYPE_CHECKING:
    from .relay import CommandQueue

Clock = Callable[[], float]
"""Seconds since the epoch; injected wherever behaviour depends on time (tests move it)."""


@dataclass(eq=False)
class LiveRoom:
    """What the bridge holds in memory for a room A2E may be charging for."""

    room: Room
    events: RoomEvents
    queue: CommandQueue | None = None  # set by the relay when the room opens
    clients: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reassembler: Reassembler = field(default_factory=Reassembler)
    leave_task: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class RoomRegistry:
    """Every live room of this process, by id; ended rooms are only in the store."""

    def __init__(self, store: RoomStore, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock
        self.live: dict[str, LiveRoom] = {}
        metrics.ROOMS_LIVE.set_function(lambda: len(self.live))

    def add(self, lr: LiveRoom) -> None:
        self.live[lr.room.id] = lr

    def forget(self, lr: LiveRoom) -> None:
        """The room has ended (closed or failed): end its event stream and drop it from memory."""
        lr.events.end()
        self.live.pop(lr.room.id, None)

    def of_tenant(self, tenant: str) -> list[LiveRoom]:
        return [lr for lr in self.live.values() if lr.room.tenant == tenant]

    @overload
    async def lookup(self, tenant: str, room_id: str, *, must_be_open: Literal[True]) -> LiveRoom: ...

    @overload
    async def lookup(self, tenant: str, room_id: str, *, must_be_open: bool = False) -> LiveRoom | Room: ...

    async def lookup(self, tenant: str, room_id: str, *, must_be_open: bool = False) -> LiveRoom | Room:
        """The room ``room_id`` of ``tenant``: the live room if this process holds it, else the stored record.

        Raises:
            NotFound: no such room, or another tenant's.
            RoomNotOpen: ``must_be_open`` and the room is not open (closing, or it has ended).
        """
        lr = self.live.get(room_id)
        if lr is not None and lr.room.tenant == tenant:
            if must_be_open and lr.room.state is not RoomState.OPEN:
                raise RoomNotOpen(f"room {room_id} is {lr.room.state.value}")
            return lr
        room = await self.store.get(room_id)
        if room is None or room.tenant != tenant:
            raise NotFound(f"no room {room_id}")
        if must_be_open:
            raise RoomNotOpen(f"room {room_id} is {room.state.value}")
        return room

    async def list_rooms(self, tenant: str, *, live_only: bool = False) -> list[Room]:
        """``tenant``'s rooms, newest first (live ones as this process holds them)."""
        if live_only:
            rooms = [lr.room for lr in self.of_tenant(tenant)]
            return sorted(rooms, key=lambda r: r.created_at, reverse=True)
        stored = await self.store.list_rooms(tenant=tenant)
        return [self.live[r.id].room if r.id in self.live else r for r in stored]

    # -- activity: a room without clients and commands for BRIDGE_IDLE_TIMEOUT is left -----------
    def touch(self, lr: LiveRoom) -> None:
        lr.room.last_activity = self.clock()

    def attach(self, lr: LiveRoom) -> None:
        lr.clients += 1
        self.touch(lr)

    def detach(self, lr: LiveRoom) -> None:
        lr.clients = max(0, lr.clients - 1)
        self.touch(lr)


def room_of(found: LiveRoom | Room) -> Room:
    """The room record of what :meth:`RoomRegistry.lookup` found."""
    return found.room if isinstance(found, LiveRoom) else found
