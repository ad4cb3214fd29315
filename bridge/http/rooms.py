"""The bridge's REST API for rooms: open, list, read, leave, tickets, QA context (commands: ``commands.py``).

Requests are validated and answers built with the models of :mod:`bridge.http.models`; each
handler's ``@operation`` is what ``/openapi.json`` says of it (:mod:`bridge.http.openapi`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.rooms import Rooms
from bridge.rooms.caps import check_browser_qa_context
from bridge.rooms.models import CloseReason, Room
from bridge.rooms.registry import LiveRoom, room_of
from bridge.settings import Settings

from .auth import Authenticator, Caller
from .models import (
    CreateRoom,
    ListRoomsQuery,
    NewRoom,
    QaContextBody,
    QaContextView,
    RoomList,
    RoomView,
    TicketRequest,
    TicketView,
    answer_body,
    create_room_body,
    parse_body,
    parse_query,
)
from .openapi import A2E_STATUSES, operation
from .paging import decode_cursor, encode_cursor
from .responses import JSONResponse

CALLS_A2E = dict.fromkeys(A2E_STATUSES, "")
BROWSER_LIMIT = "`forbidden`: longer than a browser key may set (its tenant's browser QA-context limit)"


def rooms_of(conn: HTTPConnection) -> Rooms:
    rooms: Rooms = conn.app.state.rooms
    return rooms


def caller(conn: HTTPConnection) -> Caller:
    auth: Authenticator = conn.app.state.auth
    return auth.authenticate(conn)


async def find_room(request: Request, who: Caller, *, must_be_open: bool = False) -> LiveRoom | Room:
    """The path's room, if ``who`` may use it (a browser key: only a room it opened)."""
    return await rooms_of(request).registry.lookup(who.tenant, request.path_params["room_id"],
                                                   must_be_open=must_be_open, opened_by=who.browser_key)


async def find_open_room(request: Request, who: Caller) -> LiveRoom:
    found = await find_room(request, who, must_be_open=True)
    assert isinstance(found, LiveRoom)
    return found


def room_view(request: HTTPConnection, room: Room, *, with_ticket: bool = False,
              forward_events: bool = False, browser: bool = False) -> dict[str, Any]:
    """A room as clients see it, with what a browser needs to join the channel and the websocket."""
    view = room.to_public()
    scheme = "wss" if request.url.scheme == "https" else "ws"
    view["ws_url"] = f"{scheme}://{request.url.netloc}/v1/rooms/{room.id}/ws"
    view["events_url"] = f"{request.url.scheme}://{request.url.netloc}/v1/rooms/{room.id}/events"
    if with_ticket:
        auth: Authenticator = request.app.state.auth
        view["ws_ticket"] = auth.issue_ticket(room.id, room.tenant, forward=forward_events, browser=browser)
        view["ws_ticket_expires_in"] = auth.ticket_ttl
    return view


def answer(model: type[Any], data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """An answer built with its model (the one ``/openapi.json`` shows)."""
    return JSONResponse(answer_body(model, data), status_code=status_code)


def room_body(settings: Settings) -> type[CreateRoom]:
    """The body of POST /v1/rooms under these settings (its limits and brains)."""
    return create_room_body(settings.leave_before_expiry, tuple(sorted(settings.brains)))


@operation(summary="Open a room (mints an A2E streaming token; charged for expire_seconds up front)",
           body=room_body, body_required=False, answer=NewRoom, ok=201, errors={
               403: BROWSER_LIMIT, 404: "`avatar_id`: no such streaming avatar",
               422: "also `brain`: a brain limited to other tenants", 429: "a cap (`details.cap`: concurrent_rooms, "
               "expire_seconds, room_minutes_per_day, balance, creation_rate with `Retry-After`; a browser key's own)",
               **CALLS_A2E})
async def create_room(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, room_body(request.app.state.settings))
    rooms = rooms_of(request)
    brain = rooms.relay.answering.check(body.brain, who.tenant)  # before A2E charges for anything
    lr = await rooms.lifecycle.create(who.tenant, avatar_id=body.avatar_id, expire_seconds=body.expire_seconds,
                                      qa_context=body.qa_context, browser_key=who.browser_key, brain=brain)
    return answer(NewRoom, room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events,
                                     browser=who.browser), 201)


@operation(summary="The caller's rooms, newest first, a page at a time", query=ListRoomsQuery, answer=RoomList,
           errors={403: "`forbidden`: a browser key may not list rooms"})
async def list_rooms(request: Request) -> Response:
    who = caller(request)
    who.deny_browser("list rooms")
    query = parse_query(request.query_params, ListRoomsQuery)
    before = decode_cursor(query.cursor) if query.cursor is not None else None
    rooms, more = await rooms_of(request).registry.list_rooms(who.tenant, live_only=query.state == "live",
                                                              limit=query.limit, before=before)
    return answer(RoomList, {"rooms": [room_view(request, r) for r in rooms],
                             "next_cursor": encode_cursor(rooms[-1]) if more and rooms else None})


@operation(summary="One room (with close_reason once closed)", answer=RoomView)
async def get_room(request: Request) -> Response:
    who = caller(request)
    room = room_of(await find_room(request, who))
    return answer(RoomView, room_view(request, room))


@operation(summary="Leave a room (idempotent); answers once A2E confirmed, or after a few seconds with state "
                   "closing while the leave is retried", answer=RoomView)
async def delete_room(request: Request) -> Response:
    who = caller(request)
    found = await find_room(request, who)
    if isinstance(found, LiveRoom):
        found = await rooms_of(request).handle(found).close(found, CloseReason.CLIENT)
    return answer(RoomView, room_view(request, found))  # a room that has ended already: as it is


@operation(summary="A fresh short-lived websocket ticket for an open room (for browsers reconnecting)",
           body=TicketRequest, body_required=False, answer=TicketView, ok=201, errors={409: ""})
async def new_ticket(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, TicketRequest)
    lr = await find_open_room(request, who)
    view = room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events, browser=who.browser)
    return answer(TicketView, {k: view[k] for k in ("ws_ticket", "ws_ticket_expires_in", "ws_url")}, 201)


@operation(summary="Set the room's QA context (what ask answers from)", body=QaContextBody, answer=QaContextView,
           errors={403: BROWSER_LIMIT, 409: "", 422: "also when A2E refuses the text", **CALLS_A2E})
async def put_qa_context(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, QaContextBody)  # before the room: too long is 422 whatever its state
    if who.browser:
        check_browser_qa_context(request.app.state.settings, who.tenant, body.text)
    lr = await find_open_room(request, who)
    text = await rooms_of(request).handle(lr).set_qa_context(lr, body.text)
    return answer(QaContextView, {"text": text, "chars": len(text)})


@operation(summary="The room's QA context, as the bridge last set it", answer=QaContextView)
async def get_qa_context(request: Request) -> Response:
    who = caller(request)
    room = room_of(await find_room(request, who))
    return answer(QaContextView, {"text": room.qa_context or "", "chars": len(room.qa_context or "")})


routes: list[BaseRoute] = [
    Route("/v1/rooms", create_room, methods=["POST"]),
    Route("/v1/rooms", list_rooms, methods=["GET"]),
    Route("/v1/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/v1/rooms/{room_id}", delete_room, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/tickets", new_ticket, methods=["POST"]),
    Route("/v1/rooms/{room_id}/qa-context", put_qa_context, methods=["PUT"]),
    Route("/v1/rooms/{room_id}/qa-context", get_qa_context, methods=["GET"]),
]
