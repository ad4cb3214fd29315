"""A room's ordered, bounded command queue: commands reach A2E one at a time, in order.

Every accepted command gets the next sequence number (its position in the room's order) and a
future that resolves once A2E accepted it (or fails with the reason it did not).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from bridge.errors import BridgeError, Flushed, QueueFull, RoomNotOpen

log = logging.getLogger("bridge.rooms")

CommandKind = Literal["speak", "ask"]


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


class CommandQueue:
    """FIFO of commands for one room, sent by one worker task through ``send``."""

    def __init__(self, size: int, send: Callable[[Command], Awaitable[None]]) -> None:
        self.size = size
        self._send = send
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
                await self._send(command)
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
