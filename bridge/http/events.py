"""``GET /v1/rooms/{room_id}/events``: a room's events as Server-Sent Events, for backends that do
not keep a websocket. Every stream starts with the room as it is (a ``room`` event); ``Last-Event-ID``
resumes from the room's bounded event history (the ``room`` event then follows the backlog). A room
that has ended answers its final ``room_closed``, so a client reconnecting late still reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from bridge import frames
from bridge.errors import BadRequest, NotFound
from bridge.rooms import Rooms
from bridge.rooms.clients import ClientLease
from bridge.rooms.models import Room, RoomState
from bridge.rooms.registry import LiveRoom

from .auth import Authenticator


class RoomEventStream(EventSourceResponse):
    """An SSE response that gives its client slot back however it ends. The generator's ``finally``
    is not enough: a HEAD request, or a client gone before the first event, never starts it."""

    def __init__(self, *args: Any, lease: ClientLease, cleanup: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease, self._cleanup = lease, cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cleanup()
            self._lease.release()


async def room_events(request: Request) -> Response:
    """
    summary: The room's events (reply, speaking_started, speaking_stopped, room, command, room_closed) as SSE
    parameters:
      - {name: Last-Event-ID, in: header, required: false, schema: {type: integer}}
      - {name: ticket, in: query, required: false, schema: {type: string}}
    responses:
      200: {description: "text/event-stream; event name = type, data = the JSON event, id = event id"}
      401: {description: "Missing or unknown key, bad, expired or malformed ticket"}
      429: {description: "Too many clients (details.cap: clients_per_room, clients_per_ticket, clients_per_tenant)"}
    """
    auth: Authenticator = request.app.state.auth
    room_id = request.path_params["room_id"]
    who = auth.authenticate_room(request)
    rooms: Rooms = request.app.state.rooms
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        after = int(last) if last else None
    except ValueError:
        raise BadRequest("Last-Event-ID must be an integer event id") from None
    lr = await rooms.registry.lookup(who.tenant, room_id)
    if not isinstance(lr, LiveRoom):
        if lr.state in (RoomState.CLOSED, RoomState.FAILED):  # a client reconnecting after the end reads it
            return EventSourceResponse(_ended(lr))
        raise NotFound(f"room {room_id} is not served here")  # a live room of another process
    lease = rooms.registry.attach(lr, ticket_chain=who.ticket_chain)  # 429 cap_exceeded before anything is counted
    try:
        sub = lr.events.subscribe(after=after)
    except BaseException:
        lease.release()
        raise
    # the room as it is now, after the backlog a resumed client missed and before anything new
    backlog = sub.queue.qsize()
    now = frames.encode(frames.RoomInfo(room=lr.room.to_public()))

    async def stream() -> AsyncIterator[dict[str, Any]]:
        if not backlog:
            yield {"event": "room", "data": now}  # no id: it is no place in the room's history
        sent = 0
        async for event in sub:  # data: the frame as the room's hub encoded it, once
            yield {"id": str(event.id), "event": event.type, "data": event.data}
            sent += 1
            if sent == backlog:
                yield {"event": "room", "data": now}

    return RoomEventStream(stream(), ping=15, lease=lease, cleanup=sub.close)


async def _ended(room: Room) -> AsyncIterator[dict[str, Any]]:
    """The stream of a room that has ended: its final ``room_closed``, then the end."""
    reason = room.close_reason.value if room.close_reason else "client"
    yield {"event": "room_closed", "data": frames.encode(frames.RoomClosed(reason=reason, room=room.to_public()))}


routes: list[BaseRoute] = [Route("/v1/rooms/{room_id}/events", room_events, methods=["GET"])]
