"""The bridge's REST API for rooms: open, list, read, leave, tickets, QA context, commands.

Requests are validated and answers built with the models of :mod:`bridge.http.models`; each
handler's ``@operation`` is what ``/openapi.json`` says of it (:mod:`bridge.http.openapi`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.rooms import Rooms
from bridge.rooms.models import CloseReason, Room
from bridge.rooms.registry import LiveRoom, room_of
from bridge.rooms.relay import CommandKind, acceptance
from bridge.settings import Settings

from .auth import Authenticator, Caller
from .models import (
    CommandAccepted,
    FlushResult,
    ListRoomsQuery,
    NewRoom,
    QaContextBody,
    QaContextView,
    RoomList,
    RoomView,
    TicketRequest,
    TicketView,
    command_body,
    create_room_body,
    parse_body,
    parse_query,
)
from .openapi import A2E_STATUSES, operation
from .paging import decode_cursor, encode_cursor
from .responses import JSONResponse

CALLS_A2E = dict.fromkeys(A2E_STATUSES, "")


def rooms_of(conn: HTTPConnection) -> Rooms:
    rooms: Rooms = conn.app.state.rooms
    return rooms


def caller(conn: HTTPConnection) -> Caller:
    auth: Authenticator = conn.app.state.auth
    return auth.authenticate(conn)


def room_view(request: HTTPConnection, room: Room, *, with_ticket: bool = False,
              forward_events: bool = False) -> dict[str, Any]:
    """A room as clients see it, with what a browser needs to join the channel and the websocket."""
    view = room.to_public()
    scheme = "wss" if request.url.scheme == "https" else "ws"
    view["ws_url"] = f"{scheme}://{request.url.netloc}/v1/rooms/{room.id}/ws"
    view["events_url"] = f"{request.url.scheme}://{request.url.netloc}/v1/rooms/{room.id}/events"
    if with_ticket:
        auth: Authenticator = request.app.state.auth
        view["ws_ticket"] = auth.issue_ticket(room.id, room.tenant, forward=forward_events)
        view["ws_ticket_expires_in"] = auth.ticket_ttl
    return view


def answer(model: type[Any], data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """An answer built with its model (the one ``/openapi.json`` shows)."""
    return JSONResponse(model.model_validate(data).model_dump(mode="json"), status_code=status_code)


@operation(summary="Open a room (mints an A2E streaming token; charged for expire_seconds up front)",
           body=lambda settings: create_room_body(settings.leave_before_expiry),
           body_required=False, answer=NewRoom, ok=201, errors={
               404: "`avatar_id`: no such streaming avatar", 429: "a cap (`details.cap`: concurrent_rooms, "
               "expire_seconds, room_minutes_per_day, balance, creation_rate with `Retry-After`)", **CALLS_A2E})
async def create_room(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, create_room_body(request.app.state.settings.leave_before_expiry))
    lr = await rooms_of(request).lifecycle.create(who.tenant, avatar_id=body.avatar_id,
                                                  expire_seconds=body.expire_seconds, qa_context=body.qa_context)
    return answer(NewRoom, room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events), 201)


@operation(summary="The caller's rooms, newest first, a page at a time", query=ListRoomsQuery, answer=RoomList)
async def list_rooms(request: Request) -> Response:
    who = caller(request)
    query = parse_query(request.query_params, ListRoomsQuery)
    before = decode_cursor(query.cursor) if query.cursor is not None else None
    rooms, more = await rooms_of(request).registry.list_rooms(who.tenant, live_only=query.state == "live",
                                                              limit=query.limit, before=before)
    return answer(RoomList, {"rooms": [room_view(request, r) for r in rooms],
                             "next_cursor": encode_cursor(rooms[-1]) if more and rooms else None})


@operation(summary="One room (with close_reason once closed)", answer=RoomView)
async def get_room(request: Request) -> Response:
    who = caller(request)
    room = room_of(await rooms_of(request).registry.lookup(who.tenant, request.path_params["room_id"]))
    return answer(RoomView, room_view(request, room))


@operation(summary="Leave a room (idempotent); answers once A2E confirmed, or after a few seconds with state "
                   "closing while the leave is retried", answer=RoomView)
async def delete_room(request: Request) -> Response:
    who = caller(request)
    rooms = rooms_of(request)
    found = await rooms.registry.lookup(who.tenant, request.path_params["room_id"])
    if isinstance(found, LiveRoom):
        await rooms.lifecycle.close(found, CloseReason.CLIENT)
    return answer(RoomView, room_view(request, room_of(found)))  # a room that has ended already: as it is


@operation(summary="A fresh short-lived websocket ticket for an open room (for browsers reconnecting)",
           body=TicketRequest, body_required=False, answer=TicketView, ok=201, errors={409: ""})
async def new_ticket(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, TicketRequest)
    lr = await rooms_of(request).registry.lookup(who.tenant, request.path_params["room_id"], must_be_open=True)
    view = room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events)
    return answer(TicketView, {k: view[k] for k in ("ws_ticket", "ws_ticket_expires_in", "ws_url")}, 201)


@operation(summary="Set the room's QA context (what ask answers from)", body=QaContextBody, answer=QaContextView,
           errors={409: "", 422: "also when A2E refuses the text", **CALLS_A2E})
async def put_qa_context(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, QaContextBody)  # before the room: too long is 422 whatever its state
    rooms = rooms_of(request)
    lr = await rooms.registry.lookup(who.tenant, request.path_params["room_id"], must_be_open=True)
    room = await rooms.relay.set_qa_context(lr, body.text)
    return answer(QaContextView, {"text": room.qa_context, "chars": len(room.qa_context or "")})


@operation(summary="The room's QA context, as the bridge last set it", answer=QaContextView)
async def get_qa_context(request: Request) -> Response:
    who = caller(request)
    room = room_of(await rooms_of(request).registry.lookup(who.tenant, request.path_params["room_id"]))
    return answer(QaContextView, {"text": room.qa_context or "", "chars": len(room.qa_context or "")})


def _command(kind: CommandKind) -> Any:
    return lambda settings: command_body(kind, settings.max_text_chars)


async def run_command(request: Request, kind: CommandKind) -> Response:
    who = caller(request)
    settings: Settings = request.app.state.settings
    body = await parse_body(request, command_body(kind, settings.max_text_chars))
    rooms = rooms_of(request)
    lr = await rooms.registry.lookup(who.tenant, request.path_params["room_id"], must_be_open=True)
    # Answer once A2E accepted every chunk; the queue keeps going if this client goes away.
    seqs = await acceptance(rooms.relay.submit(lr, kind, body.text))  # type: ignore[attr-defined]
    return answer(CommandAccepted, {"kind": kind, "position": seqs[0], "positions": seqs, "chunks": len(seqs)})


COMMAND_ERRORS = {409: "", 429: "(here: the room's queue is full; retry, or flush)", **CALLS_A2E}


@operation(summary="Make the avatar say a text (queued in order; long text is split at sentences); answers once "
                   "A2E accepted it", body=_command("speak"), answer=CommandAccepted, errors=COMMAND_ERRORS)
async def speak(request: Request) -> Response:
    return await run_command(request, "speak")


@operation(summary="Ask the avatar a question (answered from the QA context; the reply arrives as events)",
           body=_command("ask"), answer=CommandAccepted, errors=COMMAND_ERRORS)
async def ask(request: Request) -> Response:
    return await run_command(request, "ask")


@operation(summary="Drop the room's pending commands", answer=FlushResult, errors={409: ""})
async def flush(request: Request) -> Response:
    who = caller(request)
    rooms = rooms_of(request)
    lr = await rooms.registry.lookup(who.tenant, request.path_params["room_id"], must_be_open=True)
    return answer(FlushResult, {"flushed": rooms.relay.flush(lr)})


routes: list[BaseRoute] = [
    Route("/v1/rooms", create_room, methods=["POST"]),
    Route("/v1/rooms", list_rooms, methods=["GET"]),
    Route("/v1/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/v1/rooms/{room_id}", delete_room, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/tickets", new_ticket, methods=["POST"]),
    Route("/v1/rooms/{room_id}/qa-context", put_qa_context, methods=["PUT"]),
    Route("/v1/rooms/{room_id}/qa-context", get_qa_context, methods=["GET"]),
    Route("/v1/rooms/{room_id}/speak", speak, methods=["POST"]),
    Route("/v1/rooms/{room_id}/ask", ask, methods=["POST"]),
    Route("/v1/rooms/{room_id}/flush", flush, methods=["POST"]),
]
