"""Raw channel events and the room events derived from them.

Two layers on purpose: ``ChannelEvent`` is what any room observer (Agora SDK,
simulator feed, forwarding browser) can report without understanding A2E;
``RoomEvent`` is what clients are sent after :mod:`bridge.rtc.reassembler` has
made sense of it. All are frozen so they can cross threads and be deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "AudioStarted",
    "AudioStopped",
    "ChannelEvent",
    "Reply",
    "RoomEvent",
    "SpeakingStarted",
    "SpeakingStopped",
    "StreamMessage",
]


# --- raw channel events -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """An Agora data-stream message, still undecoded bytes (A2E sends UTF-8 JSON)."""

    uid: int
    data: bytes
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class AudioStarted:
    """Remote user ``uid`` started producing audible audio."""

    uid: int


@dataclass(frozen=True, slots=True)
class AudioStopped:
    """Remote user ``uid`` went quiet (or left)."""

    uid: int


ChannelEvent: TypeAlias = StreamMessage | AudioStarted | AudioStopped


# --- room events (wire) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The avatar's answer so far.

    ``text`` is the accumulated text of the reply, not the last chunk, so a
    client can replace what it shows; ``final`` is sent exactly once per
    ``reply_id``.
    """

    text: str
    final: bool
    reply_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "reply", "text": self.text, "final": self.final, "reply_id": self.reply_id}


@dataclass(frozen=True, slots=True)
class SpeakingStarted:
    """The avatar started speaking."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "speaking_started"}


@dataclass(frozen=True, slots=True)
class SpeakingStopped:
    """The avatar stopped speaking."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "speaking_stopped"}


RoomEvent: TypeAlias = Reply | SpeakingStarted | SpeakingStopped
RoomEventType = Literal["reply", "speaking_started", "speaking_stopped"]
