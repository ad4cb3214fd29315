"""The bridge's protocol in both directions, in one place and sans I/O.

Client frames (text in) become typed models through :func:`parse`; server frames are typed models
turned into text by :func:`encode`, the one place JSON leaves the bridge (websocket frames, SSE
``data``, REST bodies). Close codes and error codes are enums here and nowhere else. Client frames
are JSON objects with a ``type`` and a client-chosen ``id``, echoed in the ``ack`` (``pong``) or
``error`` that answers it: an ``ack``/``pong`` always carries the ``id`` (``null`` if the frame had
none), an ``error`` only when the frame had one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter, ValidationError


class CloseCode(IntEnum):
    """Websocket close codes (4000-4999 is the application range); a browser sees CloseEvent.code."""

    ROOM_CLOSED = 4000  # the room ended; a room_closed frame came first
    SLOW_CONSUMER = 4008  # the client did not read its events; its buffer overflowed
    ROOM_NOT_OPEN = 4009  # the room exists but is no longer open
    UNAUTHORIZED = 4401  # missing/bad key, bad or expired ticket
    NOT_FOUND = 4404  # no such room for this tenant
    FLOOD = 4429  # more frames than the rate limit allows
    CAP_EXCEEDED = 4429  # refused at the handshake: too many clients (reason "cap_exceeded: <cap> ...")


class ErrorCode(StrEnum):
    """Every ``code`` the bridge sends, in REST error bodies and websocket ``error`` frames."""

    BAD_REQUEST = "bad_request"
    INVALID_INPUT = "invalid_input"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"  # authenticated, but not allowed this action
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"  # any other HTTP error of the routing layer
    ROOM_NOT_OPEN = "room_not_open"
    FLUSHED = "flushed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    CAP_EXCEEDED = "cap_exceeded"
    QUEUE_FULL = "queue_full"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    NO_AVATAR_HOST = "no_avatar_host"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    INTERNAL_ERROR = "internal_error"
    OUTCOME_UNKNOWN = "outcome_unknown"  # sent to A2E, no answer: it may or may not have been carried out
    # frames the websocket cannot act on (the connection stays open)
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    INVALID_TEXT = "invalid_text"
    FRAME_TOO_LARGE = "frame_too_large"
    BINARY_NOT_SUPPORTED = "binary_not_supported"


# -- client frames ---------------------------------------------------------------------------------
# StrictInt: JSON ``true`` is not the id 1 (a bool id would come back as ``1`` and never match).
MAX_ID_CHARS = 128
FrameId = Union[Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)], StrictInt, None]
Text = Annotated[str, StringConstraints(min_length=1)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: FrameId = None


class Speak(_Frame):
    type: Literal["speak"]
    text: Text


class Ask(_Frame):
    type: Literal["ask"]
    text: Text


class Flush(_Frame):
    type: Literal["flush"]


class SetQaContext(_Frame):
    type: Literal["set_qa_context"]
    text: Text  # A2E requires it (an empty context is refused)


class Ping(_Frame):
    type: Literal["ping"]


class RtcEvent(_Frame):
    """A raw Agora channel event a browser forwards, in the wire format of :mod:`bridge.rtc.wire`:
    ``{"kind": "stream_message", "uid": 1, "data_b64": "..."}`` or ``{"kind": "audio_started"|"audio_stopped", "uid": 1}``."""

    type: Literal["rtc_event"]
    event: dict[str, Any]


ClientFrame = Union[Speak, Ask, Flush, SetQaContext, Ping, RtcEvent]
CLIENT_TYPES = ("speak", "ask", "flush", "set_qa_context", "ping", "rtc_event")
_adapter: TypeAdapter[ClientFrame] = TypeAdapter(Annotated[ClientFrame, Field(discriminator="type")])
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ProtocolError(Exception):
    """A frame the server cannot act on; answered with an ``error`` frame, the socket stays open."""

    def __init__(self, code: ErrorCode, message: str, frame_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.frame_id = code, message, frame_id


def _echoable_id(value: Any) -> str | int | None:
    """The ``id`` an answer may carry back (a valid :data:`FrameId`); an error about a bad id has none."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return None if isinstance(value, str) and (len(value) > MAX_ID_CHARS or _LONE_SURROGATE.search(value)) else value


def parse(text: str, max_bytes: int) -> ClientFrame:
    """Validate one client text frame; raises :class:`ProtocolError` (``frame_too_large``, ``bad_json``,
    ``invalid_text``, ``unknown_type`` or ``invalid_frame``)."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frames may be at most {max_bytes} bytes")
    try:
        raw = json.loads(text)
        lone = _LONE_SURROGATE.search(text) or ("\\u" in text and
                                                _LONE_SURROGATE.search(json.dumps(raw, ensure_ascii=False)))
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_JSON, "frames must be JSON text") from None
    except RecursionError:
        # The stdlib decoder gives up cleanly at the interpreter's recursion limit; it is kept over a depth-limited
        # parser (pydantic_core.from_json), which refuses the escaped lone surrogates browsers' JSON.stringify emits.
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame's JSON is nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "a frame must be a JSON object with a 'type'")
    frame_id = _echoable_id(raw.get("id"))
    if lone:
        # "\ud800" is valid JSON but not Unicode text: it could reach nobody (A2E, other clients).
        raise ProtocolError(ErrorCode.INVALID_TEXT, "frames must hold Unicode text: a lone surrogate "
                            "(\\ud800-\\udfff not in a pair) is not a character", frame_id)
    kind = raw.get("type")
    if kind not in CLIENT_TYPES:
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:36] + "…"
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {shown}; expected one of "
                            f"{', '.join(CLIENT_TYPES)}", frame_id)
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ProtocolError(ErrorCode.INVALID_FRAME, problems, frame_id) from None


# -- server frames ---------------------------------------------------------------------------------
class ServerFrame(BaseModel):
    """A frame the bridge sends; ``type`` is each subclass's first field (and first on the wire)."""

    model_config = ConfigDict(frozen=True)
    omit_if_none: ClassVar[frozenset[str]] = frozenset()  # optional fields left out rather than null

    @property
    def frame_type(self) -> str:
        return str(self.__dict__["type"])

    def wire(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value is not None or name not in self.omit_if_none}


class RoomInfo(ServerFrame):
    """First frame of a connection, and on every state change of the room."""

    type: Literal["room"] = "room"
    room: dict[str, Any]


class Ack(ServerFrame):
    """A2E accepted a speak/ask: ``position`` is its place in the room's order (one per chunk)."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["speak", "ask"]
    position: int
    positions: list[int]


class FlushAck(ServerFrame):
    """Pending commands dropped."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["flush"] = "flush"
    flushed: int


class QaContextAck(ServerFrame):
    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["set_qa_context"] = "set_qa_context"
    chars: int


class Error(ServerFrame):
    """A failed or invalid command (``id`` only if the frame had one); REST sends :func:`error_body`."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    id: FrameId = None
    details: Any = None
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"id", "details"})


class Command(ServerFrame):
    """Broadcast: a command reached A2E."""

    type: Literal["command"] = "command"
    kind: Literal["speak", "ask"]
    seq: int
    text: str


class Reply(ServerFrame):
    """Broadcast: the avatar's answer so far (replace, don't append); ``final`` at the end."""

    type: Literal["reply"] = "reply"
    text: str
    final: bool
    reply_id: str
    source: str | None = None  # where the channel event came from: browser, simulator or agora
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"source"})


class SpeakingStarted(ServerFrame):
    type: Literal["speaking_started"] = "speaking_started"
    source: str | None = None  # as in Reply
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"source"})


class SpeakingStopped(ServerFrame):
    type: Literal["speaking_stopped"] = "speaking_stopped"
    source: str | None = None  # as in Reply
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"source"})


class RoomClosed(ServerFrame):
    """Broadcast, the last frame before the server closes every socket of the room (4000)."""

    type: Literal["room_closed"] = "room_closed"
    reason: str
    room: dict[str, Any]


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"
    id: FrameId


class Ticket(ServerFrame):
    """A fresh websocket ticket for a client that connected with one (a browser has no key)."""

    type: Literal["ticket"] = "ticket"
    ws_ticket: str
    expires_in: float


SERVER_FRAMES: tuple[type[ServerFrame], ...] = (RoomInfo, Ack, FlushAck, QaContextAck, Error, Command, Reply,
                                                SpeakingStarted, SpeakingStopped, RoomClosed, Pong, Ticket)
SERVER_TYPES: tuple[str, ...] = tuple(dict.fromkeys(m.model_fields["type"].default for m in SERVER_FRAMES))


def encode(frame: ServerFrame | Mapping[str, Any]) -> str:
    """Compact JSON text of a frame (or of any JSON body); never raises on text that is not Unicode.

    A lone surrogate (``"\\ud800"``, from a client's JSON escape) cannot be sent as UTF-8: such
    output is ASCII-escaped JSON instead, which stays valid JSON meaning the same.
    """
    data = frame.wire() if isinstance(frame, ServerFrame) else frame
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if text.isascii() or not _LONE_SURROGATE.search(text):
        return text
    return json.dumps(data, separators=(",", ":"))


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A REST error body, ``{"error": {code, message, details?}}`` (the websocket sends an :class:`Error`)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}
