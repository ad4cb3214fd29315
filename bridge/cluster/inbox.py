"""The owner's side of forwarded commands: this instance's inbox stream, read by one task.

Each command is carried out with the local handle, the same code path as a client connected here,
in the order the inbox holds them (what other instances forwarded for a room keeps its order); the
answers leave through the ordered publisher, so an ack precedes the room's event about its command.
Commands that wait on A2E for their one answer (QA context, close) run in tasks of their own and do
not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bridge.errors import BridgeError, RoomMoved
from bridge.rooms.handle import LocalHandle, Queued
from bridge.rooms.models import TERMINAL_STATES, CloseReason
from bridge.rooms.registry import LiveRoom, RoomRegistry

from . import keys
from .ownership import Outage
from .wire import Publisher, error_fields

log = logging.getLogger("bridge.cluster")

SLOW_OPS = frozenset({"set_qa_context", "close"})


class Inbox:
    def __init__(self, redis: Redis, registry: RoomRegistry, local: LocalHandle, publisher: Publisher,
                 me: str) -> None:
        self.redis, self.registry, self.local, self.publisher, self.me = redis, registry, local, publisher, me
        self.outage = Outage("inbox")
        self._slow: set[asyncio.Task[None]] = set()
        self._at: int | None = None  # where a fast command's first answer goes in the publisher's queue

    async def run(self) -> None:
        key = keys.inbox(self.me)
        last = "0-0"
        started = False
        while True:
            try:
                if not started:
                    await self.redis.delete(key)  # a previous run's leftovers: their senders gave up on them
                    started = True
                found: Any = await self.redis.xread({key: last}, block=1000, count=512)
                self.outage.ok()
            except RedisError as exc:
                # ``last`` stays: an id is Redis's clock in ms, so a Redis that restarted empty gives the
                # commands sent to it after the restart ids past ``last``. (Starting over from an emptied
                # inbox, as this once did, deleted what peers forwarded before this loop came back.)
                self.outage.failed(exc)
                await asyncio.sleep(0.2)
                continue
            for _, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id
                    await self.execute(fields)

    def reply(self, fields: dict[str, Any], stage: str, body: dict[str, Any], *, at: int | None = None) -> None:
        self.publisher.publish(keys.replies(fields["reply"]), json.dumps({"req": fields["req"], "stage": stage, **body}),
                               at=at)

    def failed(self, fields: dict[str, Any], stage: str, exc: BaseException, *, at: int | None = None) -> None:
        if not isinstance(exc, BridgeError):
            log.error("forwarded %s failed", fields.get("op"), exc_info=exc)
            exc = BridgeError("internal error")
        self.reply(fields, stage, {"error": error_fields(exc)}, at=at)

    def first(self, fields: dict[str, Any], body: dict[str, Any]) -> None:
        self.reply(fields, "first", body, at=self._at)

    async def execute(self, fields: dict[str, Any]) -> None:
        lr = self.registry.live.get(fields["room"])
        op = fields["op"]
        if op == "touch":
            if lr is not None:
                self.registry.touch(lr)
            return
        args = json.loads(fields["args"])
        if lr is None:
            await self._elsewhere(fields, op)
            return
        if op in SLOW_OPS:
            task = asyncio.create_task(self._slow_op(lr, fields, op, args))
            self._slow.add(task)
            task.add_done_callback(self._slow.discard)
            return
        # The first answer goes ahead of the room's events the command caused meanwhile (its
        # utterance), as a client connected here gets its answer first (no await in between).
        self._at = self.publisher.mark()
        try:
            await self._op(lr, fields, op, args)
        except Exception as exc:
            self.failed(fields, "first", exc, at=self._at)
        finally:
            self._at = None

    async def _elsewhere(self, fields: dict[str, Any], op: str) -> None:
        """Not a room of this instance (any longer): a closed one is answered as it is."""
        if op == "close":
            room = await self.registry.store.get(fields["room"])
            if room is not None and room.state in TERMINAL_STATES:
                self.reply(fields, "first", {"room": room.to_record()})
                return
        self.failed(fields, "first", RoomMoved("the room moved to another instance; retry"))

    async def _op(self, lr: LiveRoom, fields: dict[str, Any], op: str, args: dict[str, Any]) -> None:
        local = self.local
        if op == "submit":
            def accepted(q: Queued) -> None:
                if (exc := q.accepted.exception()) is not None:
                    self.failed(fields, "later", exc)
                else:
                    self.reply(fields, "later", {"positions": q.accepted.result(), "leaves": q.leaves()})

            sub = await local.submit(lr, args["kind"], args["text"], origin=args["origin"], then=accepted)
            self.first(fields, {"utterance": sub.utterance, "leaves": sub.leaves()})
        elif op == "stream_delta":
            uid = await local.stream_delta(lr, args["key"], args["text"], origin=args["origin"])
            self.first(fields, {"utterance": uid})
        elif op == "stream_end":
            end = await local.stream_end(lr, args["key"])
            self.first(fields, {"utterance": end.utterance})

            def done(f: asyncio.Future[list[int]]) -> None:
                if (exc := f.exception()) is not None:
                    self.failed(fields, "later", exc)
                else:
                    self.reply(fields, "later", {"positions": f.result(), "leaves": end.pieces()})

            end.done.add_done_callback(done)
        elif op == "stream_abort":
            await local.stream_abort(lr, args["key"], args["reason"])
            self.first(fields, {})
        elif op == "cancel":
            self.first(fields, {"cancelled": await local.cancel(lr, args["uid"])})
        elif op == "flush":
            flushed, dropped = await local.flush(lr, origin=args["origin"])
            self.first(fields, {"flushed": flushed, "dropped": dropped})
        elif op == "utterance":
            self.first(fields, {"utterance": await local.utterance(lr, args["uid"])})
        elif op == "rtc_event":
            await local.rtc_event(lr, args["event"], source=args["source"])
            self.first(fields, {})
        else:
            raise BridgeError(f"unknown forwarded command {op!r}")

    async def _slow_op(self, lr: LiveRoom, fields: dict[str, Any], op: str, args: dict[str, Any]) -> None:
        try:
            if op == "set_qa_context":
                self.reply(fields, "first", {"text": await self.local.set_qa_context(lr, args["text"])})
            else:
                room = await self.local.close(lr, CloseReason(args["reason"]))
                self.reply(fields, "first", {"room": room.to_record()})
        except Exception as exc:
            self.failed(fields, "first", exc)
