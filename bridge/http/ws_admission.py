"""A websocket's way into a room (``GET /v1/rooms/{room_id}/ws``): who is calling, which room, and
a client slot, or the close code and reason that refuse it. Kept apart from :mod:`.ws`, which runs
the admitted connection."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from bridge import frames as p
from bridge.errors import CapExceeded, NotFound, OriginNotAllowed, RoomNotOpen, Unauthorized, ValidationFailed
from bridge.rooms import Rooms
from bridge.rooms.clients import ClientLease
from bridge.rooms.events import event_filter
from bridge.rooms.registry import LiveRoom

from .auth import Authenticator, Caller

Admitted = tuple[Caller, LiveRoom, ClientLease, frozenset[str] | None]


async def admit(ws: WebSocket, rooms: Rooms) -> Admitted | None:
    """The caller, its open room, its counted slot and the event types it asked for (``?events=``,
    None: all); or None once the socket is refused (closed)."""
    room_id = ws.path_params["room_id"]
    auth: Authenticator = ws.app.state.auth
    refusal: Unauthorized | None = None
    try:
        # through a connection object of its own: the headers and query it parses are dropped once
        # the caller is known, not kept with the socket for as long as it is open
        caller = auth.authenticate_room(HTTPConnection(ws.scope))
    except OriginNotAllowed:
        # A page on an origin that may not: the handshake itself is refused, so it never gets a
        # socket. Closing before accept makes the server answer HTTP 403 (without a body: uvicorn's
        # denial-response path logs a spurious error when the app returns after it).
        await ws.close()
        return None
    except Unauthorized as exc:
        refusal = exc
    # Accepted before the other refusals, so that they can carry their close code and reason.
    await ws.accept()
    try:
        if refusal is not None:
            raise refusal
        wanted = event_filter(ws.query_params.getlist("events"))
        lr = await rooms.registry.lookup(caller.tenant, room_id, must_be_open=True, opened_by=caller.browser_key)
        # checked (and counted) before any work for this client: a refused one never touches the room
        lease = rooms.registry.attach(lr, ticket_chain=caller.ticket_chain)
    except Unauthorized as exc:
        await ws.close(p.CloseCode.UNAUTHORIZED, exc.message)
        return None
    except ValidationFailed as exc:  # the names it got wrong in a frame (a close's reason is short)
        await ws.send_text(p.encode(p.Error(code=exc.code, message=exc.message, details=exc.details)))
        await ws.close(p.CloseCode.BAD_QUERY, "invalid_input: bad query parameter: events")
        return None
    except NotFound as exc:
        await ws.close(p.CloseCode.NOT_FOUND, exc.message)
        return None
    except RoomNotOpen as exc:
        await ws.close(p.CloseCode.ROOM_NOT_OPEN, exc.message)
        return None
    except CapExceeded as exc:
        limit = rooms.registry.clients.limits[exc.cap]
        await ws.close(p.CloseCode.CAP_EXCEEDED, f"cap_exceeded: {exc.cap} (at most {limit})")
        return None
    return caller, lr, lease, wanted
