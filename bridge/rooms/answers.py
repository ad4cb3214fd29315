"""A brain's answer to a room's ``ask``: into speech sentence by sentence, and out as ``reply`` events.

The answer is a stream in the room's queue (opened by the relay where the ask was queued), fed as
the brain's words arrive: each sentence goes to A2E the moment it is complete, and each one adds
to a ``reply`` event (``source: "brain"``, ``reply_id``: the ask's utterance id). A brain that is
slow (nothing for its ``timeout``), fails or sends something unreadable ends the answer where it
is: the complete sentences already queued are said once, the unfinished one never; the ask fails
with ``brain_timeout``/``brain_error`` and every client gets that ``error`` event. ``flush``,
``cancel`` and the room's end cancel the task, which closes the brain's HTTP stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from bridge import frames
from bridge.errors import BrainFailed, BrainTimeout, BridgeError, ValidationFailed

from .brains import Brain, Message
from .registry import LiveRoom
from .utterances import Utterance

if TYPE_CHECKING:
    from .queue import CommandQueue, Stream

log = logging.getLogger("bridge.brains")
HISTORY = 200  # messages kept per room; each brain sends its own ``history`` of the newest


class Feeder(Protocol):
    """What an answer needs of the relay (which owns the queues): feeding text into a stream."""

    queues: dict[str, CommandQueue]

    def feed(self, lr: LiveRoom, stream: Stream, text: str, *, final: bool = False) -> list[Utterance]: ...


def joined(pieces: list[str]) -> str:
    """Sentences as one text: a space between them, none after a CJK full stop."""
    text = ""
    for piece in pieces:
        text += piece if not text or text.endswith(("\u3002", "\uff01", "\uff1f")) else " " + piece
    return text


class Answering:
    """The brains' answers in flight, per room, and each room's conversation."""

    def __init__(self, brains: Mapping[str, Brain]) -> None:
        self.brains = dict(brains)
        self._tasks: dict[str, dict[str, asyncio.Task[None]]] = {}  # room id -> ask utterance id -> task
        self._history: dict[str, deque[Message]] = {}

    def check(self, name: str | None, tenant: str) -> str | None:
        """The brain a new room of ``tenant`` asks for (None: A2E's own), or ValidationFailed."""
        if name in (None, "a2e"):
            return None
        brain = self.brains.get(name or "")
        if brain is None or (brain.tenants is not None and tenant not in brain.tenants):
            raise ValidationFailed(f"no brain named {name!r} for this tenant", details={"brains": [
                "a2e", *sorted(n for n, b in self.brains.items() if b.tenants is None or tenant in b.tenants)]})
        return name

    def start(self, feeder: Feeder, lr: LiveRoom, stream: Stream, question: str) -> None:
        task = asyncio.create_task(self._run(feeder, lr, stream, question), name=f"brain-{stream.utterance.id}")
        self._tasks.setdefault(lr.room.id, {})[stream.utterance.id] = task

    def running(self, lr: LiveRoom, u: Utterance) -> bool:
        task = self._tasks.get(lr.room.id, {}).get(u.id)
        return task is not None and not task.done()

    def stop(self, lr: LiveRoom, u: Utterance) -> None:
        task = self._tasks.get(lr.room.id, {}).pop(u.id, None)
        if task is not None:
            task.cancel()

    def stop_all(self, lr: LiveRoom) -> None:
        for task in self._tasks.pop(lr.room.id, {}).values():
            task.cancel()
        self._history.pop(lr.room.id, None)

    async def aclose(self) -> None:
        for tasks in list(self._tasks.values()):
            for task in tasks.values():
                task.cancel()
        for brain in self.brains.values():
            with contextlib.suppress(Exception):
                await brain.aclose()

    async def _run(self, feeder: Feeder, lr: LiveRoom, stream: Stream, question: str) -> None:
        ask, room = stream.utterance, lr.room
        brain = self.brains[room.brain or ""]
        history = self._history.setdefault(room.id, deque(maxlen=HISTORY))
        said: list[str] = []
        try:
            words = brain.answer(question, room_id=room.id, qa_context=room.qa_context,
                                 history=list(history)[-brain.history:] if brain.history else [])
            try:
                while True:
                    try:
                        async with asyncio.timeout(brain.timeout):
                            delta = await anext(words)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise BrainTimeout(f"the brain {brain.name} sent nothing for {brain.timeout:g}s") from None
                    if not isinstance(delta, str):
                        raise BrainFailed(f"the brain {brain.name} sent something that is not text")
                    self._said(lr, ask, said, feeder.feed(lr, stream, delta))
            finally:
                await words.aclose()
            said.extend(p.text for p in feeder.feed(lr, stream, "", final=True))  # in the final reply below
            if not said:
                raise BrainFailed(f"the brain {brain.name} answered nothing")
        except asyncio.CancelledError:
            return  # flushed, cancelled or the room closed: whoever stopped it tells the clients
        except Exception as exc:
            failure = exc if isinstance(exc, BridgeError) else BrainFailed(f"the brain {brain.name} failed")
            if not isinstance(exc, BridgeError):
                log.exception("room %s: brain %s failed", room.id, brain.name)
            self._failed(feeder, lr, stream, said, failure)
            return
        finally:
            self._tasks.get(room.id, {}).pop(ask.id, None)
        queue = feeder.queues.get(room.id)
        if queue is not None:
            queue.end_stream(stream)
        if lr.utterances is not None:
            lr.utterances.end(ask)
        lr.events.publish(frames.Reply(text=joined(said), final=True, reply_id=ask.id, source="brain"))
        history.extend([{"role": "user", "content": question}, {"role": "assistant", "content": joined(said)}])

    def _said(self, lr: LiveRoom, ask: Utterance, said: list[str], pieces: list[Utterance]) -> None:
        if pieces:
            said.extend(p.text for p in pieces)
            lr.events.publish(frames.Reply(text=joined(said), final=False, reply_id=ask.id, source="brain"))

    def _failed(self, feeder: Feeder, lr: LiveRoom, stream: Stream, said: list[str], failure: BridgeError) -> None:
        """End the answer where it is: queued sentences are said, the unfinished one is dropped."""
        queue = feeder.queues.get(lr.room.id)
        if queue is not None:
            queue.stop_stream(stream, failure)
            queue.end_stream(stream)
        if lr.utterances is not None:
            lr.utterances.fail(stream.utterance, f"{failure.code.value}: {failure.message}")
        if said:
            lr.events.publish(frames.Reply(text=joined(said), final=True, reply_id=stream.utterance.id, source="brain"))
        lr.events.publish(frames.Error(code=failure.code, message=failure.message, details=failure.details,
                                       utterance=stream.utterance.id))
        log.warning("room %s: ask %s: %s", lr.room.id, stream.utterance.id, failure.message)
