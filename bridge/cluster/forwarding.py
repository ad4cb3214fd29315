"""Commands for a room another instance owns: forwarded to the owner, answered end to end.

A command goes into the owner's inbox stream (one Lua call reads the room's lease and appends to
that owner's inbox, so it never lands with an instance that no longer owns the room), in the order
this instance sent it. The owner answers on this instance's reply channel: first what the command
became (``queued``: its utterance ids), or its error; for a speak, an ask or a stream's end, later
its acceptance by A2E (positions) or its failure. Errors come back as the same :class:`BridgeError`.

A command whose owner goes away before answering fails: ``room_moved`` when it never reached an
owner, ``outcome_unknown`` when it did (A2E may have it); never an ack for what was not said.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bridge.errors import BridgeError, OutcomeUnknown, RoomMoved
from bridge.rooms.handle import Queued, StreamEnded, Told
from bridge.rooms.models import CloseReason, Room
from bridge.rooms.queue import CommandKind
from bridge.rooms.registry import LiveRoom

from . import keys
from .leases import Leases
from .wire import Listener, error_from

log = logging.getLogger("bridge.cluster")

INBOX_MAXLEN = 10_000
FIRST_ANSWER_TIMEOUT = 30.0  # an owner alive but silent (its inbox lost): give up on the command
ANSWER_MAX_WAIT = 300.0  # nor wait for A2E's acceptance longer than this
# the owner of the room, then the command in its inbox: one step, so a command never goes to an old owner
FORWARD = """
local owner = redis.call('GET', KEYS[1])
if not owner then return false end
redis.call('XADD', ARGV[1] .. owner, 'MAXLEN', '~', ARGV[2], '*',
           'room', ARGV[3], 'op', ARGV[4], 'args', ARGV[5], 'reply', ARGV[6], 'req', ARGV[7])
return owner
"""


Later = Callable[[list[int] | BridgeError], None]
First = Callable[["Pending", dict[str, Any]], None]


@dataclass(eq=False)
class Pending:
    """A forwarded command: its first answer (a future), and ``later``, told of its acceptance by A2E
    synchronously as the answer is read, before the room's events that follow it are delivered."""

    owner: str
    first: asyncio.Future[dict[str, Any]]
    later: Later | None = None
    leaves: list[str] = field(default_factory=list)
    told: First | None = None  # also told of the first answer, as it is read
    since: float = field(default_factory=time.monotonic)


def _outcome() -> asyncio.Future[list[int]]:
    future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, if nobody waits
    return future


def _settle(future: asyncio.Future[list[int]], result: list[int] | BridgeError) -> None:
    if future.done():
        return
    if isinstance(result, BridgeError):
        future.set_exception(result)
    else:
        future.set_result(result)


class Forwarder:
    """The remote :class:`~bridge.rooms.handle.RoomHandle`: the mirrors' commands, to their owner."""

    def __init__(self, redis: Redis, leases: Leases, listener: Listener, me: str) -> None:
        self.redis, self.leases, self.listener, self.me = redis, leases, listener, me
        self.pending: dict[str, Pending] = {}
        self._forward = redis.register_script(FORWARD)

    async def start(self) -> None:
        await self.listener.subscribe(keys.replies(self.me), self.answered)

    def answered(self, data: str) -> None:
        """A reply from an owner (on this instance's one subscriber connection, in order)."""
        answer = json.loads(data)
        waiting = self.pending.get(answer["req"])
        if waiting is None:
            return
        waiting.leaves = answer.get("leaves", waiting.leaves)
        error = error_from(answer["error"]) if "error" in answer else None
        if answer["stage"] == "first":
            if error is not None or waiting.later is None:
                self.pending.pop(answer["req"], None)
            if not waiting.first.done():
                if error is not None:
                    waiting.first.set_exception(error)
                else:
                    waiting.first.set_result(answer)
                    if waiting.told is not None:
                        waiting.told(waiting, answer)
        else:
            self.pending.pop(answer["req"], None)
            if waiting.later is not None:
                waiting.later(error if error is not None else list(answer["positions"]))

    def owners_gone(self, alive: set[str]) -> None:
        """Fail what waits on owners that stopped (their heartbeat ran out), or waits far too long
        (its answer lost, e.g. with a Redis restarted meanwhile)."""
        too_old = time.monotonic() - ANSWER_MAX_WAIT
        for req, waiting in list(self.pending.items()):
            if (waiting.owner and waiting.owner not in alive) or waiting.since < too_old:
                self.pending.pop(req, None)
                failure = OutcomeUnknown("the instance running the room went away before confirming the command; "
                                         "it may or may not have been carried out")
                if not waiting.first.done():
                    waiting.first.set_exception(failure)
                elif waiting.later is not None:
                    waiting.later(failure)

    async def call(self, lr: LiveRoom, op: str, args: dict[str, Any], *, later: Later | None = None,
                   told: First | None = None) -> Pending:
        """Forward ``op``; return once the owner's first answer came (raising its error)."""
        req = secrets.token_hex(8)
        waiting = Pending("", asyncio.get_running_loop().create_future(), later, told=told)
        self.pending[req] = waiting
        try:
            waiting.owner = await self._send(lr.room.id, op, args, req)
            async with asyncio.timeout(FIRST_ANSWER_TIMEOUT):  # not wait_for: see bridge/webhooks/deliverer.py
                await asyncio.shield(waiting.first)
        except TimeoutError:
            self.pending.pop(req, None)
            raise OutcomeUnknown("the instance running the room did not answer") from None
        except BaseException:
            self.pending.pop(req, None)
            raise
        return waiting

    async def _send(self, room_id: str, op: str, args: dict[str, Any], req: str) -> str:
        """Into the owner's inbox; waits (about a lease) for a room between owners."""
        deadline = asyncio.get_running_loop().time() + self.leases.lease + 1
        while True:
            try:
                owner = await self._forward(keys=[keys.lease(room_id)], args=[
                    keys.inbox(""), INBOX_MAXLEN, room_id, op, json.dumps(args), self.me, req])
            except RedisError:
                raise RoomMoved("the instance running the room cannot be reached (Redis unreachable); retry") from None
            if owner:
                return str(owner)
            if asyncio.get_running_loop().time() > deadline:
                raise RoomMoved("no instance runs the room now; retry")
            await asyncio.sleep(0.05)

    # -- the handle ----------------------------------------------------------------------------
    async def submit(self, lr: LiveRoom, kind: CommandKind, text: str, *, origin: str | None = None,
                     queued: Told | None = None, then: Told | None = None,
                     written: Callable[[], None] | None = None) -> Queued:
        if written is not None:  # the request is the owner's to write: nothing to wait for here
            written()
        accepted = _outcome()
        made: list[Queued] = []

        def first(waiting: Pending, answer: dict[str, Any]) -> None:  # as it is read: before the room's events
            made.append(Queued(answer["utterance"], lambda: waiting.leaves, accepted))
            if queued is not None:
                queued(made[0])

        def settled(result: list[int] | BridgeError) -> None:
            _settle(accepted, result)
            if then is not None and made:
                then(made[0])  # at once: the ack goes out before the room's event about the command

        await self.call(lr, "submit", {"kind": kind, "text": text, "origin": self._origin(origin)},
                        later=settled, told=first)
        return made[0]

    async def stream_delta(self, lr: LiveRoom, key: str, text: str, *, origin: str | None = None) -> str:
        first = (await self.call(lr, "stream_delta", {"key": self._key(key), "text": text,
                                                       "origin": self._origin(origin)})).first.result()
        return str(first["utterance"])

    async def stream_end(self, lr: LiveRoom, key: str) -> StreamEnded:
        done = _outcome()
        waiting = await self.call(lr, "stream_end", {"key": self._key(key)}, later=lambda r: _settle(done, r))
        return StreamEnded(str(waiting.first.result()["utterance"]), done, lambda: list(waiting.leaves))

    async def stream_abort(self, lr: LiveRoom, key: str, reason: str) -> None:
        await self.call(lr, "stream_abort", {"key": self._key(key), "reason": reason})

    async def cancel(self, lr: LiveRoom, uid: str) -> list[str]:
        return list((await self.call(lr, "cancel", {"uid": uid})).first.result()["cancelled"])

    async def flush(self, lr: LiveRoom, *, origin: str | None = None) -> tuple[int, list[str]]:
        first = (await self.call(lr, "flush", {"origin": self._origin(origin)})).first.result()
        return int(first["flushed"]), list(first["dropped"])

    async def set_qa_context(self, lr: LiveRoom, text: str) -> str:
        return str((await self.call(lr, "set_qa_context", {"text": text})).first.result()["text"])

    async def utterance(self, lr: LiveRoom, uid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await self.call(lr, "utterance", {"uid": uid})).first.result()["utterance"]
        return found

    async def rtc_event(self, lr: LiveRoom, raw: dict[str, Any], *, source: str) -> None:
        await self.call(lr, "rtc_event", {"event": raw, "source": self._origin(source)})

    async def close(self, lr: LiveRoom, reason: CloseReason) -> Room:
        first = (await self.call(lr, "close", {"reason": reason.value})).first.result()
        return Room.from_record(first["room"])

    async def touch(self, room_id: str) -> None:
        """Clients of the room are here: its owner must not take it for idle."""
        await self._send(room_id, "touch", {}, secrets.token_hex(8))

    def _origin(self, origin: str | None) -> str | None:
        return None if origin is None else f"{self.me}/{origin}"

    def _key(self, key: str) -> str:
        return f"{self.me}/{key}"  # stream names are per connection: per instance too
