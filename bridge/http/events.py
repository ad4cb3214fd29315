"""``GET /v1/rooms/{room_id}/events``: a room's events as Server-Sent Events, for backends that do
not keep a websocket. ``Last-Event-ID`` resumes from the room's bounded event history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.errors import BadRequest, NotFound
from bridge.rooms import Rooms
from bridge.rooms.registry import LiveRoom

from .auth import Authenticator


async def room_events(request: Request) -> Response:
    """
    summary: The room's events (reply, speaking_started, speaking_stopped, room, command, room_closed) as SSE
    parameters:
      - {name: Last-Event-ID, in: header, required: false, schema: {type: integer}}
      - {name: ticket, in: query, required: false, schema: {type: string}}
    responses:
      200: {description: "text/event-stream; event name = type, data = the JSON event, id = event id"}
    """
    auth: Authenticator = request.app.state.auth
    room_id = request.path_params["room_id"]
    who = auth.authenticate_room(request)
    rooms: Rooms = request.app.state.rooms
    lr = await rooms.registry.lookup(who.tenant, room_id)
    if not isinstance(lr, LiveRoom):
        raise NotFound(f"no live room {room_id}")  # only live rooms stream
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        after = int(last) if last else None
    except ValueError:
        raise BadRequest("Last-Event-ID must be an integer event id") from None
    sub = lr.events.subscribe(after=after)
    rooms.registry.attach(lr)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in sub:  # data: the frame as the room's hub encoded it, once
                yield {"id": str(event.id), "event": event.type, "data": event.data}
        finally:
            sub.close()
            rooms.registry.detach(lr)

    return EventSourceResponse(stream(), ping=15)


routes: list[BaseRoute] = [Route("/v1/rooms/{room_id}/events", room_events, methods=["GET"])]
