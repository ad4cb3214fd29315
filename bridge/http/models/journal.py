"""What operators read: a room's transcript, webhook deliveries, usage, the live rooms."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from bridge.rooms.usage import DAY

from .base import MAX_CURSOR, ROOM_ID_PATTERN, Answer, Digits, Query, only_digits

TRANSCRIPT_PAGE, TRANSCRIPT_MAX = 500, 1000
Number = int | float  # an integer stays one on the wire
# RFC 3339's full-date and date-time, the two shapes JSON Schema's "date" and "date-time" formats name
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
                        re.ASCII)
# the times an answer can show (datetime's range): earlier or later ones are read as these
EARLIEST, LATEST = 0.0, datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()


def _when(raw: str) -> str:
    """A date or an RFC 3339 time, checked (the value stays text: ``from`` and ``to`` read it)."""
    try:
        if _DATE.fullmatch(raw):
            date.fromisoformat(raw)
            return raw
        if _DATE_TIME.fullmatch(raw):
            datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
            return raw
    except ValueError:
        pass
    raise ValueError("must be a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-03T10:00:00Z)")


When = Annotated[str, AfterValidator(_when), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})]


def seconds_of(raw: str, *, end: bool = False) -> float:
    """A :data:`When` as a timestamp: a date is its whole UTC day (its end, for ``end``)."""
    if len(raw) == 10:
        day = datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=timezone.utc).timestamp()
        ts = day + DAY if end else day
    else:
        ts = datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).timestamp()
    return min(max(ts, EARLIEST), LATEST)


# -- queries ---------------------------------------------------------------------------------------------------------
class TranscriptQuery(Query):
    after: Digits = Field(0, ge=0, le=MAX_CURSOR, description="next_after of the previous answer")
    limit: Digits = Field(TRANSCRIPT_PAGE, ge=1, le=TRANSCRIPT_MAX, description="entries per answer (json)")
    format: Literal["json", "text"] = Field("json", description="text: the whole log as plain text lines")


class DeliveriesQuery(Query):
    status: Literal["pending", "delivered", "failed"] | None = None
    limit: Digits = Field(50, ge=1, le=200)
    before: Annotated[int, Field(ge=1, le=MAX_CURSOR), BeforeValidator(only_digits)] | None = Field(
        None, description="next_before of the previous page")


class UsageQuery(Query):
    since: When | None = Field(None, alias="from", description="a date (its start) or an RFC 3339 time; default: "
                               "29 days before today")
    until: When | None = Field(None, alias="to", description="a date (included) or an RFC 3339 time (excluded); "
                               "default: now. A range that ends before it starts holds nothing")
    group: Literal["day", "room"] = "day"


# -- answers ---------------------------------------------------------------------------------------------------------
class TranscriptEntry(Answer):
    """One thing said: ``origin`` is who sent a command (``ws-<n>``, ``rest``), ``source`` where a reply came from."""

    omit_unset = True
    id: int = Field(description="its place in the log (?after=)")
    kind: Literal["ask", "speak", "reply", "brain", "cancel"]
    text: str
    at: float
    at_iso: str
    origin: str | None = None
    utterance_id: str | None = None
    position: int | None = None
    part: int | None = None
    parts: int | None = None
    reply_id: str | None = None
    source: str | None = None
    count: int | None = Field(None, description="cancel: pending commands dropped")


class Transcript(Answer):
    omit_unset = True
    room_id: str = Field(pattern=ROOM_ID_PATTERN)
    entries: list[TranscriptEntry]
    next_after: int = Field(description="pass as ?after= for what comes next")
    more: bool


class TranscriptErased(Answer):
    room_id: str = Field(pattern=ROOM_ID_PATTERN)
    deleted: int


class DeliveryView(Answer):
    omit_unset = True
    id: int
    webhook_id: str
    event: str
    room_id: str | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None
    last_status: int | None
    last_error: str | None
    history: list[dict[str, Any]]
    tenant: str | None = Field(None, description="the operator's view only")


class DeliveryList(Answer):
    omit_unset = True
    deliveries: list[DeliveryView]
    next_before: int | None = Field(description="pass as ?before= for the next page; null: no more")


class UsageFigures(Answer):
    rooms: int
    open: int
    room_minutes_reserved: Number
    room_minutes_used: Number
    coins_charged: Number
    coins_refunded: Number
    coins_net: Number
    coins_saved: Number


class UsageRow(UsageFigures):
    omit_unset = True
    day: str
    room_id: str | None = None
    tenant: str | None = None
    opened_at: float | None = None
    closed_at: float | None = None
    close_reason: str | None = None


class Usage(Answer):
    omit_unset = True
    tenant: str | None = Field(description="null: the operator's view of every tenant")
    since: str = Field(alias="from")
    until: str = Field(alias="to")
    group: Literal["day", "room"]
    usage: list[UsageRow]
    totals: UsageFigures
    reconciliation: dict[str, Any] | None = Field(None, description="the operator's only: A2E's balance against "
                                                  "the ledger")


class LiveRoomView(Answer):
    id: str = Field(pattern=ROOM_ID_PATTERN)
    tenant: str
    state: str
    channel: str | None
    age_seconds: float
    clients: int | None  # null: another instance runs the room (many instances)
    queue_depth: int | None
    instance: str | None = None  # BRIDGE_INSTANCE_ID of the instance running it (many instances)
    expires_at: str | None


class LiveRooms(Answer):
    rooms: list[LiveRoomView]
    operator: bool
    now: str
