"""The websocket protocol's one schema, sans I/O: text in → :class:`ClientFrame`, dict → text out.

Client frames are JSON objects with a ``type`` and a client-chosen ``id`` (echoed in the ``ack``
or ``error`` that answers it). The endpoint loop (``endpoint.py``) only awaits receive/send.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "CLOSE_FLOOD",
    "CLOSE_NOT_FOUND",
    "CLOSE_ROOM_CLOSED",
    "CLOSE_ROOM_NOT_OPEN",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_UNAUTHORIZED",
    "ClientFrame",
    "ProtocolError",
    "encode",
    "error_frame",
    "parse",
]

# Close codes (4000-4999 is the application range). A browser sees these in CloseEvent.code.
CLOSE_ROOM_CLOSED = 4000  # the room ended; a room_closed frame came first
CLOSE_SLOW_CONSUMER = 4008  # the client did not read its events; its buffer overflowed
CLOSE_ROOM_NOT_OPEN = 4009  # the room exists but is no longer open
CLOSE_UNAUTHORIZED = 4401  # missing/bad key, bad or expired ticket
CLOSE_NOT_FOUND = 4404  # no such room for this tenant
CLOSE_FLOOD = 4429  # more frames than the rate limit allows

# StrictInt: JSON ``true`` is not the id 1 (a bool id would come back as ``1`` and never match).
FrameId = Union[Annotated[str, StringConstraints(max_length=128)], StrictInt, None]
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
    text: str


class Ping(_Frame):
    type: Literal["ping"]


class RtcEvent(_Frame):
    """A raw Agora channel event a browser forwards (it receives stream-messages via the Web SDK).

    ``event`` has the simulator feed's shape: ``{"kind": "stream_message", "uid": 1, "data_b64":
    "..."}`` or ``{"kind": "audio_started"|"audio_stopped", "uid": 1}``.
    """

    type: Literal["rtc_event"]
    event: dict[str, Any]


ClientFrame = Annotated[Union[Speak, Ask, Flush, SetQaContext, Ping, RtcEvent], Field(discriminator="type")]
CLIENT_TYPES = ("speak", "ask", "flush", "set_qa_context", "ping", "rtc_event")
_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)


class ProtocolError(Exception):
    """A frame the server cannot act on; answered with an ``error`` frame, the socket stays open."""

    def __init__(self, code: str, message: str, frame_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


def parse(text: str, max_bytes: int) -> Any:
    """Validate one client text frame.

    Raises:
        ProtocolError: ``frame_too_large``, ``bad_json``, ``unknown_type`` or ``invalid_frame``.
    """
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError("frame_too_large", f"frames may be at most {max_bytes} bytes")
    try:
        raw = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_json", "frames must be JSON text") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_json", "a frame must be a JSON object with a 'type'")
    frame_id = raw.get("id")
    if not isinstance(frame_id, (str, int)) or isinstance(frame_id, bool):
        frame_id = None
    kind = raw.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown frame type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}",
                            frame_id)
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ProtocolError("invalid_frame", problems, frame_id) from None


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error_frame(code: str, message: str, frame_id: Any = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if frame_id is not None:
        frame["id"] = frame_id
    frame.update(extra)
    return frame
