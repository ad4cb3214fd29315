"""Server frames (text out): typed models and :func:`encode`, the one place JSON leaves the bridge."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .client import _LONE_SURROGATE, FrameId
from .codes import ErrorCode


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
    """A2E accepted a speak/ask: ``position`` is its place in the room's order (one per chunk);
    ``utterance`` is the speak/ask's id and ``utterances`` its pieces' (one per position)."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["speak", "ask"]
    position: int
    positions: list[int]
    utterance: str | None = None
    utterances: list[str] | None = None
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"utterance", "utterances"})


class StreamAck(ServerFrame):
    """``speak_delta``: taken into the stream (``utterance`` is the stream's id). ``speak_end``: A2E
    accepted every piece of the stream (``positions``, ``utterances``: one per piece)."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["speak_delta", "speak_end"]
    stream: str
    utterance: str
    positions: list[int] | None = None
    utterances: list[str] | None = None
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"positions", "utterances"})


class FlushAck(ServerFrame):
    """Pending commands dropped: ``flushed`` counts the commands, ``dropped`` lists every utterance
    (speaks, asks, streams, brain answers and their pieces) the flush cancelled."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["flush"] = "flush"
    flushed: int
    dropped: list[str] = []


class CancelAck(ServerFrame):
    """``cancel``: ``cancelled`` lists every utterance it removed (the one named and its queued pieces)."""

    type: Literal["ack"] = "ack"
    id: FrameId
    kind: Literal["cancel"] = "cancel"
    cancelled: list[str]


class Queued(ServerFrame):
    """To the client that sent a speak/ask, at once: its utterance ids, so that it can cancel them
    before A2E has them (the ``ack`` follows once A2E accepted them)."""

    type: Literal["queued"] = "queued"
    id: FrameId
    kind: Literal["speak", "ask"]
    utterance: str
    utterances: list[str]


class Utterance(ServerFrame):
    """Broadcast: an utterance changed state (``queued`` → ``sent`` → ``speaking`` → ``done``, or
    ``cancelled`` / ``failed``). A speak, ask or stream has ``parent`` null; the pieces it was cut
    into name it. ``estimated``: ``speaking``/``done`` come from the text's length, not from the
    avatar's channel. ``text`` comes with ``queued``; ``reason`` with ``cancelled``/``failed``."""

    type: Literal["utterance"] = "utterance"
    id: str
    seq: int
    kind: Literal["speak", "ask", "stream"]
    state: Literal["queued", "sent", "speaking", "done", "cancelled", "failed"]
    parent: str | None = None
    position: int | None = None
    text: str | None = None
    estimated: bool | None = None
    reason: str | None = None
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"position", "text", "estimated", "reason"})


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
    utterance: str | None = None  # broadcast errors: the utterance (a brain's answer) that failed
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"id", "details", "utterance"})


class Command(ServerFrame):
    """Broadcast: a command reached A2E."""

    type: Literal["command"] = "command"
    kind: Literal["speak", "ask"]
    seq: int
    text: str
    utterance: str | None = None  # the piece's utterance id
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"utterance"})


class Reply(ServerFrame):
    """Broadcast: the avatar's answer so far (replace, don't append); ``final`` at the end."""

    type: Literal["reply"] = "reply"
    text: str
    final: bool
    reply_id: str
    source: str | None = None  # where the channel event came from: browser, simulator or agora; or brain
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


SERVER_FRAMES: tuple[type[ServerFrame], ...] = (RoomInfo, Ack, StreamAck, FlushAck, CancelAck, QaContextAck, Error,
                                                Command, Reply, SpeakingStarted, SpeakingStopped, RoomClosed, Pong,
                                                Ticket, Queued, Utterance)
SERVER_TYPES: tuple[str, ...] = tuple(dict.fromkeys(m.model_fields["type"].default for m in SERVER_FRAMES))
EVENT_TYPES: tuple[str, ...] = ("room", "command", "utterance", "reply", "speaking_started", "speaking_stopped",
                               "error", "room_closed")
"""The frames a room broadcasts (its events), which a client's ``?events=`` filter names; ``room`` and
``room_closed`` always reach every client. ``error`` here is a broadcast one (a brain's failure): a
connection's answers (``queued``, ``ack``, ``error`` with an id, ``pong``, ``ticket``) are not events."""


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
