"""In-process fan-out of a room's events: every ``events()`` iterator sees every event.

The room reads its websocket in one task; iterators only consume from their own bounded buffer,
so a slow consumer never delays the others or the acks. Streams are held weakly: an iterator a
caller abandoned (``break`` out of ``async for``) is garbage-collected and stops buffering.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

from .errors import EventsOverflow

__all__ = ["EventHub", "EventStream"]

Event = dict[str, Any]


class EventStream:
    """One consumer's view of the events; subscribed from creation, so nothing published after
    ``room.events()`` returned is missed even if iteration starts later."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._items:
                return self._items.popleft()
            if self._ended:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def _push(self, event: Event) -> bool:
        if self._ended:
            return True
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(event)
        self._wakeup.set()
        return True

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended, self._error = True, error
            self._wakeup.set()


class EventHub:
    """Publishes to every live stream; ``end`` finishes them all (with an error, or cleanly)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.maxsize = maxsize
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._ended = False
        self._error: BaseException | None = None

    def subscribe(self) -> EventStream:
        stream = EventStream(self.maxsize)
        if self._ended:
            stream._end(self._error)
        else:
            self._streams.add(stream)
        return stream

    def publish(self, event: Event) -> None:
        for stream in list(self._streams):
            if not stream._push(event):
                self._streams.discard(stream)
                stream._end(EventsOverflow(f"this events() iterator fell {self.maxsize} events behind"))

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended, self._error = True, error
        for stream in list(self._streams):
            stream._end(error)
        self._streams.clear()
