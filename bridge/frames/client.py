"""Client frames (text in): typed models and :func:`parse`."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter, ValidationError

from .codes import ErrorCode

# -- client frames ---------------------------------------------------------------------------------
# StrictInt: JSON ``true`` is not the id 1 (a bool id would come back as ``1`` and never match).
MAX_ID_CHARS = 128
FrameId = Union[Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)], StrictInt, None]
Text = Annotated[str, StringConstraints(min_length=1)]
StreamName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: FrameId = None


class Speak(_Frame):
    type: Literal["speak"]
    text: Text


class Ask(_Frame):
    type: Literal["ask"]
    text: Text


class SpeakDelta(_Frame):
    """A piece of a streamed text (an LLM answer, token by token): spoken sentence by sentence as it
    completes. ``stream`` names the stream on this connection; ``speak_end`` ends it."""

    type: Literal["speak_delta"]
    stream: StreamName
    text: str


class SpeakEnd(_Frame):
    """The end of a stream: what is left of it is spoken."""

    type: Literal["speak_end"]
    stream: StreamName


class Cancel(_Frame):
    """Cancel the queued utterance ``id`` (and the queued pieces of it); the ``ack`` lists what was removed."""

    type: Literal["cancel"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


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


ClientFrame = Union[Speak, Ask, Flush, SetQaContext, Ping, RtcEvent, SpeakDelta, SpeakEnd, Cancel]
CLIENT_TYPES = ("speak", "ask", "flush", "set_qa_context", "ping", "rtc_event", "speak_delta", "speak_end", "cancel")
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
