"""The command relay: speak/ask/flush/QA context for a room, and its ordered, bounded queue.

Commands reach A2E one at a time, in order: every accepted command gets the next sequence number
(its position in the room's order) and a future that resolves once A2E accepted it (or fails with
the reason it did not). :func:`acceptance` turns a submission's futures into its positions, for
the REST API and the websocket alike. The queue's worker calls the A2E client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bridge import frames, metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.a2e.errors import A2EError, A2ENotFound
from bridge.errors import BridgeError, Flushed, QueueFull, RoomNotOpen, ValidationFailed, from_a2e
from bridge.settings import Settings

from .models import Room, RoomState
from .registry import LiveRoom, RoomRegistry
from .text import split_sentences

log = logging.getLogger("bridge.rooms")

CommandKind = Literal["speak", "ask"]
CHUNK_CHARS = 500  # longest text sent to A2E in one speak; longer text is split at sentences


@dataclass(eq=False)
class Command:
    kind: CommandKind
    text: str
    seq: int
    future: asyncio.Future[int] = field(repr=False)


def _consume(future: asyncio.Future[int]) -> None:
    """Mark a failure as seen: a caller that went away must not leave 'never retrieved' noise."""
    if not future.cancelled():
        future.exception()


def check_qa_context(text: object) -> None:
    if not isinstance(text, str):
        raise ValidationFailed("qa_context must be a string")
    if len(text) > QA_CONTEXT_LIMIT:
        raise ValidationFailed(f"QA context is {len(text)} characters; A2E accepts at most {QA_CONTEXT_LIMIT}",
                               details={"limit": QA_CONTEXT_LIMIT, "length": len(text)})


def _check_open(lr: LiveRoom) -> None:
    if lr.room.state is not RoomState.OPEN:
        raise RoomNotOpen(f"room {lr.room.id} is {lr.room.state.value}")


class Relay:
    """Takes commands for open rooms and hands them to A2E in each room's order.

    ``on_upstream_gone`` is called (once per failing command) when A2E no longer knows a room's
    channel: the room is over upstream and must be closed.
    """

    def __init__(self, settings: Settings, a2e: A2EClient, registry: RoomRegistry, *,
                 on_upstream_gone: Callable[[LiveRoom], None]) -> None:
        self.settings = settings
        self.a2e = a2e
        self.registry = registry
        self.on_upstream_gone = on_upstream_gone
        self.queues: dict[str, CommandQueue] = {}  # room id -> the open room's command queue

    def open(self, lr: LiveRoom) -> None:
        """Give a room that just opened its queue (a hook of the room lifecycle)."""
        self.queues[lr.room.id] = CommandQueue(self.settings.queue_size, lr, self)

    async def closing(self, lr: LiveRoom, reason: BridgeError) -> None:
        """Refuse the room's new commands and fail its pending ones (a hook of the room lifecycle)."""
        queue = self.queues.pop(lr.room.id, None)
        if queue is not None:
            await queue.close(reason)

    def submit(self, lr: LiveRoom, kind: CommandKind, text: str) -> list[Command]:
        """Queue a command (split into sentences if long); :func:`acceptance` awaits them."""
        _check_open(lr)
        if not isinstance(text, str) or not text.strip():
            raise ValidationFailed("text must be a non-empty string")
        if len(text) > self.settings.max_text_chars:
            raise ValidationFailed(f"text is {len(text)} characters; at most {self.settings.max_text_chars}",
                                   details={"limit": self.settings.max_text_chars})
        if kind == "ask" and len(text) > CHUNK_CHARS:
            raise ValidationFailed(f"a question may be at most {CHUNK_CHARS} characters")
        chunks = split_sentences(text, CHUNK_CHARS) if kind == "speak" else [text.strip()]
        commands = self.queues[lr.room.id].submit(kind, chunks)
        self.registry.touch(lr)
        return commands

    def flush(self, lr: LiveRoom) -> int:
        _check_open(lr)
        self.registry.touch(lr)
        queue = self.queues.get(lr.room.id)
        return queue.flush() if queue else 0

    async def set_qa_context(self, lr: LiveRoom, text: str) -> Room:
        """Set the room's QA context on A2E, then in the record. A caller that goes away meanwhile (a
        closing websocket) does not cut it in half: A2E and the record end up agreeing."""
        check_qa_context(text)
        _check_open(lr)
        work = asyncio.ensure_future(self._set_qa_context(lr, text))
        work.add_done_callback(lambda done: None if done.cancelled() else done.exception())  # seen, if abandoned
        return await asyncio.shield(work)

    async def _set_qa_context(self, lr: LiveRoom, text: str) -> Room:
        try:
            await self.a2e.set_qa_context(lr.room.channel or "", text)
        except A2EError as exc:
            raise self._failed(lr, exc) from None
        async with lr.lock:
            lr.room.qa_context = text
            await self.registry.store.put(lr.room)
        self.registry.touch(lr)
        return lr.room

    async def send(self, lr: LiveRoom, command: Command) -> None:
        """The queue's worker: one command to A2E."""
        call = self.a2e.speak if command.kind == "speak" else self.a2e.ask
        try:
            await call(lr.room.channel or "", command.text)
        except A2EError as exc:
            metrics.COMMANDS.labels(command.kind, type(exc).__name__).inc()
            raise self._failed(lr, exc) from None
        metrics.COMMANDS.labels(command.kind, "ok").inc()
        self.registry.touch(lr)
        lr.events.publish(frames.Command(kind=command.kind, seq=command.seq, text=command.text))

    def _failed(self, lr: LiveRoom, exc: A2EError) -> BridgeError:
        if isinstance(exc, A2ENotFound):
            self.on_upstream_gone(lr)  # A2E no longer has the channel: the room is over upstream
            return RoomNotOpen("the avatar room ended upstream", details={"a2e_code": exc.code})
        return from_a2e(exc)


def acceptance(commands: list[Command]) -> asyncio.Future[list[int]]:
    """The positions of ``commands`` once A2E accepted them all, or the first failure (in order).

    Done-callbacks rather than a task gathering shielded futures: this is on every speak's path.
    The commands go on if whoever awaits this goes away.
    """
    done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    left = len(commands)

    def settled(_: asyncio.Future[int]) -> None:
        nonlocal left
        left -= 1
        if left or done.done():
            return
        for command in commands:
            failure = (RoomNotOpen("the command was cancelled") if command.future.cancelled()
                       else command.future.exception())
            if failure is not None:
                done.set_exception(failure if isinstance(failure, BridgeError) else BridgeError("internal error"))
                return
        done.set_result([c.seq for c in commands])

    for command in commands:
        command.future.add_done_callback(settled)
    return done


class CommandQueue:
    """FIFO of commands for one room, sent to A2E by one worker task (:meth:`Relay.send`)."""

    def __init__(self, size: int, lr: LiveRoom, relay: Relay) -> None:
        self.size = size
        self._lr = lr
        self._relay = relay
        self._pending: deque[Command] = deque()
        self._ready = asyncio.Event()
        self._seq = itertools.count(1)
        self._closed: BridgeError | None = None
        self.in_flight: Command | None = None
        self._worker = asyncio.create_task(self._run(), name="room-commands")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, kind: CommandKind, texts: list[str]) -> list[Command]:
        """Queue ``texts`` as consecutive commands, all or none (QueueFull when they don't fit)."""
        if self._closed is not None:
            raise self._closed
        if len(self._pending) + len(texts) > self.size:
            raise QueueFull(f"the room's queue is full ({self.size} commands pending); retry or flush",
                            details={"pending": len(self._pending), "size": self.size})
        loop = asyncio.get_running_loop()
        commands = [Command(kind, text, next(self._seq), loop.create_future()) for text in texts]
        for command in commands:
            command.future.add_done_callback(_consume)
            self._pending.append(command)
        self._ready.set()
        return commands

    def flush(self) -> int:
        """Drop every pending command (not the one A2E is handling); return how many."""
        dropped = 0
        while self._pending:
            command = self._pending.popleft()
            if not command.future.done():
                command.future.set_exception(Flushed(f"command {command.seq} was flushed before it was sent"))
            dropped += 1
        return dropped

    async def close(self, reason: BridgeError | None = None) -> None:
        """Refuse new commands, fail pending ones, stop the worker (an in-flight call is abandoned)."""
        self._closed = reason or RoomNotOpen("the room is closed")
        while self._pending:
            command = self._pending.popleft()
            if not command.future.done():
                command.future.set_exception(self._closed)
        if self._worker is not asyncio.current_task():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._ready.clear()
                await self._ready.wait()
                continue
            command = self._pending.popleft()
            self.in_flight = command
            try:
                await self._relay.send(self._lr, command)
            except asyncio.CancelledError:
                if not command.future.done():
                    command.future.set_exception(self._closed or RoomNotOpen("the room is closed"))
                raise
            except BridgeError as exc:
                if not command.future.done():
                    command.future.set_exception(exc)
            except Exception as exc:  # a bug must fail the command, not kill the room's worker
                log.exception("command %s failed unexpectedly", command.seq)
                if not command.future.done():
                    command.future.set_exception(BridgeError(f"internal error: {type(exc).__name__}"))
            else:
                if not command.future.done():
                    command.future.set_result(command.seq)
            finally:
                self.in_flight = None
