"""The command relay: speak/ask/streams/cancel/flush/QA context for a room, into its ordered queue.

Every speak, ask and stream becomes an utterance (:mod:`.utterances`) and commands in the room's
queue (:mod:`.queue`), whose worker calls the A2E client itself. A speak is cut at sentences; a
stream is cut as its text arrives (:mod:`.text`); an ``ask`` goes to the room's brain: A2E's own
(one ``ask`` command) or a named one, whose answer is a stream (:mod:`.answers`).
:class:`Submission` carries what the REST API and the websocket answer with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bridge import frames, metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError, A2ENotFound
from bridge.errors import BridgeError, Cancelled, Flushed, NotCancellable, NotFound, RoomNotOpen, ValidationFailed, from_a2e
from bridge.settings import Settings

from .answers import Answering
from .caps import check_qa_context
from .models import Room, RoomState
from .queue import Command, CommandKind, CommandQueue, Stream, acceptance
from .registry import LiveRoom, RoomRegistry
from .text import CHUNK_CHARS, split_sentences
from .utterances import Utterance, UtteranceTracker

__all__ = ["CHUNK_CHARS", "Command", "CommandKind", "Relay", "Submission", "acceptance", "check_qa_context"]

@dataclass
class Submission:
    """A speak or ask in the queue: its utterance, and its positions once A2E accepted it all."""

    utterance: Utterance
    accepted: asyncio.Future[list[int]]
    first: Command | None = None  # its first command to A2E (none yet: a brain's answer)


def _check_open(lr: LiveRoom) -> None:
    if lr.room.state is not RoomState.OPEN:
        raise RoomNotOpen(f"room {lr.room.id} is {lr.room.state.value}")


class Relay:
    """Takes commands for open rooms and hands them to A2E in each room's order.

    ``on_upstream_gone`` is called (once per failing command) when A2E no longer knows a room's
    channel: the room is over upstream and must be closed.
    """

    def __init__(self, settings: Settings, a2e: A2EClient, registry: RoomRegistry, *,
                 on_upstream_gone: Callable[[LiveRoom], None], answering: Answering | None = None) -> None:
        self.settings = settings
        self.a2e = a2e
        self.registry = registry
        self.on_upstream_gone = on_upstream_gone
        self.answering = answering or Answering({})
        self.queues: dict[str, CommandQueue] = {}  # room id -> the open room's command queue
        # wired by the app: a command A2E accepted; pending commands dropped by a flush (count, origin)
        self.on_sent: list[Callable[[LiveRoom, Command], None]] = []
        self.on_flushed: list[Callable[[LiveRoom, int, str | None], None]] = []

    def open(self, lr: LiveRoom) -> None:
        """Give a room that just opened its queue and utterances (a hook of the room lifecycle)."""
        lr.utterances = UtteranceTracker(lr.events.publish, seconds_per_char=self.settings.speech_seconds_per_char)
        self.queues[lr.room.id] = CommandQueue(self.settings.queue_size, lambda command: self.send(lr, command),
                                               sent=lambda command: self.sent(lr, command))

    async def closing(self, lr: LiveRoom, reason: BridgeError) -> None:
        """Refuse the room's new commands and fail its pending ones (a hook of the room lifecycle)."""
        self.answering.stop_all(lr)
        queue = self.queues.pop(lr.room.id, None)
        if queue is not None:
            await queue.close(reason)
        if lr.utterances is not None:
            lr.utterances.close()

    def _queue(self, lr: LiveRoom) -> CommandQueue:
        _check_open(lr)
        queue = self.queues.get(lr.room.id)
        if queue is None or lr.utterances is None:
            raise RoomNotOpen(f"room {lr.room.id} is closing")
        return queue

    # -- speak and ask --------------------------------------------------------------------------
    def submit(self, lr: LiveRoom, kind: CommandKind, text: str, *, origin: str | None = None,
               then: Callable[[asyncio.Future[list[int]]], None] | None = None) -> Submission:
        """Queue a speak (cut into sentences if long) or an ask (to the room's brain). ``origin``
        labels the client that sent it (kept with the commands, never looked up); ``then``: see
        :func:`~.queue.acceptance` (for a brain's answer, a callback of ``accepted``)."""
        queue = self._queue(lr)
        tracker = lr.utterances
        assert tracker is not None
        if not isinstance(text, str) or not text.strip():
            raise ValidationFailed("text must be a non-empty string")
        if len(text) > self.settings.max_text_chars:
            raise ValidationFailed(f"text is {len(text)} characters; at most {self.settings.max_text_chars}",
                                   details={"limit": self.settings.max_text_chars})
        if kind == "ask" and len(text) > CHUNK_CHARS:
            raise ValidationFailed(f"a question may be at most {CHUNK_CHARS} characters")
        if kind == "ask" and lr.room.brain:
            queue.fits(1)  # a full queue refuses the question now, not its answer later
            parent = tracker.new("ask", text.strip(), ended=False)
            stream = queue.open_stream(f"brain:{parent.id}", parent, origin=origin)
            self.answering.start(self, lr, stream, text.strip())
            self.registry.touch(lr)
            if then is not None:
                stream.done.add_done_callback(then)
            return Submission(parent, stream.done)
        chunks = split_sentences(text, CHUNK_CHARS) if kind == "speak" else [text.strip()]
        queue.fits(len(chunks))
        if len(chunks) == 1:
            parent = tracker.new(kind, chunks[0])
            pieces = [(chunks[0], parent)]
        else:
            parent = tracker.new(kind, text.strip(), ended=True)
            pieces = [(chunk, tracker.new(kind, chunk, parent=parent)) for chunk in chunks]
        commands = queue.submit(kind, pieces, origin=origin)
        self.registry.touch(lr)
        return Submission(parent, acceptance(commands, then=then), commands[0])

    # -- streams --------------------------------------------------------------------------------
    def stream_delta(self, lr: LiveRoom, key: str, text: str, *, origin: str | None = None) -> Stream:
        """Text for the stream ``key`` (opened by its first delta); complete pieces are queued at once."""
        queue = self._queue(lr)
        stream = queue.streams.get(key)
        if stream is None:
            assert lr.utterances is not None
            stream = queue.open_stream(key, lr.utterances.new("stream", ended=False), origin=origin)
        self.feed(lr, stream, text)
        if stream.stopped is None and not stream.ended:
            self._arm_idle(lr, stream)
        self.registry.touch(lr)
        return stream

    def stream_end(self, lr: LiveRoom, key: str) -> Stream:
        """The end of the stream ``key``: its last piece is queued, ``done`` follows."""
        queue = self._queue(lr)
        stream = queue.streams.get(key)
        if stream is None:
            raise NotFound(f"no open stream {key.partition(':')[2] or key!r}: a stream starts with a speak_delta")
        if stream.stopped is None:
            self.feed(lr, stream, "", final=True)
        queue.end_stream(stream)
        assert lr.utterances is not None
        if stream.stopped is None:
            lr.utterances.end(stream.utterance)
        self.registry.touch(lr)
        return stream

    def feed(self, lr: LiveRoom, stream: Stream, text: str, *, final: bool = False) -> list[Utterance]:
        """Cut ``text`` into the stream; all or nothing (QueueFull leaves the stream as it was)."""
        if stream.stopped is not None:
            raise stream.stopped
        queue, tracker = self._queue(lr), lr.utterances
        assert tracker is not None
        texts, rest = stream.segmenter.cut(text, final=final)
        queue.fits(len(texts))
        stream.segmenter.commit(texts, rest)
        if texts:
            queue.wake()  # first: the worker's A2E call goes out before the events about it
        pieces = [(t, tracker.new(stream.utterance.kind, t, parent=stream.utterance)) for t in texts]
        queue.add_pieces(stream, pieces)
        return [u for _, u in pieces]

    def stream_abort(self, lr: LiveRoom, key: str, reason: str, *, free: bool = True) -> None:
        """The stream's owner is gone (``free``: its name too) or went idle: its complete pieces are
        still said, the unfinished rest is not, and it is ``failed``. Kept (not ``free``), later text
        for it is refused until its ``speak_end``."""
        queue = self.queues.get(lr.room.id)
        stream = queue.streams.get(key) if queue is not None else None
        if queue is None or stream is None:
            return
        if stream.stopped is None:
            unfinished = bool(stream.segmenter.buffer.strip())
            queue.stop_stream(stream, Cancelled(reason))
            if lr.utterances is not None:
                lr.utterances.fail(stream.utterance, reason + ("; its unfinished sentence was dropped" if unfinished else ""))
        if free:
            queue.end_stream(stream)

    def _arm_idle(self, lr: LiveRoom, stream: Stream) -> None:
        if stream.idle is not None:
            stream.idle.cancel()
        timeout = self.settings.stream_idle_timeout
        stream.idle = asyncio.get_running_loop().call_later(
            timeout, lambda: self.stream_abort(lr, stream.key, f"no speak_delta or speak_end for {timeout:g}s", free=False))

    # -- cancel and flush -----------------------------------------------------------------------
    def cancel(self, lr: LiveRoom, uid: str) -> list[str]:
        """Cancel the utterance ``uid``: its queued pieces, and for a stream or a brain's answer the
        rest of it. The ids cancelled; NotCancellable when A2E has all of it already."""
        queue, tracker = self._queue(lr), lr.utterances
        assert tracker is not None
        target = tracker.get(uid)
        if target is None:
            raise NotFound(f"no utterance {uid} in this room")
        reason = Cancelled(f"utterance {uid} was cancelled")
        taken = queue.take(lambda c: c.utterance is target or c.utterance.parent is target, reason)
        stopped = self._stop(lr, queue, target, reason) if not target.terminal else []
        if not taken and not stopped:
            raise NotCancellable(f"utterance {uid} is {target.state}: only what A2E does not have yet can be "
                                 "cancelled (A2E cannot stop a sentence it was given)", details={"state": target.state})
        cancelled = stopped + [i for c in taken for i in tracker.cancel(c.utterance, "cancelled")]
        if target.parent is None:
            cancelled += tracker.cancel(target, "cancelled")
        self.registry.touch(lr)
        return list(dict.fromkeys(cancelled))

    def flush(self, lr: LiveRoom, *, origin: str | None = None) -> tuple[int, list[str]]:
        """Drop every queued command, stop every stream and brain answer; (commands dropped, ids cancelled)."""
        _check_open(lr)
        self.registry.touch(lr)
        queue, tracker = self.queues.get(lr.room.id), lr.utterances
        if queue is None or tracker is None:
            return 0, []
        flushed, dropped = self._flush(lr, queue, tracker)
        for hook in self.on_flushed:
            hook(lr, flushed, origin)
        return flushed, dropped

    def _flush(self, lr: LiveRoom, queue: CommandQueue, tracker: UtteranceTracker) -> tuple[int, list[str]]:
        reason = Flushed("flushed before it was sent")
        taken = queue.take(lambda _: True, reason)
        dropped = self._stop(lr, queue, None, reason)
        for command in taken:
            dropped += tracker.cancel(command.utterance, "flushed")
            if command.utterance.parent is not None:
                dropped += tracker.cancel(command.utterance.parent, "flushed")
        return len(taken), list(dict.fromkeys(dropped))

    def _stop(self, lr: LiveRoom, queue: CommandQueue, only: Utterance | None, reason: BridgeError) -> list[str]:
        """Stop the streams and brain answers (of ``only``, else all): their further text is refused."""
        tracker = lr.utterances
        assert tracker is not None
        stopped: list[str] = []
        for stream in {*queue.open_streams(), *queue.streams.values()}:
            if (only is None or stream.utterance is only) and stream.stopped is None:
                self.answering.stop(lr, stream.utterance)
                queue.stop_stream(stream, reason)
                if stream.key.startswith("brain:"):
                    queue.end_stream(stream)  # nobody will send its end
                stopped += tracker.cancel(stream.utterance, reason.message)
        return stopped

    # -- QA context and the worker --------------------------------------------------------------
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
        tracker = lr.utterances
        try:
            await (call(lr.room.channel or "", command.text) if command.written is None
                   else call(lr.room.channel or "", command.text, written=command.written))
        except A2EError as exc:
            metrics.labelled(metrics.COMMANDS, command.kind, type(exc).__name__).inc()
            failure = self._failed(lr, exc)
            if tracker is not None:
                tracker.fail(command.utterance, f"{failure.code.value}: {failure.message}")
            raise failure from None
        metrics.labelled(metrics.COMMANDS, command.kind, "ok").inc()
        self.registry.touch(lr)

    def sent(self, lr: LiveRoom, command: Command) -> None:
        """A command A2E accepted, told to the room and the hooks once its future has its result: the
        sender's ack (``then``) goes out first, the room's hub delivers on later loop callbacks."""
        lr.events.publish(frames.Command(kind=command.kind, seq=command.seq, text=command.text,
                                         utterance=command.utterance.id))
        if lr.utterances is not None:
            lr.utterances.sent(command.utterance, command.seq)
        for hook in self.on_sent:
            hook(lr, command)

    def _failed(self, lr: LiveRoom, exc: A2EError) -> BridgeError:
        if isinstance(exc, A2ENotFound):
            self.on_upstream_gone(lr)  # A2E no longer has the channel: the room is over upstream
            return RoomNotOpen("the avatar room ended upstream", details={"a2e_code": exc.code})
        return from_a2e(exc)
