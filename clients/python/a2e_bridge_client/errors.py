"""Everything this package raises derives from :class:`ClientError`, so one ``except`` catches all.

HTTP transport failures (bridge unreachable) stay :class:`httpx.HTTPError`: they are not answers
from the bridge and callers usually treat them differently.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BridgeError",
    "ClientError",
    "CommandError",
    "ConnectionLost",
    "EventsOverflow",
    "RoomClosed",
]


class ClientError(Exception):
    """Base class of this package's errors."""


class BridgeError(ClientError):
    """The bridge answered an HTTP request with an error (``{"error": {code, message, details}}``).

    ``code`` is the bridge's machine-readable code (``unauthorized``, ``not_found``,
    ``cap_exceeded``, ``no_avatar_host``...); ``retry_after`` is the ``Retry-After`` header in
    seconds when the bridge sent one (429/503).
    """

    def __init__(self, code: str, message: str, status: int, details: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.retry_after = retry_after


class CommandError(ClientError):
    """The bridge answered a websocket command with an ``error`` frame (``flushed``, ``queue_full``,
    ``invalid_frame``, ``room_not_open``...): the command was refused or not carried out."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class ConnectionLost(ClientError):
    """The websocket is gone (or could not be opened, or did not come back in time).

    Raised to a command awaiting its ack when the socket dropped: the bridge may or may not have
    queued it, and it is not resent because ``speak`` is not idempotent.
    """


class RoomClosed(ConnectionLost):
    """The websocket ended for good: the room closed, or the bridge refuses this client for it.

    ``close_code`` is the websocket close code (4000 room closed, 4401 unauthorized, 4404 no such
    room, 4009 room not open) and ``reason`` the bridge's explanation.
    """

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(f"websocket closed with {close_code}: {reason or 'no reason given'}")
        self.close_code = close_code
        self.reason = reason


class EventsOverflow(ClientError):
    """An ``events()`` iterator fell too far behind; it was cut off so that memory stays bounded."""
