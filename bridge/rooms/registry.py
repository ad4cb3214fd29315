"""The live rooms of this process: one lookup, listing, and who is watching (attach/touch; the
clients are counted and capped by :class:`~bridge.rooms.clients.ClientRegistry`).

Transports resolve ``(tenant, room_id)`` here once, at their edge, and pass the :class:`LiveRoom`
inward; nothing deeper takes ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from bridge import logs, metrics
from bridge.errors import NotFound, RoomNotOpen
from bridge.rtc.reassembler import Reassembler

from .clients import ClientLease, ClientRegistry
from .events import RoomEvents
from .models import LIVE_STATES, Room, RoomState
from .store import RoomStore
from .utterances import UtteranceTracker

Clock = Callable[[], float]
"""Seconds since the epoch; injected wherever behaviour depends on time (tests move it)."""


@dataclass(eq=False)
class LiveRoom:
    """What the bridge holds in memory for a room A2E may be charging for."""

    room: Room
    events: RoomEvents
    clients: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reassembler: Reassembler = field(default_factory=Reassembler)
    leave_task: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    event_origin: str | None = None  # where the last channel event came from (labels expired replies)
    utterances: UtteranceTracker | None = None  # given by the relay when the room opens
    warm_for: str | None = None  # the kiosk profile whose warm pool holds it: not idle while waiting there
    # Many instances (bridge/cluster): a mirror is a room another instance owns, seen here for this
    # instance's clients (its events come from the owner, its commands go there); a room that moved
    # was owned here and is owned elsewhere now: its clients are told to reconnect.
    mirror: bool = False
    moved: bool = False


class RoomRegistry:
    """Every live room of this process, by id; ended rooms are only in the store."""

    def __init__(self, store: RoomStore, clients: ClientRegistry, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clients = clients
        self.clock = clock
        self.live: dict[str, LiveRoom] = {}
        # many instances: the mirror of a live room another instance owns (set by bridge/cluster)
        self.mirror_of: Callable[[Room], Awaitable[LiveRoom]] | None = None
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
    async def lookup(self, tenant: str | None, room_id: str, *, must_be_open: Literal[True],
                     opened_by: str | None = None) -> LiveRoom: ...

    @overload
    async def lookup(self, tenant: str | None, room_id: str, *, must_be_open: bool = False,
                     opened_by: str | None = None) -> LiveRoom | Room: ...

    async def lookup(self, tenant: str | None, room_id: str, *, must_be_open: bool = False,
                     opened_by: str | None = None) -> LiveRoom | Room:
        """The room ``room_id`` of ``tenant`` (None: of any tenant, for the operator): the live room if
        this process holds it (or, with many instances, a mirror of a live room another owns), else the
        stored record. With ``opened_by`` (a browser key's id), only a
        room that key opened. What is logged from here on in this task names the room.

        Raises:
            NotFound: no such room, or another tenant's (or another key's, with ``opened_by``).
            RoomNotOpen: ``must_be_open`` and the room is not open (closing, or it has ended).
        """
        lr = self.live.get(room_id)
        room = lr.room if lr is not None else await self.store.get(room_id)
        if room is None or tenant not in (None, room.tenant) or (opened_by is not None and room.opened_by != opened_by):
            raise NotFound(f"no room {room_id}")
        logs.bind(**room.log_fields())
        if lr is None and self.mirror_of is not None and room.state in LIVE_STATES:
            lr = await self.mirror_of(room)
        if lr is not None:
            if must_be_open and lr.room.state is not RoomState.OPEN:
                raise RoomNotOpen(f"room {room_id} is {lr.room.state.value}")
            return lr
        if must_be_open:
            raise RoomNotOpen(f"room {room_id} is {room.state.value}")
        return room

    async def list_rooms(self, tenant: str, *, live_only: bool = False, limit: int = 50,
                         before: tuple[float, str] | None = None) -> tuple[list[Room], bool]:
        """One page of ``tenant``'s rooms, newest first, older than the keyset ``before``
        (created_at, id), live ones as this process holds them; and whether more follow. The store
        reads only this page (plus one row)."""
        states = LIVE_STATES if live_only else None
        stored = await self.store.page(tenant=tenant, states=states, before=before, limit=limit + 1)
        rooms = [self.live[r.id].room if r.id in self.live else r for r in stored[:limit]]
        return rooms, len(stored) > limit

    # -- activity: a room without clients and commands for BRIDGE_IDLE_TIMEOUT is left -----------
    def touch(self, lr: LiveRoom) -> None:
        lr.room.last_activity = self.clock()

    def attach(self, lr: LiveRoom, *, ticket_chain: str | None = None) -> ClientLease:
        """Count a new client (websocket or SSE) of the room, or raise CapExceeded before anything
        is counted or touched. Releasing the lease detaches it."""
        lease = self.clients.acquire(room_id=lr.room.id, tenant=lr.room.tenant, ticket_chain=ticket_chain)
        lr.clients += 1
        self.touch(lr)
        lease.on_release(lambda: self._detach(lr))
        return lease

    def _detach(self, lr: LiveRoom) -> None:
        lr.clients = max(0, lr.clients - 1)
        self.touch(lr)


def room_of(found: LiveRoom | Room) -> Room:
    """The room record of what :meth:`RoomRegistry.lookup` found."""
    return found.room if isinstance(found, LiveRoom) else found
