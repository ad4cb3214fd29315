"""Listings a page at a time: ``?limit=`` and an opaque keyset ``?cursor=`` (``next_cursor`` of
the previous page). A malformed limit or cursor is 422 ``invalid_input``."""

from __future__ import annotations

import base64
import binascii
import json
import math

from bridge.errors import ValidationFailed
from bridge.rooms.models import Room

LIST_LIMIT, LIST_MAX = 50, 200
CURSOR_MAX_CHARS = 256


def encode_cursor(room: Room) -> str:
    """The position after ``room`` in a listing: its keyset (created_at, id), opaque to clients.
    Unsigned on purpose: a forged cursor only moves within the caller's own rooms."""
    raw = json.dumps([room.created_at, room.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The keyset of a ``next_cursor``; anything else is 422 ``invalid_input``."""
    bad = ValidationFailed("cursor is not one this server gave out: pass next_cursor from the previous page as it "
                           "is, or leave it out for the first page", details=[{"loc": ["query", "cursor"]}])
    if not cursor or len(cursor) > CURSOR_MAX_CHARS or not cursor.isascii():
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):  # short input: no deep nesting to guard against
        raise bad from None
    if (not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool)
            or not isinstance(value[0], (int, float)) or not math.isfinite(value[0])
            or not isinstance(value[1], str) or not value[1]):
        raise bad
    return float(value[0]), value[1]


def page_limit(raw: str | None) -> int:
    if raw is None:
        return LIST_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIST_MAX:
        raise ValidationFailed(f"limit must be an integer from 1 to {LIST_MAX}",
                               details=[{"loc": ["query", "limit"], "max": LIST_MAX}])
    return int(raw)
