"""The HTTP API's requests and answers as pydantic models: the handlers validate requests and build
answers with them, and ``/openapi.json`` is generated from them (:mod:`bridge.http.openapi`), so the
document says exactly what the handlers enforce. Split by area: :mod:`.base` (shared bases, the
error body, the parsers), :mod:`.rooms`, :mod:`.commands`, :mod:`.journal` (operators' records),
:mod:`.ops`, :mod:`.kiosk`. Limits that come from settings are filled in per app (:func:`command_body`,
:func:`create_room_body`).
"""

from __future__ import annotations

from .base import (
    CURSOR_PATTERN,
    PATH_PATTERNS,
    ROOM_ID_PATTERN,
    UTTERANCE_ID_PATTERN,
    Answer,
    Digits,
    ErrorBody,
    ErrorDetail,
    Integer,
    Query,
    Request_,
    answer_body,
    parse_body,
    parse_query,
    problems,
)
from .commands import CancelResult, CommandAccepted, FlushResult, StreamAccepted, UtteranceView, command_body
from .journal import (
    TRANSCRIPT_MAX,
    DeliveriesQuery,
    DeliveryList,
    LiveRooms,
    Transcript,
    TranscriptErased,
    TranscriptQuery,
    Usage,
    UsageQuery,
    seconds_of,
)
from .kiosk import KioskProfileView, KioskRoom, WatchdogAnswer, WatchdogReport
from .ops import A2EAnswer, AvatarList, Health, OperationInfo, OperationList, Ready, ReadyChecks
from .rooms import (
    CreateRoom,
    EventsQuery,
    ListRoomsQuery,
    NewRoom,
    QaContextBody,
    QaContextView,
    RoomList,
    RoomView,
    TicketRequest,
    TicketView,
    create_room_body,
)

__all__ = [
    "KioskProfileView", "KioskRoom", "WatchdogAnswer", "WatchdogReport",
    "CURSOR_PATTERN", "PATH_PATTERNS", "ROOM_ID_PATTERN", "TRANSCRIPT_MAX", "UTTERANCE_ID_PATTERN", "A2EAnswer",
    "Answer", "AvatarList", "CancelResult", "CommandAccepted", "CreateRoom", "DeliveriesQuery", "DeliveryList",
    "Digits", "ErrorBody", "ErrorDetail", "EventsQuery", "FlushResult", "Health", "Integer", "ListRoomsQuery",
    "LiveRooms", "NewRoom", "OperationInfo", "OperationList", "QaContextBody", "QaContextView", "Query", "Ready",
    "ReadyChecks", "Request_", "RoomList", "RoomView", "StreamAccepted", "TicketRequest", "TicketView", "Transcript",
    "TranscriptErased", "TranscriptQuery", "Usage", "UsageQuery", "UtteranceView", "answer_body", "command_body",
    "create_room_body", "parse_body", "parse_query", "problems", "seconds_of",
]
