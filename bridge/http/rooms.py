"""The bridge's REST API for rooms: open, list, read, leave, tickets, QA context (commands: ``commands.py``).

Each endpoint's docstring holds its OpenAPI description (YAML after ``---``), gathered at
``/openapi.json`` by Starlette's schema generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.errors import BadRequest, ValidationFailed
from bridge.rooms import Rooms
from bridge.rooms.caps import check_browser_qa_context
from bridge.rooms.models import CloseReason, Room
from bridge.rooms.registry import LiveRoom, room_of
from bridge.rooms.relay import check_qa_context

from .auth import Authenticator, Caller
from .paging import decode_cursor, encode_cursor, page_limit
from .responses import JSONResponse

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Callable[..., Any])


class CreateRoom(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "600" or 1.0 is not an integer
    avatar_id: str | None = Field(None, min_length=1, max_length=128)
    expire_seconds: int | None = Field(None, ge=10, le=86_400)
    qa_context: str | None = None
    forward_events: bool = False  # the room's ws_ticket may forward channel events (a kiosk page)
    brain: str | None = Field(None, min_length=1, max_length=64)  # who answers ask: "a2e" or a BRIDGE_BRAINS name


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    forward_events: bool = False  # the ticket may forward channel events (rtc_event frames)


class TextBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str


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


async def parse_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    try:
        # pydantic's JSON parser (jiter) stops at a nesting depth of 200 with a json_invalid error,
        # so a deeply nested body is a 400 here, never a RecursionError.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
        invalid = next((e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"), None)
        if invalid is not None:
            # jiter's message names the problem and its position, never the input ("Invalid JSON:
            # recursion limit exceeded at line 1 column 202").
            raise BadRequest(f"the body is not valid JSON ({invalid['msg']})") from None
        raise ValidationFailed("the body does not match the schema", details=details) from None


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


def with_limits(endpoint: E) -> E:
    """Fill the QA-context limit into an endpoint's OpenAPI description (one definition of it)."""
    endpoint.__doc__ = (endpoint.__doc__ or "").replace("QA_CONTEXT_LIMIT", str(QA_CONTEXT_LIMIT)).replace(
        "QA_CONTEXT_CHARS", f"{QA_CONTEXT_LIMIT:,}")
    return endpoint


@with_limits
async def create_room(request: Request) -> Response:
    """
    summary: Open a room (mints an A2E streaming token; charged for expire_seconds up front)
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {avatar_id: {type: string}, expire_seconds: {type: integer},
                   qa_context: {type: string, maxLength: QA_CONTEXT_LIMIT}, forward_events: {type: boolean},
                   brain: {type: string, description: "who answers ask: a2e (default) or a name from BRIDGE_BRAINS"}}}
    responses:
      201: {description: "The room: id, channel, app_id, token, uid, expires_at, state, ws_url, ws_ticket"}
      429: {description: "A cap was hit (details.cap names it)"}
      503: {description: "No avatar host free (Retry-After)"}
    """
    who = caller(request)
    body = await parse_body(request, CreateRoom)
    rooms = rooms_of(request)
    brain = rooms.relay.answering.check(body.brain, who.tenant)  # before A2E charges for anything
    lr = await rooms.lifecycle.create(who.tenant, avatar_id=body.avatar_id, expire_seconds=body.expire_seconds,
                                      qa_context=body.qa_context, browser_key=who.browser_key, brain=brain)
    return JSONResponse(room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events,
                                  browser=who.browser), status_code=201)


async def list_rooms(request: Request) -> Response:
    """
    summary: The caller's rooms, newest first, a page at a time (?state=live for live rooms only)
    parameters:
      - {name: state, in: query, schema: {type: string, enum: [live]}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: cursor, in: query, description: "next_cursor of the previous page", schema: {type: string}}
    responses:
      200: {description: "{rooms: [...], next_cursor: string or null (null: no more rooms)}"}
      403: {description: "A browser key (it may not list rooms)"}
      422: {description: "Bad limit or cursor"}
    """
    who = caller(request)
    who.deny_browser("list rooms")
    params = request.query_params
    live_only = params.get("state") == "live"
    limit = page_limit(params.get("limit"))
    cursor = params.get("cursor")
    before = decode_cursor(cursor) if cursor is not None else None
    rooms, more = await rooms_of(request).registry.list_rooms(who.tenant, live_only=live_only, limit=limit,
                                                              before=before)
    return JSONResponse({"rooms": [room_view(request, r) for r in rooms],
                         "next_cursor": encode_cursor(rooms[-1]) if more and rooms else None})


async def get_room(request: Request) -> Response:
    """
    summary: One room
    responses:
      200: {description: The room}
      404: {description: Unknown room (or another tenant's)}
    """
    who = caller(request)
    room = room_of(await find_room(request, who))
    return JSONResponse(room_view(request, room))


async def delete_room(request: Request) -> Response:
    """
    summary: Leave a room (idempotent); answers once A2E confirmed or after a few seconds
    responses:
      200: {description: "The room, state closing or closed"}
    """
    who = caller(request)
    found = await find_room(request, who)
    if isinstance(found, LiveRoom):
        await rooms_of(request).lifecycle.close(found, CloseReason.CLIENT)
    return JSONResponse(room_view(request, room_of(found)))  # a room that has ended already: as it is


async def new_ticket(request: Request) -> Response:
    """
    summary: A fresh short-lived websocket ticket for a live room (for browsers reconnecting)
    requestBody:
      required: false
      content:
        application/json:
          schema: {type: object, properties: {forward_events: {type: boolean}}}
    responses:
      201: {description: "{ws_ticket, ws_ticket_expires_in}"}
      404: {description: Unknown room (or another tenant's)}
      409: {description: The room is not open}
    """
    who = caller(request)
    body = await parse_body(request, TicketRequest)
    lr = await find_open_room(request, who)
    view = room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events, browser=who.browser)
    return JSONResponse({k: view[k] for k in ("ws_ticket", "ws_ticket_expires_in", "ws_url")}, status_code=201)


@with_limits
async def put_qa_context(request: Request) -> Response:
    """
    summary: Set the room's QA context (at most QA_CONTEXT_CHARS characters)
    responses:
      200: {description: "{text, chars}"}
      403: {description: "Longer than a browser key may set"}
      422: {description: Too long}
    """
    who = caller(request)
    body = await parse_body(request, TextBody)
    check_qa_context(body.text)  # before the room: too long is 422 whatever the room's state
    if who.browser:
        check_browser_qa_context(request.app.state.settings, who.tenant, body.text)
    lr = await find_open_room(request, who)
    room = await rooms_of(request).relay.set_qa_context(lr, body.text)
    return JSONResponse({"text": room.qa_context, "chars": len(room.qa_context or "")})


async def get_qa_context(request: Request) -> Response:
    """
    summary: The room's QA context, as the bridge last set it
    responses:
      200: {description: "{text, chars}"}
    """
    who = caller(request)
    room = room_of(await find_room(request, who))
    return JSONResponse({"text": room.qa_context or "", "chars": len(room.qa_context or "")})


routes: list[BaseRoute] = [
    Route("/v1/rooms", create_room, methods=["POST"]),
    Route("/v1/rooms", list_rooms, methods=["GET"]),
    Route("/v1/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/v1/rooms/{room_id}", delete_room, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/tickets", new_ticket, methods=["POST"]),
    Route("/v1/rooms/{room_id}/qa-context", put_qa_context, methods=["PUT"]),
    Route("/v1/rooms/{room_id}/qa-context", get_qa_context, methods=["GET"]),
]
