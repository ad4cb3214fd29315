"""Turn raw channel events into room events (sans-I/O).

A2E's ``ask`` returns ``{}``; the answer only exists as Agora stream-messages
``{"type": "QA", "message": <chunk>, "pos": "start"|"middle"|"end"}``. The data
stream is unreliable and unordered, and the same channel may be reported by
several forwarders (the server bot and/or browsers), so the reassembler must
survive lost, duplicated and garbage messages without ever raising.

Duplicate policy (the trade-off): a message is identified by
``(uid, data, k)`` where ``k`` counts how often *that source* has delivered
those exact bytes for that uid recently. The first source to deliver a key wins;
another source delivering the same key is a duplicate. Audio start/stop events
are keyed the same way, so several forwarders of one channel give the same
output as one. Consequences:

* the avatar may legitimately say the same chunk twice ("ha", "ha"): both are
  kept, because one source delivers them with k=1 and k=2;
* a single source that delivers the same bytes twice is *not* deduplicated
  (we cannot tell it from a legitimate repeat); Agora's transport does not
  normally duplicate, forwarders do;
* memory is bounded by ``dedupe_window`` messages: a forwarder lagging more
  than that behind the first one is no longer recognised and its messages are
  processed again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from .events import (
    AudioStarted,
    AudioStopped,
    ChannelEvent,
    Reply,
    RoomEvent,
    SpeakingStarted,
    SpeakingStopped,
    StreamMessage,
)

__all__ = ["Reassembler"]

DEFAULT_IDLE_TIMEOUT = 8.0
DEFAULT_DEDUPE_WINDOW = 512

_STAT_KEYS = (
    "messages",
    "qa_messages",
    "duplicates",
    "ignored_not_utf8",
    "ignored_not_json",
    "ignored_not_dict",
    "ignored_not_qa",
    "ignored_bad_message",
    "unknown_pos",
    "implicit_start",
    "implicit_end",
    "expired",
    "empty_final_dropped",
)


_Key = tuple[str, int, bytes]  # (kind, uid, payload bytes)


def _newest(occ: OrderedDict[_Key, tuple[int, int]]) -> int:
    return next(reversed(occ.values()))[1]


@dataclass(slots=True)
class _OpenReply:
    reply_id: str
    parts: list[str] = field(default_factory=list)
    last_seen: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Reassembler:
    """Pure state machine: ``feed`` channel events, get room events back.

    Args:
        now: clock used only to stamp activity for :meth:`expire`.
        idle_timeout: seconds of silence after which :meth:`expire` finalises an
            open reply whose ``end`` was lost.
        dedupe_window: how many recent QA messages duplicate detection remembers.
        reply_id_prefix: prefix of generated reply ids (random if omitted).
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
        reply_id_prefix: str | None = None,
    ) -> None:
        assert dedupe_window > 0, "dedupe_window must be positive"
        self._now = now
        self.idle_timeout = idle_timeout
        self._window = dedupe_window
        self._prefix = reply_id_prefix if reply_id_prefix is not None else uuid.uuid4().hex[:8]
        self._counter = 0
        self._open: dict[int, _OpenReply] = {}
        self._speaking: set[int] = set()
        self._seq = 0
        # (key, k) -> seq at which it was first accepted
        self._seen: OrderedDict[tuple[_Key, int], int] = OrderedDict()
        # source -> key -> (k, seq of the last delivery by that source)
        self._occurrences: dict[Hashable, OrderedDict[_Key, tuple[int, int]]] = {}
        self.stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)

    # --- public API ---------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """True between a SpeakingStarted and the next SpeakingStopped."""
        return bool(self._speaking)

    @property
    def open_replies(self) -> int:
        return len(self._open)

    def feed(self, event: ChannelEvent, source: Hashable | None = None) -> list[RoomEvent]:
        """Process one channel event reported by forwarder ``source``.

        Never raises on bad payloads; they are counted in :attr:`stats`.
        """
        if isinstance(event, StreamMessage):
            return self._on_stream_message(event, source)
        if isinstance(event, AudioStarted | AudioStopped):
            kind = "audio+" if isinstance(event, AudioStarted) else "audio-"
            if self._is_duplicate((kind, event.uid, b""), source):
                self.stats["duplicates"] += 1
                return []
        if isinstance(event, AudioStarted):
            was = bool(self._speaking)
            self._speaking.add(event.uid)
            return [] if was else [SpeakingStarted()]
        if isinstance(event, AudioStopped):
            if event.uid not in self._speaking:
                return []
            self._speaking.discard(event.uid)
            return [] if self._speaking else [SpeakingStopped()]
        return []

    def expire(self, now: float | None = None) -> list[RoomEvent]:
        """Finalise replies silent for ``idle_timeout`` seconds (lost ``end``)."""
        t = self._now() if now is None else now
        out: list[RoomEvent] = []
        for uid in [u for u, r in self._open.items() if t - r.last_seen >= self.idle_timeout]:
            self.stats["expired"] += 1
            out.extend(self._finish(uid))
        return out

    def next_deadline(self) -> float | None:
        """Clock value at which :meth:`expire` would next finalise something."""
        if not self._open:
            return None
        return min(r.last_seen for r in self._open.values()) + self.idle_timeout

    def flush(self) -> list[RoomEvent]:
        """Finalise every open reply and end speaking (room is closing)."""
        out: list[RoomEvent] = []
        for uid in list(self._open):
            out.extend(self._finish(uid))
        if self._speaking:
            self._speaking.clear()
            out.append(SpeakingStopped())
        return out

    # --- internals ----------------------------------------------------------

    def _on_stream_message(self, msg: StreamMessage, source: Hashable | None) -> list[RoomEvent]:
        self.stats["messages"] += 1
        payload = self._decode(msg.data)
        if payload is None:
            return []
        message = payload.get("message", "")
        if message is None:
            message = ""
        if not isinstance(message, str):
            self.stats["ignored_bad_message"] += 1
            return []
        if self._is_duplicate(("qa", msg.uid, bytes(msg.data)), source):
            self.stats["duplicates"] += 1
            return []
        self.stats["qa_messages"] += 1
        pos = payload.get("pos")
        if pos not in (None, "start", "middle", "end"):
            self.stats["unknown_pos"] += 1
            pos = "middle"
        return self._apply(msg.uid, message, pos or "middle")

    def _decode(self, data: bytes) -> dict[str, Any] | None:
        try:
            text = bytes(data).decode("utf-8")
        except (UnicodeDecodeError, TypeError):
            self.stats["ignored_not_utf8"] += 1
            return None
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            self.stats["ignored_not_json"] += 1
            return None
        if not isinstance(payload, dict):
            self.stats["ignored_not_dict"] += 1
            return None
        if payload.get("type") != "QA":
            self.stats["ignored_not_qa"] += 1
            return None
        return payload

    def _is_duplicate(self, key: _Key, source: Hashable | None) -> bool:
        """Record one delivery of ``key`` by ``source``; True if another source had it."""
        self._seq += 1
        seq, horizon = self._seq, self._seq - self._window
        while self._seen and next(iter(self._seen.values())) <= horizon:
            self._seen.popitem(last=False)
        if seq % self._window == 0:  # forget forwarders that went silent
            for src in [s for s, o in self._occurrences.items() if not o or _newest(o) <= horizon]:
                del self._occurrences[src]
        occ = self._occurrences.setdefault(source, OrderedDict())
        while occ and next(iter(occ.values()))[1] <= horizon:
            occ.popitem(last=False)
        prev = occ.pop(key, None)
        k = prev[0] + 1 if prev is not None else 1
        occ[key] = (k, seq)
        if (key, k) in self._seen:
            return True
        self._seen[(key, k)] = seq
        return False

    def _apply(self, uid: int, message: str, pos: str) -> list[RoomEvent]:
        out: list[RoomEvent] = []
        reply = self._open.get(uid)
        if pos == "start":
            if reply is not None:
                self.stats["implicit_end"] += 1
                out.extend(self._finish(uid))
            reply = self._open_reply(uid)
        elif reply is None:
            self.stats["implicit_start"] += 1
            reply = self._open_reply(uid)
        reply.last_seen = self._now()
        if message:
            reply.parts.append(message)
        if pos == "end":
            out.extend(self._finish(uid))
        elif message:
            out.append(Reply(reply.text, False, reply.reply_id))
        return out

    def _open_reply(self, uid: int) -> _OpenReply:
        self._counter += 1
        reply = _OpenReply(f"{self._prefix}-{self._counter}")
        self._open[uid] = reply
        return reply

    def _finish(self, uid: int) -> list[RoomEvent]:
        reply = self._open.pop(uid)
        if not reply.parts:
            self.stats["empty_final_dropped"] += 1
            return []
        return [Reply(reply.text, True, reply.reply_id)]
