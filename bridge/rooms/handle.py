"""The one seam between the edges (REST, websocket, SSE) and what a room does for its clients.

The edges resolve a room once (``registry.lookup``) and then go through :meth:`RoomHandles.of`: for a
room this process runs, :class:`LocalHandle` (the relay and the lifecycle, called in place: no task, no
round trip); for a mirror of a room another instance owns (``bridge/cluster``), the remote handle, which
forwards each call to the owner and answers with what the owner answered. Results are plain values
(ids, positions) so that both can produce them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .lifecycle import RoomLifecycle
from .models import CloseReason, Room
from .observing import forward_rtc_event
from .queue import CommandKind, Stream
from .registry import LiveRoom
from .relay import Relay
from .utterances import Utterance


@dataclass(slots=True)
class Queued:
    """A speak or ask in the room's queue: its utterance, its positions once A2E accepted it; ``leaves``
    the ids of its pieces as they are now (a brain's answer grows until it is accepted)."""

    utterance: str
    leaves: Callable[[], list[str]]
    accepted: asyncio.Future[list[int]]


Told = Callable[[Queued], None]


@dataclass(slots=True)
class StreamEnded:
    """A stream whose end was queued: ``done`` has its positions once A2E accepted every piece;
    ``pieces`` its pieces' ids (complete once ``done`` is)."""

    utterance: str
    done: asyncio.Future[list[int]]
    pieces: Callable[[], list[str]]

    @property
    def leaves(self) -> list[str]:
        return self.pieces() or [self.utterance]


def describe(u: Utterance) -> dict[str, Any]:
    """An utterance as the REST API shows it."""
    return {"id": u.id, "seq": u.seq, "kind": u.kind, "state": u.state, "parent": u.parent.id if u.parent else None,
            "position": u.position, "text": u.text, "estimated": u.estimated, "reason": u.reason,
            "pieces": [p.id for p in u.pieces]}


class RoomHandle(Protocol):
    """What a room does for its clients. :meth:`submit` tells ``queued`` as soon as the command is
    queued and ``then`` as soon as ``accepted`` is done, each before the room's events about the
    command go out (the sender's ``queued`` and ack come first, wherever the room runs)."""

    async def submit(self, lr: LiveRoom, kind: CommandKind, text: str, *, origin: str | None = None,
                     queued: Told | None = None, then: Told | None = None,
                     written: Callable[[], None] | None = None) -> Queued: ...

    async def stream_delta(self, lr: LiveRoom, key: str, text: str, *, origin: str | None = None) -> str: ...

    async def stream_end(self, lr: LiveRoom, key: str) -> StreamEnded: ...

    async def stream_abort(self, lr: LiveRoom, key: str, reason: str) -> None: ...

    async def cancel(self, lr: LiveRoom, uid: str) -> list[str]: ...

    async def flush(self, lr: LiveRoom, *, origin: str | None = None) -> tuple[int, list[str]]: ...

    async def set_qa_context(self, lr: LiveRoom, text: str) -> str: ...

    async def utterance(self, lr: LiveRoom, uid: str) -> dict[str, Any] | None: ...

    async def rtc_event(self, lr: LiveRoom, raw: dict[str, Any], *, source: str) -> None: ...

    async def close(self, lr: LiveRoom, reason: CloseReason) -> Room: ...


class LocalHandle:
    """A room this process runs: the relay and the lifecycle, in place."""

    def __init__(self, relay: Relay, lifecycle: RoomLifecycle) -> None:
        self.relay, self.lifecycle = relay, lifecycle

    async def submit(self, lr: LiveRoom, kind: CommandKind, text: str, *, origin: str | None = None,
                     queued: Told | None = None, then: Told | None = None,
                     written: Callable[[], None] | None = None) -> Queued:
        told: list[Queued] = []  # A2E answers after this returns: ``then`` always finds it
        queue = self.relay.queues.get(lr.room.id)
        # nothing in flight or waiting: the worker sends this one next, in a few loop turns
        idle = queue is not None and queue.in_flight is None and not queue.pending and not queue.open_streams()
        try:
            sub = self.relay.submit(lr, kind, text, origin=origin,
                                    then=None if then is None else lambda _: then(told[0]))
        except BaseException:
            if written is not None:
                written()
            raise
        if written is not None:  # when the worker's A2E request for it is written; else now
            if idle and sub.first is not None:
                sub.first.written = written
            else:
                written()
        utterance = sub.utterance
        told.append(Queued(utterance.id, lambda: utterance.leaves, sub.accepted))
        if queued is not None:
            queued(told[0])
        return told[0]

    async def stream_delta(self, lr: LiveRoom, key: str, text: str, *, origin: str | None = None) -> str:
        return self.relay.stream_delta(lr, key, text, origin=origin).utterance.id

    async def stream_end(self, lr: LiveRoom, key: str) -> StreamEnded:
        stream: Stream = self.relay.stream_end(lr, key)
        return StreamEnded(stream.utterance.id, stream.done, lambda: [u.id for u in stream.utterance.pieces])

    async def stream_abort(self, lr: LiveRoom, key: str, reason: str) -> None:
        self.relay.stream_abort(lr, key, reason)

    async def cancel(self, lr: LiveRoom, uid: str) -> list[str]:
        return self.relay.cancel(lr, uid)

    async def flush(self, lr: LiveRoom, *, origin: str | None = None) -> tuple[int, list[str]]:
        return self.relay.flush(lr, origin=origin)

    async def set_qa_context(self, lr: LiveRoom, text: str) -> str:
        return (await self.relay.set_qa_context(lr, text)).qa_context or ""

    async def utterance(self, lr: LiveRoom, uid: str) -> dict[str, Any] | None:
        u = lr.utterances.get(uid) if lr.utterances is not None else None
        return None if u is None else describe(u)

    async def rtc_event(self, lr: LiveRoom, raw: dict[str, Any], *, source: str) -> None:
        forward_rtc_event(lr, raw, source=source)

    async def close(self, lr: LiveRoom, reason: CloseReason) -> Room:
        await self.lifecycle.close(lr, reason)
        return lr.room


class RoomHandles:
    """The handle of a room: local for the rooms this process runs, ``remote`` (set by
    ``bridge/cluster``) for mirrors."""

    def __init__(self, local: LocalHandle) -> None:
        self.local = local
        self.remote: RoomHandle | None = None

    def of(self, lr: LiveRoom) -> RoomHandle:
        if lr.mirror and self.remote is not None:
            return self.remote
        return self.local
