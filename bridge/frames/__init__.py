"""The bridge's protocol in both directions, in one place and sans I/O.

Client frames (text in) become typed models through :func:`parse`; server frames are typed models
turned into text by :func:`encode`, the one place JSON leaves the bridge (websocket frames, SSE
``data``, REST bodies). Close codes and error codes are enums here and nowhere else. Client frames
are JSON objects with a ``type`` and a client-chosen ``id``, echoed in the ``ack`` (``pong``) or
``error`` that answers it: an ``ack``/``pong`` always carries the ``id`` (``null`` if the frame had
none), an ``error`` only when the frame had one. Split by direction: :mod:`.client` (frames in,
:func:`parse`), :mod:`.server` (frames out, :func:`encode`), :mod:`.codes` (the enums).
"""

from __future__ import annotations

from .client import (
    CLIENT_TYPES,
    Ask,
    Cancel,
    ClientFrame,
    Flush,
    FrameId,
    Ping,
    ProtocolError,
    RtcEvent,
    SetQaContext,
    Speak,
    SpeakDelta,
    SpeakEnd,
    StreamName,
    Text,
    parse,
)
from .codes import CloseCode, ErrorCode
from .server import (
    EVENT_TYPES,
    SERVER_FRAMES,
    SERVER_TYPES,
    Ack,
    CancelAck,
    Command,
    Error,
    FlushAck,
    Pong,
    QaContextAck,
    Queued,
    Reply,
    RoomClosed,
    RoomInfo,
    ServerFrame,
    SpeakingStarted,
    SpeakingStopped,
    StreamAck,
    Ticket,
    Utterance,
    encode,
    error_body,
)

__all__ = [
    "CLIENT_TYPES", "EVENT_TYPES", "SERVER_FRAMES", "SERVER_TYPES", "Ack", "Ask", "Cancel", "CancelAck", "ClientFrame", "CloseCode",
    "Command", "Error", "ErrorCode", "Flush", "FlushAck", "FrameId", "Ping", "Pong", "ProtocolError", "QaContextAck",
    "Queued", "Reply", "RoomClosed", "RoomInfo", "RtcEvent", "ServerFrame", "SetQaContext", "Speak", "SpeakDelta",
    "SpeakEnd", "SpeakingStarted", "SpeakingStopped", "StreamAck", "StreamName", "Text", "Ticket", "Utterance",
    "encode", "error_body", "parse",
]
