"""The bridge's HTTP API: rooms, QA context, commands, avatars, health.

Each endpoint's docstring holds its OpenAPI description (YAML after ``---``), gathered at
``/openapi.json`` by Starlette's schema generator.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from .a2e.client import A2EClient
from .a2e.errors import A2EError
from .auth import Authenticator, Caller
from .errors import BadRequest, ValidationFailed, from_a2e
from .rooms.manager import RoomManager
from .rooms.models import CloseReason, Room
from .sse import room_events
from .ws.endpoint import room_websocket

M = TypeVar("M", bound=BaseModel)


class CreateRoom(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "600" or 1.0 is not an integer
    avatar_id: str | None = Field(None, min_length=1, max_length=128)
    expire_seconds: int | None = Field(None, ge=10, le=86_400)
    qa_context: str | None = None
    forward_events: bool = False  # the room's ws_ticket may forward channel events (a kiosk page)


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    forward_events: bool = False  # the ticket may forward channel events (rtc_event frames)


class TextBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str


def manager(conn: HTTPConnection) -> RoomManager:
    return conn.app.state.rooms


def caller(conn: HTTPConnection) -> Caller:
    auth: Authenticator = conn.app.state.auth
    return auth.authenticate(conn)


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


async def create_room(request: Request) -> Response:
    """
    summary: Open a room (mints an A2E streaming token; charged for expire_seconds up front)
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {avatar_id: {type: string}, expire_seconds: {type: integer},
                   qa_context: {type: string, maxLength: 5000}, forward_events: {type: boolean}}}
    responses:
      201: {description: "The room: id, channel, app_id, token, uid, expires_at, state, ws_url, ws_ticket"}
      429: {description: "A cap was hit (details.cap names it)"}
      503: {description: "No avatar host free (Retry-After)"}
    """
    who = caller(request)
    body = await parse_body(request, CreateRoom)
    lr = await manager(request).create(who.tenant, avatar_id=body.avatar_id, expire_seconds=body.expire_seconds,
                                       qa_context=body.qa_context)
    return JSONResponse(room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events),
                        status_code=201)


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


async def list_rooms(request: Request) -> Response:
    """
    summary: The caller's rooms, newest first, a page at a time (?state=live for live rooms only)
    parameters:
      - {name: state, in: query, schema: {type: string, enum: [live]}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: cursor, in: query, description: "next_cursor of the previous page", schema: {type: string}}
    responses:
      200: {description: "{rooms: [...], next_cursor: string or null (null: no more rooms)}"}
      422: {description: "Bad limit or cursor"}
    """
    who = caller(request)
    params = request.query_params
    live_only = params.get("state") == "live"
    limit = page_limit(params.get("limit"))
    cursor = params.get("cursor")
    before = decode_cursor(cursor) if cursor is not None else None
    rooms, more = await manager(request).list(who.tenant, live_only=live_only, limit=limit, before=before)
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
    room = await manager(request).find(who.tenant, request.path_params["room_id"])
    return JSONResponse(room_view(request, room))


async def delete_room(request: Request) -> Response:
    """
    summary: Leave a room (idempotent); answers once A2E confirmed or after a few seconds
    responses:
      200: {description: "The room, state closing or closed"}
    """
    who = caller(request)
    room = await manager(request).close(who.tenant, request.path_params["room_id"], CloseReason.CLIENT)
    return JSONResponse(room_view(request, room))


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
    lr = await manager(request).open_room(who.tenant, request.path_params["room_id"])
    view = room_view(request, lr.room, with_ticket=True, forward_events=body.forward_events)
    return JSONResponse({k: view[k] for k in ("ws_ticket", "ws_ticket_expires_in", "ws_url")}, status_code=201)


async def put_qa_context(request: Request) -> Response:
    """
    summary: Set the room's QA context (at most 5,000 characters)
    responses:
      200: {description: "{text, chars}"}
      422: {description: Too long}
    """
    who = caller(request)
    body = await parse_body(request, TextBody)
    room = await manager(request).set_qa_context(who.tenant, request.path_params["room_id"], body.text)
    return JSONResponse({"text": room.qa_context, "chars": len(room.qa_context or "")})


async def get_qa_context(request: Request) -> Response:
    """
    summary: The room's QA context, as the bridge last set it
    responses:
      200: {description: "{text, chars}"}
    """
    who = caller(request)
    room = await manager(request).find(who.tenant, request.path_params["room_id"])
    return JSONResponse({"text": room.qa_context or "", "chars": len(room.qa_context or "")})


async def run_command(request: Request, kind: str) -> Response:
    who = caller(request)
    body = await parse_body(request, TextBody)
    commands = await manager(request).submit(who.tenant, request.path_params["room_id"], kind, body.text)  # type: ignore[arg-type]
    # Answer once A2E accepted every chunk; the queue keeps going if this client goes away.
    results = await asyncio.gather(*(asyncio.shield(c.future) for c in commands), return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        raise failure
    seqs = [c.seq for c in commands]
    return JSONResponse({"status": "accepted", "kind": kind, "position": seqs[0], "positions": seqs,
                         "chunks": len(seqs)})


async def speak(request: Request) -> Response:
    """
    summary: Make the avatar say a text (queued in order; long text is split at sentences)
    responses:
      200: {description: "Accepted by A2E: {position, positions, chunks}"}
      409: {description: Room not open, or the command was flushed}
      429: {description: Queue full}
    """
    return await run_command(request, "speak")


async def ask(request: Request) -> Response:
    """
    summary: Ask the avatar a question (answered from the QA context; the reply arrives as events)
    responses:
      200: {description: "Accepted by A2E: {position}"}
    """
    return await run_command(request, "ask")


async def flush(request: Request) -> Response:
    """
    summary: Drop the room's pending commands
    responses:
      200: {description: "{flushed: n}"}
    """
    who = caller(request)
    rooms = manager(request)
    await rooms.open_room(who.tenant, request.path_params["room_id"])  # 404 or, for an ended room, 409
    return JSONResponse({"flushed": rooms.flush(who.tenant, request.path_params["room_id"])})


async def avatars(request: Request) -> Response:
    """
    summary: The streaming avatars A2E offers
    responses:
      200: {description: "{avatars: [{_id, name, ...}]}"}
    """
    caller(request)
    try:
        items = await manager(request).a2e.streaming_avatars()
    except A2EError as exc:
        raise from_a2e(exc) from None
    return JSONResponse({"avatars": items})


async def healthz(request: Request) -> Response:
    """
    summary: The process is up
    responses:
      200: {description: ok}
    """
    return JSONResponse({"status": "ok"})


class UpstreamCheck:
    """A2E's reachability for ``/readyz``, which anyone may call: the answer is kept
    ``BRIDGE_READY_CACHE_SECONDS`` and concurrent probes share the one call in flight, so a flood
    of probes costs A2E at most one call per period.

    Hand-written: the async caching libraries (async-lru, aiocache) do not keep failures, and a
    failing A2E is exactly when it must not be asked on every probe.
    """

    def __init__(self, a2e: A2EClient, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.a2e, self.ttl, self.clock = a2e, ttl, clock
        self._result: str | None = None  # None: reachable; else the A2E error's class name
        self._checked_at = -math.inf
        self._inflight: asyncio.Future[str | None] | None = None

    async def result(self) -> str | None:
        if self.clock() - self._checked_at < self.ttl:
            return self._result
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._check())
        # shield: a probe that hangs up must not cancel the check the others wait for
        return await asyncio.shield(self._inflight)

    async def _check(self) -> str | None:
        try:
            await self.a2e.remaining_coins()
            result = None
        except A2EError as exc:
            result = type(exc).__name__
        finally:
            self._inflight = None
        self._result, self._checked_at = result, self.clock()
        return result


def upstream_check(request: Request) -> UpstreamCheck:
    state, client = request.app.state, manager(request).a2e
    check: UpstreamCheck | None = getattr(state, "upstream_check", None)
    if check is None or check.a2e is not client:  # made on first use, for the client of this run
        check = state.upstream_check = UpstreamCheck(client, state.settings.ready_cache_seconds)
    return check


async def readyz(request: Request) -> Response:
    """
    summary: Upstream reachable and the room store open (A2E is asked at most every BRIDGE_READY_CACHE_SECONDS)
    responses:
      200: {description: ready}
      503: {description: "not ready, with the failing checks"}
    """
    rooms = manager(request)
    checks: dict[str, Any] = {"store": await rooms.store.ping()}
    a2e_error = await upstream_check(request).result()
    checks["a2e"] = a2e_error is None
    if a2e_error is not None:
        checks["a2e_error"] = a2e_error
    ready = checks["store"] and checks["a2e"]
    checks["live_rooms"] = len(rooms.live)
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/v1/avatars", avatars, methods=["GET"]),
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
    Route("/v1/rooms/{room_id}/events", room_events, methods=["GET"]),
    WebSocketRoute("/v1/rooms/{room_id}/ws", room_websocket),
]
