"""Rooms: the domain of the bridge.

``models`` (the state machine), ``registry`` (live rooms, the one lookup), ``lifecycle`` (open,
recover, close, leave), ``relay`` (speak, ask, streams, cancel, flush), ``queue`` (the ordered queue),
``text`` (sentence cuts), ``utterances`` (queue to mouth), ``brains`` and ``answers`` (who answers
ask), ``sweeper`` (idle, expiry, purge), ``events`` (fan-out), ``observing`` (channel events),
``warm`` (kiosk rooms opened ahead of visitors), ``caps``, ``transcript`` and
``usage`` (what operators read, ``journal`` its records, written through ``writer``) and ``store``
(the port ``bridge/store/`` implements); ``handle`` is the one seam the edges go through (in place, or
forwarded to another instance). :class:`Rooms` is how the transports reach them, wired once by the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.rooms.models import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    CloseReason,
    InvalidTransition,
    Room,
    RoomError,
    RoomState,
    new_room_id,
)

if TYPE_CHECKING:
    from bridge.rooms.handle import RoomHandle, RoomHandles
    from bridge.rooms.lifecycle import RoomLifecycle
    from bridge.rooms.registry import LiveRoom, RoomRegistry
    from bridge.rooms.relay import Relay
    from bridge.rooms.sweeper import Sweeper
    from bridge.rooms.transcript import Transcripts
    from bridge.rooms.usage import UsageLedger
    from bridge.rooms.warm import WarmPool

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "CloseReason",
    "InvalidTransition",
    "Room",
    "RoomError",
    "RoomState",
    "Rooms",
    "new_room_id",
]


@dataclass(frozen=True)
class Rooms:
    """The room domain as the transports see it (``app.state.rooms``)."""

    registry: RoomRegistry
    lifecycle: RoomLifecycle
    relay: Relay
    sweeper: Sweeper
    transcripts: Transcripts
    usage: UsageLedger
    warm: WarmPool
    handles: RoomHandles

    def handle(self, lr: LiveRoom) -> RoomHandle:
        """What the edges call for a room they looked up (see :mod:`bridge.rooms.handle`)."""
        return self.handles.of(lr)
