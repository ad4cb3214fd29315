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
from bridge.rooms.events import event_filter
from bridge.rooms.models import Room, RoomState
from bridge.rooms.registry import LiveRoom

from .auth import Authenticator
from .models import EventsQuery, parse_query
from .openapi import operation


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


@operation(summary="The room's events as Server-Sent Events (named by type: use addEventListener)", query=EventsQuery,
           media="text/event-stream", headers=({"name": "Last-Event-ID", "in": "header", "required": False,
                                                "description": "resume after this event id",
                                                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},),
           errors={400: "`Last-Event-ID` is not an event id", 429: "a client cap (`details.cap`: clients_per_room, "
                   "clients_per_ticket, clients_per_tenant)"},
           description="`text/event-stream`: each event's name is its type (`room`, `command`, `utterance`, "
                       "`reply`, `speaking_started`, `speaking_stopped`, `room_closed`), its data the JSON frame (the "
                       "websocket's `ServerFrame`), its id its place in the room's history. The stream starts "
                       "with the room as it is (`room`, no id); `Last-Event-ID` (or `last_event_id`) resumes "
                       "after that event; a room that has ended answers its final `room_closed` and ends. "
                       "A key in `Authorization`, or `?ticket=` (EventSource sends no headers).")
async def room_events(request: Request) -> Response:
    auth: Authenticator = request.app.state.auth
    room_id = request.path_params["room_id"]
    who = auth.authenticate_room(request)
    rooms: Rooms = request.app.state.rooms
    query = parse_query(request.query_params, EventsQuery)
    wanted = event_filter(request.query_params.getlist("events"))  # before the room: a bad list takes no slot
    last = request.headers.get("last-event-id")
    if last and not (last.isascii() and last.isdigit() and len(last) <= 18):
        raise BadRequest("Last-Event-ID must be an integer event id")
    after = int(last) if last else query.last_event_id
    lr = await rooms.registry.lookup(who.tenant, room_id, opened_by=who.browser_key)
    if not isinstance(lr, LiveRoom):
        if lr.state in (RoomState.CLOSED, RoomState.FAILED):  # a client reconnecting after the end reads it
            return EventSourceResponse(_ended(lr))
        raise NotFound(f"room {room_id} is not served here")  # a live room of another process
    lease = rooms.registry.attach(lr, ticket_chain=who.ticket_chain)  # 429 cap_exceeded before anything is counted
    try:
        sub = lr.events.subscribe(after=after, wanted=wanted)
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
