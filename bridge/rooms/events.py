"""A room's event fan-out: every subscriber (websocket client, SSE stream) gets every event.

A published frame is encoded once (:func:`bridge.frames.encode`); subscribers get the text, which
the websocket sends as it is and SSE uses as ``data`` (with the frame's type as the event name).

Each subscriber has a bounded queue; one that falls behind is cut off (``overflowed``) instead of
slowing the room or the others. A bounded history with increasing ids lets SSE clients resume
with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from bridge.frames import ServerFrame, encode

log = logging.getLogger("bridge.events")


class Event(NamedTuple):
    """One published frame: its id in the room's history, its type and its encoded text."""

    id: int
    type: str
    data: str


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event | None]
    overflowed: bool = False
    closed: bool = False
    _hub: RoomEvents | None = field(default=None, repr=False)

    async def get(self) -> Event | None:
        """The next event, or None once the room ended or this subscriber was cut off."""
        if self.closed:
            try:
                return self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        return await self.queue.get()

    def close(self) -> None:
        if self._hub is not None:
            self._hub._subscribers.discard(self)
        self.closed = True

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (item := await self.get()) is not None:
            yield item


class RoomEvents:
    """Publish/subscribe for one room."""

    def __init__(self, history: int = 256, subscriber_buffer: int = 256) -> None:
        self._ids = itertools.count(1)
        self.history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self.subscriber_buffer = subscriber_buffer
        self.ended = False
        # called with every published frame, synchronously (the transcript, webhooks): never cut off
        self.listeners: list[Callable[[ServerFrame], None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, frame: ServerFrame) -> int:
        event = Event(next(self._ids), frame.frame_type, encode(frame))
        self.history.append(event)
        for listener in self.listeners:
            try:
                listener(frame)
            except Exception:  # a recorder's bug must not cost the room its events
                log.exception("room event listener failed")
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._cut(sub)
        return event.id

    def subscribe(self, after: int | None = None) -> Subscription:
        """A new subscriber; with ``after``, history newer than that id is queued first."""
        backlog = [event for event in self.history if after is not None and event.id > after]
        sub = Subscription(asyncio.Queue(self.subscriber_buffer + len(backlog)), _hub=self)
        for item in backlog:
            sub.queue.put_nowait(item)
        if self.ended:
            sub.closed = True
            sub.queue.put_nowait(None)
        else:
            self._subscribers.add(sub)
        return sub

    def end(self) -> None:
        """No more events: every subscriber drains what it has, then sees the end."""
        self.ended = True
        for sub in list(self._subscribers):
            self._cut(sub)

    def _cut(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.closed = True
        try:
            sub.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # a full queue ends anyway: get() returns None once it is drained
