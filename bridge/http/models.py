"""The HTTP API's requests and answers as pydantic models: the handlers validate requests and build
answers with them, and ``/openapi.json`` is generated from them (:mod:`bridge.http.openapi`), so the
document says exactly what the handlers enforce.

Limits that come from settings (the longest speak) are filled in per app by :func:`command_body`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator
from starlette.requests import Request

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.errors import BadRequest, ValidationFailed
from bridge.frames import ErrorCode
from bridge.rooms.models import CloseReason, RoomState
from bridge.rooms.relay import CHUNK_CHARS

M = TypeVar("M", bound=BaseModel)

ROOM_ID_PATTERN = r"^rm_[A-Za-z0-9_-]{16}$"
# the position after a room in a listing: its created_at (seconds) and id; any such value is a position
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?~[A-Za-z0-9_-]{1,64}$"


class Request_(BaseModel):
    """A request body or query: unknown fields are refused, and no coercion ("600" is not 600)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 600.0 is one (the schema allows it, so the handler takes it); "600" is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]


# -- requests --------------------------------------------------------------------------------------------------------
class CreateRoom(Request_):
    avatar_id: str | None = Field(None, min_length=1, max_length=128,
                                  description="a streaming avatar's _id (GET /v1/avatars); default: "
                                              "BRIDGE_DEFAULT_AVATAR_ID, else A2E's first")
    expire_seconds: Annotated[int, Field(ge=10, le=86_400), BeforeValidator(_integral)] | None = None
    qa_context: str | None = Field(None, max_length=QA_CONTEXT_LIMIT, description="what ask answers from",
                                   examples=["We sell bicycles. We open at 9am."])
    forward_events: bool = Field(False, description="the ws_ticket may forward channel events (a kiosk page)")


@functools.cache
def create_room_body(leave_before_expiry: float) -> type[CreateRoom]:
    """:class:`CreateRoom` with the shortest lifetime these settings allow: a room is left
    ``BRIDGE_LEAVE_BEFORE_EXPIRY`` seconds before it expires, so it must outlive that."""
    least = max(10, math.floor(leave_before_expiry) + 1)
    lifetime = Annotated[int, Field(ge=least, le=86_400), BeforeValidator(_integral)]
    return create_model("CreateRoom", __base__=CreateRoom, expire_seconds=(lifetime | None, Field(
        None, examples=[600], description="the room's lifetime, charged up front; default "
        "BRIDGE_DEFAULT_EXPIRE_SECONDS; above the tenant's cap (BRIDGE_MAX_EXPIRE_SECONDS) it is 429 cap_exceeded")))


class TicketRequest(Request_):
    forward_events: bool = Field(False, description="the ticket may forward channel events (rtc_event frames)")


class QaContextBody(Request_):
    text: str = Field(min_length=1, max_length=QA_CONTEXT_LIMIT, description="the room's knowledge base",
                      examples=["We open at 9am and close at 5pm."])


@functools.cache
def command_body(kind: Literal["speak", "ask"], max_chars: int) -> type[BaseModel]:
    """The body of speak/ask: a text with a visible character, at most ``max_chars``
    (``BRIDGE_MAX_TEXT_CHARS``; a question at most 500 as well)."""
    limit = max_chars if kind == "speak" else min(max_chars, CHUNK_CHARS)
    what = "what the avatar says (split at sentences)" if kind == "speak" else "the question"

    def visible(cls: type[BaseModel], text: str) -> str:
        if not text.strip():
            raise ValueError("text must hold more than whitespace")
        return text

    return create_model(f"{kind.capitalize()}Body", __base__=Request_,
                        __validators__={"visible": field_validator("text")(visible)},
                        text=(str, Field(min_length=1, max_length=limit, pattern=r"\S", description=what,
                                         examples=["Welcome to the shop!" if kind == "speak" else "When do you open?"])))


class ListRoomsQuery(Request_):
    model_config = ConfigDict(extra="ignore", strict=False)  # query values are strings: "5" is 5
    state: Literal["live"] | None = Field(None, description="live: only rooms that may still be charging")
    limit: Integer = Field(50, ge=1, le=200, description="rooms per page")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN, description="next_cursor of the previous page")

    @field_validator("limit", mode="before")
    @classmethod
    def digits_only(cls, value: Any) -> Any:  # "+5", " 5", "5_0", "1e2" are not limits
        if isinstance(value, str) and not (value.isascii() and value.isdigit()):
            raise ValueError("limit must be an integer")
        return value


class EventsQuery(Request_):
    model_config = ConfigDict(extra="ignore", strict=False)
    ticket: str | None = Field(None, description="a ws_ticket of the room, for clients without a key (EventSource)")
    last_event_id: int | None = Field(None, ge=0, description="resume after this event id (as Last-Event-ID)")


# -- answers ---------------------------------------------------------------------------------------------------------
class RoomView(BaseModel):
    """A room as clients see it, with what a browser needs to join the channel and the websocket."""

    id: str = Field(pattern=ROOM_ID_PATTERN)
    state: RoomState
    channel: str | None
    app_id: str | None
    token: str | None = Field(description="the Agora RTC token (the only secret here, for the viewer)")
    uid: int | None
    avatar_id: str | None
    expire_seconds: int
    created_at: str | None
    created_at_epoch: float
    expires_at: str | None
    expires_at_epoch: float | None
    close_reason: CloseReason | None
    closed_at: str | None
    closed_at_epoch: float | None
    qa_context_chars: int
    ws_url: str
    events_url: str


class NewRoom(RoomView):
    ws_ticket: str = Field(description="a short-lived websocket ticket (opaque)")
    ws_ticket_expires_in: float


class RoomList(BaseModel):
    rooms: list[RoomView]
    next_cursor: str | None = Field(pattern=CURSOR_PATTERN, description="null: no more rooms")


class TicketView(BaseModel):
    ws_ticket: str
    ws_ticket_expires_in: float
    ws_url: str


class QaContextView(BaseModel):
    text: str
    chars: int


class CommandAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    kind: Literal["speak", "ask"]
    position: int = Field(description="the first chunk's place in the room's order")
    positions: list[int]
    chunks: int


class FlushResult(BaseModel):
    flushed: int = Field(description="pending commands dropped")


class AvatarList(BaseModel):
    avatars: list[dict[str, Any]] = Field(description="A2E's streaming avatars: _id, name, ...")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyChecks(BaseModel):
    store: bool
    a2e: bool
    a2e_error: str | None = None
    a2e_message: str | None = None
    live_rooms: int


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


class OperationInfo(BaseModel):
    name: str
    group: str
    method: str
    path: str
    certainty: str
    required: dict[str, str]
    optional: dict[str, str]
    creates_task: bool
    summary: str


class OperationList(BaseModel):
    operations: list[OperationInfo]


class A2EAnswer(BaseModel):
    data: Any = Field(description="A2E's data for the operation, as A2E answered it")


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {code, message, details?}}``."""

    error: ErrorDetail


# -- validating requests ---------------------------------------------------------------------------------------------
def problems(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]


async def parse_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``); 400 if it is not JSON, 422 if it
    does not fit."""
    raw = await request.body()
    try:
        # pydantic's JSON parser (jiter) stops at a nesting depth of 200 with a json_invalid error,
        # so a deeply nested body is a 400 here, never a RecursionError.
        return model.model_validate_json(raw or b"{}")  # no body at all is {}; whitespace is not JSON
    except ValidationError as exc:
        invalid = next((e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"), None)
        if invalid is not None:  # jiter's message names the problem and its position, never the input
            raise BadRequest(f"the body is not valid JSON ({invalid['msg']})") from None
        raise ValidationFailed("the body does not match the schema", details=problems(exc)) from None


def parse_query(values: Mapping[str, str], model: type[M]) -> M:
    """Query parameters as ``model``; 422 naming the bad one."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        details = [{"loc": ["query", *p["loc"]], "msg": p["msg"]} for p in problems(exc)]
        names = ", ".join(dict.fromkeys(str(d["loc"][1]) for d in details if len(d["loc"]) > 1))
        raise ValidationFailed(f"bad query parameter: {names}", details=details) from None
