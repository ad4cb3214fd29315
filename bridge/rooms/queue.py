"""A room's ordered, bounded command queue, its streams, and the worker that hands commands to A2E.

The queue holds commands (one A2E speak/ask each) and streams (a text arriving in pieces: a client's
``speak_delta``\\ s, a brain's answer). Items leave in the order they came; a stream at the head
holds it until it ended, so what follows it (another stream included) waits and two streams never
interleave, while each of its pieces is sent the moment it is complete. A command gets its position
(the room's order, ``seq``) when it is sent, so positions are the order A2E saw.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.aio import cancel_and_wait
from bridge.errors import BridgeError, QueueFull, RoomNotOpen

from .text import Segmenter
from .utterances import Utterance

log = logging.getLogger("bridge.rooms")

CommandKind = Literal["speak", "ask"]


@dataclass(eq=False)
class Command:
    kind: CommandKind
    text: str
    utterance: Utterance
    future: asyncio.Future[int] = field(repr=False)
    seq: int = 0  # the position, given when it is sent
    origin: str | None = None  # who sent it, as the edge labels it (ws-<n>, rest): for the transcript
    part: int = 1  # a speak cut at sentences: this piece's number, of `parts`
    parts: int = 1
    on_settled: list[Callable[[], None]] = field(default_factory=list, repr=False)  # see settle()
    written: Callable[[], None] | None = field(default=None, repr=False)  # its A2E request is on the wire

    def settle(self, failure: BaseException | None = None, *, now: bool = False) -> None:
        """Give the future its result (its position) or ``failure``, once; the hooks are told ``now``
        (a command A2E accepted: the sender's ack goes out in this very callback) or on the next
        loop callback, as a future's done-callbacks would be (a flush's ack goes before the errors
        of what it dropped, an utterance's ``failed`` event before its command's error)."""
        if self.future.done():
            return
        if failure is None:
            self.future.set_result(self.seq)
        else:
            self.future.set_exception(failure)
            self.future.exception()  # seen: whoever waited for it may have gone (no 'never retrieved' noise)
        if now:
            self._tell()
        elif self.on_settled:
            asyncio.get_running_loop().call_soon(self._tell)

    def _tell(self) -> None:
        # emptied as they are told: acceptance()'s hook holds the commands it waits for, so a command
        # still holding it would be a reference cycle, left to the garbage collector (every speak)
        hooks, self.on_settled = self.on_settled, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # one answer's bug must not stop the room's worker
                log.exception("command %s: a settle hook failed", self.seq)


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: a caller that went away must not leave 'never retrieved' noise."""
    if not future.cancelled():
        future.exception()


def acceptance(commands: list[Command], *,
               then: Callable[[asyncio.Future[list[int]]], None] | None = None) -> asyncio.Future[list[int]]:
    """The positions of ``commands`` once A2E accepted them all, or the first failure (in order).

    Hooks, not a task gathering shielded futures (every speak comes here); the commands go on if whoever
    awaits this goes away. ``then`` gets the settled future where the queue settles the last command
    (:meth:`Command.settle`): the websocket's ack, before the room hears of it. Never before this returns.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[int]] = loop.create_future()
    left = len(commands)

    def settled() -> None:
        nonlocal left
        left -= 1
        if left or done.done():
            return
        for command in commands:
            failure = (RoomNotOpen("the command was cancelled") if command.future.cancelled()
                       else command.future.exception())
            if failure is not None:
                done.set_exception(failure if isinstance(failure, BridgeError) else BridgeError("internal error"))
                break
        else:
            done.set_result([c.seq for c in commands])
        if then is not None:
            then(done)

    if not commands:
        done.set_result([])
        if then is not None:
            loop.call_soon(then, done)
    for command in commands:
        command.on_settled.append(settled)
    return done


class Stream:
    """Text arriving in pieces, cut into commands as sentences complete (:class:`~.text.Segmenter`).

    ``done`` resolves with the positions of all its commands once it ended and A2E accepted them
    (or fails with the first failure, or why the stream was stopped).
    """

    def __init__(self, key: str, utterance: Utterance, origin: str | None = None) -> None:
        self.key = key
        self.utterance = utterance
        self.origin = origin
        self.segmenter = Segmenter()
        self.pending: deque[Command] = deque()
        self.commands: list[Command] = []
        self.ended = False  # no more text: its end came, or it was stopped
        self.stopped: BridgeError | None = None  # cancelled, flushed, failed: refuses more text
        self.done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.done.add_done_callback(_consume)
        self.idle: asyncio.TimerHandle | None = None

    def settle(self) -> None:
        """Resolve ``done`` once the stream ended (stopped: at once) and every command settled."""
        if self.done.done() or not self.ended:
            return
        if self.stopped is not None:
            self.done.set_exception(self.stopped)
            return
        if not all(c.future.done() for c in self.commands):
            return
        for command in self.commands:
            failure = RoomNotOpen("the command was cancelled") if command.future.cancelled() else command.future.exception()
            if failure is not None:
                self.done.set_exception(failure if isinstance(failure, BridgeError) else BridgeError("internal error"))
                return
        self.done.set_result([c.seq for c in self.commands])


class CommandQueue:
    """FIFO of commands and streams for one room, sent to A2E by one worker task (``send``)."""

    def __init__(self, size: int, send: Callable[[Command], Awaitable[None]], *,
                 sent: Callable[[Command], None] | None = None) -> None:
        self.size = size
        self._send = send
        self._sent = sent  # a command A2E accepted, called once it is settled (after the sender's ack)
        self._items: deque[Command | Stream] = deque()
        self._ready = asyncio.Event()
        self._seq = itertools.count(1)
        self._closed: BridgeError | None = None
        self.streams: dict[str, Stream] = {}  # open (or stopped, not yet ended) streams by owner key
        self.in_flight: Command | None = None
        self._worker = asyncio.create_task(self._run(), name="room-commands")

    @property
    def pending(self) -> int:
        return sum(len(i.pending) if isinstance(i, Stream) else 1 for i in self._items)

    def _room_for(self, n: int) -> None:
        if self._closed is not None:
            raise self._closed
        if self.pending + n > self.size:
            raise QueueFull(f"the room's queue is full ({self.size} commands pending); retry or flush",
                            details={"pending": self.pending, "size": self.size})

    def _command(self, kind: CommandKind, text: str, utterance: Utterance, origin: str | None,
                 part: int = 1, parts: int = 1) -> Command:
        return Command(kind, text, utterance, asyncio.get_running_loop().create_future(), origin=origin, part=part, parts=parts)

    def submit(self, kind: CommandKind, pieces: list[tuple[str, Utterance]], *,
               origin: str | None = None) -> list[Command]:
        """Queue consecutive commands, all or none (QueueFull when they don't fit)."""
        self._room_for(len(pieces))
        commands = [self._command(kind, text, u, origin, part, len(pieces)) for part, (text, u) in enumerate(pieces, 1)]
        self._items.extend(commands)
        self._ready.set()
        return commands

    def open_stream(self, key: str, utterance: Utterance, *, origin: str | None = None) -> Stream:
        if self._closed is not None:
            raise self._closed
        stream = self.streams[key] = Stream(key, utterance, origin)
        self._items.append(stream)
        return stream

    def add_pieces(self, stream: Stream, pieces: list[tuple[str, Utterance]]) -> None:
        """Commands cut from a stream (the caller checked :meth:`fits` first)."""
        for text, u in pieces:
            command = self._command("speak", text, u, stream.origin)
            command.future.add_done_callback(lambda _: stream.settle())
            stream.commands.append(command)
            stream.pending.append(command)
        if pieces:
            self._ready.set()

    def fits(self, n: int) -> None:
        self._room_for(n)

    def wake(self) -> None:
        """Let the worker look at the queue as soon as the running code yields."""
        self._ready.set()

    def end_stream(self, stream: Stream) -> None:
        """No more text for ``stream``: its end came (or its owner is gone); its key is free again."""
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
        self.stop_stream(stream, None)

    def stop_stream(self, stream: Stream, reason: BridgeError | None) -> None:
        """End ``stream`` where it is; with ``reason`` its further text is refused with it (the key
        stays taken until its owner ends it, so that the owner learns why)."""
        if stream.idle is not None:
            stream.idle.cancel()
        stream.ended = True
        if reason is not None and stream.stopped is None:
            stream.stopped = reason
        self._ready.set()
        stream.settle()

    def take(self, match: Callable[[Command], bool], reason: BridgeError) -> list[Command]:
        """Remove the queued commands ``match`` selects (failing them with ``reason``), in order."""
        taken: list[Command] = []
        for item in list(self._items):
            if isinstance(item, Stream):
                for command in [c for c in item.pending if match(c)]:
                    item.pending.remove(command)
                    taken.append(command)
            elif match(item):
                self._items.remove(item)
                taken.append(item)
        for command in taken:
            command.settle(reason)
        return taken

    def open_streams(self) -> list[Stream]:
        return [i for i in self._items if isinstance(i, Stream) and not i.ended]

    async def close(self, reason: BridgeError | None = None) -> None:
        """Refuse new commands, fail pending ones, stop the worker (an in-flight call is abandoned)."""
        self._closed = reason or RoomNotOpen("the room is closed")
        self.take(lambda _: True, self._closed)
        for stream in [*self.open_streams(), *self.streams.values()]:
            self.stop_stream(stream, self._closed)
        self._items.clear()
        if self._worker is not asyncio.current_task():
            await cancel_and_wait(self._worker)

    def _next(self) -> Command | None:
        while self._items:
            head = self._items[0]
            if isinstance(head, Command):
                return self._items.popleft()  # type: ignore[return-value]
            if head.pending:
                return head.pending.popleft()
            if not head.ended:
                return None  # the stream holds the head until it ended
            self._items.popleft()
        return None

    async def _run(self) -> None:
        while True:
            command = self._next()
            if command is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            command.seq = next(self._seq)
            self.in_flight = command
            try:
                await self._send(command)
            except asyncio.CancelledError:
                command.settle(self._closed or RoomNotOpen("the room is closed"))
                raise
            except BridgeError as exc:
                command.settle(exc)
            except Exception as exc:  # a bug must fail the command, not kill the room's worker
                log.exception("command %s failed unexpectedly", command.seq)
                command.settle(BridgeError(f"internal error: {type(exc).__name__}"))
            else:
                command.settle(now=True)  # the sender's ack (acceptance's ``then``) is written here
                if self._sent is not None:  # then the room hears of it (its events go out after the ack)
                    try:
                        self._sent(command)
                    except Exception:  # a recorder's bug must not stop the room's worker
                        log.exception("command %s: announcing it failed", command.seq)
            finally:
                self.in_flight = None
