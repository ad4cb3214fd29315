"""Rooms: the model and state machine the rest of the bridge builds on."""

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

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "CloseReason",
    "InvalidTransition",
    "Room",
    "RoomError",
    "RoomState",
    "new_room_id",
]
