"""Rooms: opening, listing and reading them, tickets, the QA context, the event stream's query."""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, create_model

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.rooms.models import CloseReason, RoomState

from .base import CURSOR_PATTERN, ROOM_ID_PATTERN, Answer, Digits, Query, Request_, _integral


# -- requests --------------------------------------------------------------------------------------------------------
class CreateRoom(Request_):
    avatar_id: str | None = Field(None, min_length=1, max_length=128,
                                  description="a streaming avatar's _id (GET /v1/avatars); default: "
                                              "BRIDGE_DEFAULT_AVATAR_ID, else A2E's first")
    expire_seconds: Annotated[int, Field(ge=10, le=86_400), BeforeValidator(_integral)] | None = None
    qa_context: str | None = Field(None, max_length=QA_CONTEXT_LIMIT, description="what ask answers from "
                                   "(a browser key: at most its tenant's browser limit, else 403)",
                                   examples=["We sell bicycles. We open at 9am."])
    forward_events: bool = Field(False, description="the ws_ticket may forward channel events (a kiosk page)")
    brain: str | None = Field(None, min_length=1, max_length=64,
                              description="who answers ask: a2e (A2E's own, the default) or a name from BRIDGE_BRAINS")


@functools.cache
def create_room_body(leave_before_expiry: float, brains: tuple[str, ...] = ()) -> type[CreateRoom]:
    """:class:`CreateRoom` as these settings take it: a room is left ``BRIDGE_LEAVE_BEFORE_EXPIRY``
    seconds before it expires, so it must outlive that; ``brain`` is one of ``brains`` (BRIDGE_BRAINS)."""
    least = max(10, math.floor(leave_before_expiry) + 1)
    lifetime = Annotated[int, Field(ge=least, le=86_400), BeforeValidator(_integral)]
    # the names are checked where the tenant is known (rooms/answers.py: 422 listing the tenant's own);
    # the document lists every one there is
    names: dict[str, Any] = {"enum": ["a2e", *brains, None]}
    return create_model("CreateRoom", __base__=CreateRoom, expire_seconds=(lifetime | None, Field(
        None, examples=[600], description="the room's lifetime, charged up front; default "
        "BRIDGE_DEFAULT_EXPIRE_SECONDS; above the tenant's cap (BRIDGE_MAX_EXPIRE_SECONDS) it is 429 cap_exceeded")),
        brain=(str | None, Field(None, min_length=1, max_length=64, json_schema_extra=names,
                                 description="who answers ask: a2e (A2E's own, the default) or a brain of "
                                             "BRIDGE_BRAINS (one limited to other tenants is 422)")))


class TicketRequest(Request_):
    forward_events: bool = Field(False, description="the ticket may forward channel events (rtc_event frames)")


class QaContextBody(Request_):
    text: str = Field(min_length=1, max_length=QA_CONTEXT_LIMIT, description="the room's knowledge base (a browser "
                      "key: at most its tenant's browser limit, else 403)", examples=["We open at 9am and close at 5pm."])


class ListRoomsQuery(Query):
    state: Literal["live"] | None = Field(None, description="live: only rooms that may still be charging")
    limit: Digits = Field(50, ge=1, le=200, description="rooms per page")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN, description="next_cursor of the previous page")


class EventsQuery(Query):
    ticket: str | None = Field(None, description="a ws_ticket of the room, for clients without a key (EventSource)")
    last_event_id: int | None = Field(None, ge=0, description="resume after this event id (as Last-Event-ID)")
    events: str | None = Field(None, examples=["command,reply"], description=(
        "only these event types, comma-separated (`room` and `room_closed` always come); unset: every event; "
        "an unknown type is 422"))


# -- answers ---------------------------------------------------------------------------------------------------------
class RoomView(Answer):
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
    brain: str = Field(description="who answers ask: a2e or a brain of BRIDGE_BRAINS")
    ws_url: str
    events_url: str


class NewRoom(RoomView):
    ws_ticket: str = Field(description="a short-lived websocket ticket (opaque)")
    ws_ticket_expires_in: float


class RoomList(Answer):
    rooms: list[RoomView]
    next_cursor: str | None = Field(pattern=CURSOR_PATTERN, description="null: no more rooms")


class TicketView(Answer):
    ws_ticket: str
    ws_ticket_expires_in: float
    ws_url: str


class QaContextView(Answer):
    text: str
    chars: int
