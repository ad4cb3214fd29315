"""The room-observer seam: who watches an A2E channel and reports raw events.

Implementations (``agora``: native SDK, ``simulator``: the simulator's feed
over a websocket, ``browser``: events forwarded by a client) differ only in how
they get :class:`~bridge.rtc.events.ChannelEvent` values; everything above
(the reassembler, rooms) only sees this module.

Errors::

    ObserverError
    ├── ObserverUnavailable    the backend cannot run here (e.g. no Agora SDK)
    └── JoinError(reason)      joining the channel failed or timed out
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

from .events import ChannelEvent

__all__ = [
    "JoinError",
    "ObserveTarget",
    "ObserverError",
    "ObserverUnavailable",
    "QueueSubscription",
    "RoomObserver",
    "Subscription",
]


class ObserverError(Exception):
    """Base of the room-observer errors."""


class ObserverUnavailable(ObserverError):
    """This observer backend cannot work in this process."""


class JoinError(ObserverError):
    """Could not join the channel; ``reason`` is backend-specific (Agora: 8 = invalid token)."""

    def __init__(self, message: str, reason: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ObserveTarget:
    """What to observe and as whom.

    ``uid`` is the observer's own uid in the channel; ``avatar_uid``, when
    known, restricts events to the avatar (``None``: report every uid).
    """

    app_id: str
    channel: str
    token: str | None
    uid: int
    avatar_uid: int | None = None


@runtime_checkable
class Subscription(Protocol):
    """Async iterator of channel events; ends when the room goes away."""

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> ChannelEvent: ...

    async def aclose(self) -> None:
        """Leave the channel and release resources; idempotent."""
        ...


@runtime_checkable
class RoomObserver(Protocol):
    """Factory of subscriptions; ``name`` is for logs ("agora", "simulator", "browser")."""

    name: str

    async def observe(self, target: ObserveTarget) -> Subscription:
        """Join ``target`` and return once events can flow.

        Raises:
            ObserverUnavailable: the backend cannot run here.
            JoinError: the channel could not be joined.
        """
        ...

    async def aclose(self) -> None:
        """Close every subscription and release shared resources; idempotent."""
        ...


class QueueSubscription:
    """A Subscription fed from the event loop through a bounded queue.

    Producers call :meth:`_put` and :meth:`_end` on the loop thread only (hop
    from other threads with ``loop.call_soon_threadsafe``). When full, the
    oldest event is dropped and counted in :attr:`dropped`, so a stalled
    consumer never makes memory grow. Subclasses implement :meth:`_release`.
    """

    def __init__(self, maxsize: int = 256) -> None:
        assert maxsize > 0, "maxsize must be positive"
        self._items: collections.deque[ChannelEvent] = collections.deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._ended = False
        self._closing: asyncio.Future[None] | None = None
        self.dropped = 0
        self.end_reason: str | None = None

    # --- producer side (loop thread) ----------------------------------------

    def _put(self, event: ChannelEvent) -> None:
        if self._ended:
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        self._items.append(event)
        self._wakeup.set()

    def _end(self, reason: str) -> None:
        """No more events; consumers drain what is queued, then stop."""
        if not self._ended:
            self._ended = True
            self.end_reason = reason
        self._wakeup.set()

    @property
    def ended(self) -> bool:
        return self._ended

    # --- consumer side --------------------------------------------------------

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __anext__(self) -> ChannelEvent:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    async def aclose(self) -> None:
        """Release once; concurrent and later calls wait for the same release."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_once())
        await asyncio.shield(self._closing)

    async def _close_once(self) -> None:
        try:
            await self._release()
        finally:
            self._items.clear()
            self._end(self.end_reason or "closed")

    async def _release(self) -> None:
        """Backend teardown (leave the channel); called exactly once."""

    async def __aenter__(self) -> QueueSubscription:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
