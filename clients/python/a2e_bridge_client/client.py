"""The bridge's HTTP API (rooms, tickets, avatars) over one pooled :class:`httpx.AsyncClient`."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from .backoff import Reconnect
from .errors import BridgeError
from .room import Room

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; only needed by type checkers

__all__ = ["BridgeClient"]

DEFAULT_RECONNECT = Reconnect()


class BridgeClient:
    """A chatbot backend's handle on one bridge.

    ``api_key`` is sent as ``Authorization: Bearer`` on HTTP and on the websocket; without one
    (a bridge in dev mode) websockets authenticate with the room's short-lived ticket.
    ``reconnect=None`` turns automatic websocket reconnection off. ``connect_timeout`` bounds
    opening a websocket and how long a command waits for a reconnect before giving up.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 connect_timeout: float = 10.0, reconnect: Reconnect | None = DEFAULT_RECONNECT,
                 event_buffer: int = 10_000) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.event_buffer = event_buffer
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.auth_headers(), timeout=timeout)
        self._rooms: weakref.WeakSet[Room] = weakref.WeakSet()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def ws_url(self, room_id: str) -> str:
        """Derived from ``base_url`` rather than the room's ``ws_url``, so a path prefix or an
        internal host name this client reaches the bridge by keeps working."""
        url = httpx.URL(self.base_url)
        scheme = "wss" if url.scheme == "https" else "ws"
        return str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + f"/v1/rooms/{room_id}/ws"))

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the websockets of this client's rooms, then the HTTP pool. Rooms are not left:
        a room still open keeps running until someone deletes it or the bridge's idle timeout."""
        for room in list(self._rooms):
            with contextlib.suppress(Exception):
                await room.close(leave=False)
        await self._http.aclose()

    # -- rooms ----------------------------------------------------------------------------------
    async def create_room(self, avatar_id: str | None = None, expire_seconds: int | None = None,
                          qa_context: str | None = None, *, events: Iterable[str] | None = None) -> Room:
        """Open a room (A2E charges ``expire_seconds`` up front and refunds on leave). The Room is
        not connected yet; ``async with room:`` connects and leaves it on exit. ``events``: only
        these room events on its websocket (see :class:`Room`)."""
        body = {k: v for k, v in {"avatar_id": avatar_id, "expire_seconds": expire_seconds,
                                  "qa_context": qa_context}.items() if v is not None}
        info = await self._request("POST", "/v1/rooms", json=body)
        return self._room(info, owned=True, events=events)

    @contextlib.asynccontextmanager
    async def room(self, avatar_id: str | None = None, expire_seconds: int | None = None,
                   qa_context: str | None = None, *, events: Iterable[str] | None = None) -> AsyncIterator[Room]:
        """Create a room, connect to it, and leave it when the block ends (also on errors)."""
        room = await self.create_room(avatar_id, expire_seconds, qa_context, events=events)
        async with room:
            yield room

    async def get_room(self, room_id: str, *, events: Iterable[str] | None = None) -> Room:
        """An existing room (created by someone else, e.g. a kiosk): ``async with`` it connects
        and on exit only disconnects, without leaving the room. ``events``: as in :meth:`create_room`."""
        return self._room(await self._request("GET", f"/v1/rooms/{room_id}"), owned=False, events=events)

    async def list_rooms(self, live_only: bool = False, *, page_size: int = 200) -> list[dict[str, Any]]:
        """Every room of the caller, newest first (all pages: see :meth:`iter_rooms`)."""
        return [room async for room in self.iter_rooms(live_only, page_size=page_size)]

    async def iter_rooms(self, live_only: bool = False, *, page_size: int = 200) -> AsyncIterator[dict[str, Any]]:
        """The caller's rooms, newest first, fetched ``page_size`` at a time (1-200) by following
        the bridge's ``next_cursor``."""
        params: dict[str, Any] = {"limit": page_size}
        if live_only:
            params["state"] = "live"
        while True:
            body = await self._request("GET", "/v1/rooms", params=params)
            for room in body["rooms"]:
                yield room
            cursor = body.get("next_cursor")  # absent from bridges that did not page
            if not cursor:
                return
            params["cursor"] = cursor

    async def close_room(self, room_id: str) -> dict[str, Any]:
        """Leave a room (idempotent); returns the room, ``closing`` or ``closed``."""
        result: dict[str, Any] = await self._request("DELETE", f"/v1/rooms/{room_id}")
        return result

    async def new_ticket(self, room_id: str) -> dict[str, Any]:
        """A fresh short-lived websocket ticket: ``{ws_ticket, ws_ticket_expires_in, ws_url}``
        (also what a backend hands a browser so it can join without the API key)."""
        result: dict[str, Any] = await self._request("POST", f"/v1/rooms/{room_id}/tickets")
        return result

    async def avatars(self) -> list[dict[str, Any]]:
        body = await self._request("GET", "/v1/avatars")
        return list(body["avatars"])

    # -- plumbing -------------------------------------------------------------------------------
    def _room(self, info: dict[str, Any], *, owned: bool, events: Iterable[str] | None = None) -> Room:
        room = Room(self, info, owned=owned, events=events)
        self._rooms.add(room)
        return room

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()


def _error_from(response: httpx.Response) -> BridgeError:
    """The bridge's ``{"error": {code, message, details?}}``; anything else (a proxy's page)
    becomes ``http_error`` with the start of the body."""
    retry_after: float | None = None
    with contextlib.suppress(ValueError):
        retry_after = float(response.headers.get("retry-after", ""))
    try:
        error = response.json()["error"]
        return BridgeError(str(error["code"]), str(error["message"]), response.status_code,
                           error.get("details"), retry_after)
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return BridgeError("http_error", text, response.status_code, None, retry_after)
