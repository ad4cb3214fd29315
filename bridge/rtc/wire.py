"""The channel-event wire format: one JSON object per raw channel event.

Spoken by the simulator's feed (``/_sim/rtc/{channel}``), read by its observer, and sent by kiosks
that forward what their Agora Web SDK receives (``rtc_event`` frames)::

    {"kind": "stream_message", "uid": 1, "stream_id": 0, "data_b64": "..."}
    {"kind": "audio_started" | "audio_stopped", "uid": 1}
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .events import AudioStarted, AudioStopped, ChannelEvent, StreamMessage

__all__ = ["event_to_frame", "frame_to_event"]


def event_to_frame(event: ChannelEvent) -> dict[str, Any]:
    """Wire dict of a channel event."""
    if isinstance(event, StreamMessage):
        return {"kind": "stream_message", "uid": event.uid, "stream_id": event.stream_id,
                "data_b64": base64.b64encode(event.data).decode()}
    if isinstance(event, AudioStarted):
        return {"kind": "audio_started", "uid": event.uid}
    return {"kind": "audio_stopped", "uid": event.uid}


def frame_to_event(frame: Any) -> ChannelEvent | None:
    """Parse one wire dict; ``None`` for anything malformed or unknown."""
    if not isinstance(frame, dict) or not isinstance(frame.get("uid"), int):
        return None
    kind, uid = frame.get("kind"), frame["uid"]
    if kind == "audio_started":
        return AudioStarted(uid)
    if kind == "audio_stopped":
        return AudioStopped(uid)
    if kind == "stream_message" and isinstance(frame.get("data_b64"), str):
        try:
            data = base64.b64decode(frame["data_b64"], validate=True)
        except (binascii.Error, ValueError):
            return None
        stream_id = frame.get("stream_id", 0)
        return StreamMessage(uid, data, stream_id if isinstance(stream_id, int) else 0)
    return None
