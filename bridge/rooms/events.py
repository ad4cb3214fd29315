"""A room's event fan-out: every subscriber (websocket client, SSE stream) gets every event.

A published frame is encoded once (:func:`bridge.frames.encode`); subscribers get the same text,
which the websocket sends as it is and SSE uses as ``data`` (with the frame's type as the event name).

Subscribers are :class:`Sink` objects, handed each event synchronously: a websocket connection
writes it to its socket right there (no task, no queue per subscriber, see ``bridge.http.ws``), an
SSE stream puts it in its bounded :class:`Subscription` queue. Either cuts itself off when its own
buffer is full, so a subscriber that falls behind never slows the room or the others.

Delivery is not done inside :meth:`RoomEvents.publish`: it is scheduled on the event loop and done
in slices of :data:`SLICE` subscribers: the first on the next loop callback, each further one as a
timer due at once, which asyncio runs after the callbacks already scheduled and the I/O that is
ready. So a publisher never waits for the audience, what was already scheduled when the event was
published (the sender's ack of the command that caused it) goes out first, and a room with
thousands of subscribers holds the loop for one slice at a time, never for its whole audience:
between two slices, what became ready meanwhile runs first (an A2E answer on its way to a sender's
ack, another room's speak), at a turn of the loop per slice. Events reach each subscriber in the
order they were published; a subscriber gets the events published after it subscribed.

A bounded history with increasing ids lets SSE clients resume with ``Last-Event-ID``.

A subscriber may take only some types of event (``?events=`` on the websocket and SSE routes, see
:func:`event_filter`): the hub checks the type against the sink's ``wanted`` as it serves the
audience, and a sink without a filter (``None``) costs no more than before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import NamedTuple, Protocol

from bridge.errors import ValidationFailed
from bridge.frames import EVENT_TYPES, ServerFrame, encode

log = logging.getLogger("bridge.events")

SLICE = 16
"""Subscribers served per slice: at ~15 µs a websocket write, a quarter of a millisecond, the most any
other work waits for a room's audience per step it takes. An A2E answer takes several steps (loop
turns) to become a sender's ack: with 1,000 listeners, slices of 256 held that ack 5× its time alone,
of 64 2.9×, of 32 2.1×, of 16 1.5×, at the same CPU per round (``bench/scale.py fanout``)."""


ALWAYS = frozenset({"room", "room_closed"})
"""Events every subscriber gets, whatever its filter: what the room is, and that it ended."""


def event_filter(values: Iterable[str]) -> frozenset[str] | None:
    """The event types a subscriber asked for (``?events=command,reply``, the parameter given once or
    more), with :data:`ALWAYS`; ``None`` when it did not ask (every event). ``events=`` (empty) asks
    for no more than :data:`ALWAYS`. An unknown name is refused (422 ``invalid_input``), never ignored:
    a typo would otherwise silently mean a client that never hears of what it wanted."""
    given = list(values)
    if not given:
        return None
    names = {name.strip() for value in given for name in value.split(",")} - {""}
    unknown = sorted(names.difference(EVENT_TYPES))
    if unknown:
        shown = [name[:40] for name in unknown[:8]]  # a client's text, echoed: bounded
        msg = f"unknown event type: {', '.join(shown)} (the events are {', '.join(EVENT_TYPES)})"
        raise ValidationFailed(f"bad query parameter: events: {msg}",
                               details=[{"loc": ["query", "events"], "msg": msg, "unknown": shown}])
    return ALWAYS | names


class Event(NamedTuple):
    """One published frame: its id in the room's history, its type and its encoded text."""

    id: int
    type: str
    data: str


class Sink(Protocol):
    """A subscriber as the hub sees it. Both methods are called on the loop and must not block.
    ``wanted``: the event types it takes (see :func:`event_filter`), None for all; the hub hands it
    no others (nor counts them against a slice), so :meth:`deliver` need not check."""

    wanted: frozenset[str] | None

    def deliver(self, event: Event) -> None:
        """Take one event (a sink whose buffer is full cuts itself off, never waits)."""

    def ended(self) -> None:
        """The room's events are over: everything published was delivered before this."""


class Subscription:
    """A pull subscriber (SSE): a bounded queue of events, read with :meth:`get` or ``async for``."""

    def __init__(self, hub: RoomEvents | None, size: int, wanted: frozenset[str] | None = None) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.wanted = wanted  # the event types it takes (see event_filter); None: all
        self.overflowed = False
        self.closed = False
        self._hub = hub

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
            self._hub.detach(self)
        self.closed = True

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (item := await self.get()) is not None:
            yield item

    def deliver(self, event: Event) -> None:  # only the types it wanted: the hub filters
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # fell behind: cut off, the others go on
            self.overflowed = True
            self.close()
            self._finish()

    def ended(self) -> None:
        self.closed = True
        self._finish()

    def _finish(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # a full queue ends anyway: get() returns None once it is drained


_END = object()  # in the delivery backlog: the room's events are over


class RoomEvents:
    """Publish/subscribe for one room."""

    def __init__(self, history: int = 256, subscriber_buffer: int = 256, *, first_id: int = 1) -> None:
        # ``first_id``: a room that changes owner (bridge/cluster) goes on from its last id, so that
        # ``Last-Event-ID`` resumes across instances
        self._ids = itertools.count(first_id)
        self.history: deque[Event] = deque(maxlen=history)
        # insertion-ordered set; a sink is told of the events published while it is in here
        self._subscribers: dict[Sink, None] = {}
        self.subscriber_buffer = subscriber_buffer
        self.ended = False
        # called with every published frame, synchronously (the transcript, webhooks): never cut off
        self.listeners: list[Callable[[ServerFrame], None]] = []
        # given every published event as encoded (bridge/cluster: to the room's other instances)
        self.tap: Callable[[Event], None] | None = None
        # what is still to be delivered: an event (or the end) and the sinks it goes to, from `done` on
        self._backlog: deque[tuple[Event | object, list[Sink]]] = deque()
        self._done = 0
        self._scheduled = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribers(self) -> list[Sink]:
        return list(self._subscribers)

    def publish(self, frame: ServerFrame) -> int:
        event = Event(next(self._ids), frame.frame_type, encode(frame))
        self.history.append(event)
        for listener in self.listeners:
            try:
                listener(frame)
            except Exception:  # a recorder's bug must not cost the room its events
                log.exception("room event listener failed")
        if self.tap is not None:
            self.tap(event)
        self._enqueue(event)
        return event.id

    def replay(self, event: Event) -> None:
        """An event another instance published (a mirror of a room owned there): kept and delivered as
        it is, with its id; one seen already (by id) is dropped."""
        if self.history and event.id <= self.history[-1].id:
            return
        self.history.append(event)
        self._enqueue(event)

    def attach(self, sink: Sink) -> None:
        """Deliver the events published from now on to ``sink`` (until :meth:`detach`)."""
        if self.ended:
            sink.ended()
        else:
            self._subscribers[sink] = None

    def detach(self, sink: Sink) -> None:
        """No more events for ``sink``, not even those published but not yet delivered."""
        self._subscribers.pop(sink, None)

    def subscribe(self, after: int | None = None, wanted: frozenset[str] | None = None) -> Subscription:
        """A new pull subscriber, of the event types ``wanted`` (None: all); with ``after``, history
        newer than that id is queued first."""
        backlog = [event for event in self.history if after is not None and event.id > after
                   and (wanted is None or event.type in wanted)]
        sub = Subscription(self, self.subscriber_buffer + len(backlog), wanted)
        for item in backlog:
            sub.queue.put_nowait(item)
        self.attach(sub)
        return sub

    def end(self) -> None:
        """No more events: every subscriber gets what was published, then hears of the end."""
        if not self.ended:
            self.ended = True
            self._enqueue(_END)

    # -- delivery -------------------------------------------------------------------------------
    def _enqueue(self, item: Event | object) -> None:
        if not self._subscribers:
            return
        self._backlog.append((item, list(self._subscribers)))
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): deliver in place
            while self._backlog:
                self._deliver_slice()
            return
        self._scheduled = True
        loop.call_soon(self._step, loop)  # a room of a few clients is served in this one slice

    def _step(self, loop: asyncio.AbstractEventLoop) -> None:
        self._deliver_slice()
        if self._backlog:
            # a timer due now, not call_soon: it runs after what was scheduled meanwhile and after the
            # I/O the loop finds ready, so the audience yields to everything else, a slice at a time
            loop.call_at(loop.time(), self._step, loop)
        else:
            self._scheduled = False

    def _deliver_slice(self) -> None:
        """Up to SLICE deliveries; a sink that left, or whose filter leaves the event out, costs none
        (an audience filtered to ``command`` is not made to wait a turn per slice of sinks that skip
        the room's other events)."""
        budget = SLICE
        while self._backlog and budget > 0:
            item, sinks = self._backlog[0]
            kind = item.type if isinstance(item, Event) else None
            stop = self._done
            while stop < len(sinks) and budget > 0:
                sink = sinks[stop]
                stop += 1
                if sink not in self._subscribers:
                    continue  # left (or was cut off) after the event was published
                if kind is not None and sink.wanted is not None and kind not in sink.wanted:
                    continue
                budget -= 1
                try:
                    if item is _END:
                        self._subscribers.pop(sink, None)
                        sink.ended()
                    else:
                        sink.deliver(item)  # type: ignore[arg-type]
                except Exception:  # one subscriber's bug must not cost the others their events
                    log.exception("room event subscriber failed")
                    self._subscribers.pop(sink, None)
            if stop < len(sinks):
                self._done = stop
            else:
                self._backlog.popleft()
                self._done = 0
