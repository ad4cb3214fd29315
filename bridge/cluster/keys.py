"""The Redis names of the cluster (the room store's own live in ``bridge/store``): all under one prefix."""

from __future__ import annotations

PREFIX = "a2eb:"
INSTANCES = PREFIX + "instances"  # zset: instance id -> heartbeat deadline (epoch seconds)
ADOPT = PREFIX + "adopt"  # channel: an instance handing over asks its peers to scan at once


def lease(room_id: str) -> str:
    """The room's owner (an instance id), expiring unless renewed."""
    return f"{PREFIX}lease:{room_id}"


def inbox(instance: str) -> str:
    """Stream of commands forwarded to ``instance`` (the owner of their rooms)."""
    return f"{PREFIX}inbox:{instance}"


def replies(instance: str) -> str:
    """Channel of the answers to the commands ``instance`` forwarded."""
    return f"{PREFIX}reply:{instance}"


def events(room_id: str) -> str:
    """Channel of the room's events, published by its owner."""
    return f"{PREFIX}ev:{room_id}"


def event_log(room_id: str) -> str:
    """Stream of the room's last events (bounded): backfill for mirrors, ids for a new owner."""
    return f"{PREFIX}evlog:{room_id}"
