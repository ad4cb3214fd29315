"""Listings a page at a time: ``?limit=`` and an opaque keyset ``?cursor=`` (``next_cursor`` of the
previous page). The query is validated by :class:`~bridge.http.models.ListRoomsQuery`.

A cursor is ``<created_at>~<room id>``: the position after that room, newest first. Every string of
that shape is a position (rooms created before it), so the schema's pattern is the whole rule.
Unsigned on purpose: a forged cursor only moves within the caller's own rooms.
"""

from __future__ import annotations

import re

from bridge.errors import ValidationFailed
from bridge.rooms.models import Room

from .models import CURSOR_PATTERN

_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(room: Room) -> str:
    """The position after ``room`` in a listing: its keyset (created_at, id)."""
    stamp = repr(float(room.created_at))  # the shortest text that reads back as the same float
    if not re.fullmatch(r"[0-9]+\.[0-9]+", stamp):  # 1e+16 and the like: not a time the clock gives
        stamp = f"{room.created_at:.6f}"
    return f"{stamp}~{room.id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The keyset of a cursor; anything else is 422 ``invalid_input``."""
    if not _CURSOR.fullmatch(cursor):
        raise ValidationFailed("cursor is not one this server gives out: pass next_cursor from the previous page as "
                               "it is, or leave it out for the first page", details=[{"loc": ["query", "cursor"]}])
    stamp, _, room_id = cursor.partition("~")
    return float(stamp), room_id
