"""Redis plumbing of the cluster: one ordered writer for what this instance publishes, one
subscriber connection for what it listens to, and errors as they travel between instances.

Order is the point: replies to forwarded commands and room events leave through one connection in
the order they were produced, and arrive (on the other instance's one subscriber connection) in that
order, so a forwarded command's ack still precedes the room's event about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bridge.aio import cancel_and_wait
from bridge.errors import BridgeError, CapExceeded
from bridge.frames import ErrorCode

from .ownership import Outage

log = logging.getLogger("bridge.cluster")

Handler = Callable[[str], None]
FLUSH_SECONDS = 2.0


class Publisher:
    """PUBLISH and XADD in the order asked, pipelined by one background task. During a Redis outage
    what cannot be written is dropped (logged once): the rooms go on without it."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._items: deque[tuple[str, str, Any, int]] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()  # set each time the queue has been written out
        self.outage = Outage("publishing")
        self._task: asyncio.Task[None] | None = None

    def publish(self, channel: str, data: str, *, at: int | None = None) -> None:
        """``at``: where :meth:`mark` was (ahead of what was queued since, in the same loop step)."""
        if at is None:
            self._items.append(("pub", channel, data, 0))
        else:
            self._items.insert(at, ("pub", channel, data, 0))
        self._ready.set()

    def mark(self) -> int:
        return len(self._items)

    def append(self, stream: str, fields: dict[str, Any], maxlen: int) -> None:
        self._items.append(("xadd", stream, fields, maxlen))
        self._ready.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-publisher")

    async def flush(self) -> None:
        """Until what is queued now is written (at most ``FLUSH_SECONDS``)."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):  # not wait_for: see bridge/webhooks/deliverer.py
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._drained()

    async def aclose(self) -> None:
        """Write what is queued (briefly), then stop."""
        if self._task is None:
            return
        await self.flush()
        await cancel_and_wait(self._task)

    async def _drained(self) -> None:
        while self._items:
            self._idle.clear()
            await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._items:
                batch = [self._items.popleft() for _ in range(min(len(self._items), 512))]
                pipe = self.redis.pipeline(transaction=False)
                for kind, key, data, maxlen in batch:
                    if kind == "pub":
                        pipe.publish(key, data)
                    else:
                        pipe.xadd(key, data, maxlen=maxlen, approximate=True)
                try:
                    await pipe.execute()
                    self.outage.ok()
                except RedisError as exc:
                    self.outage.failed(exc)
            self._idle.set()


class Listener:
    """One subscriber connection; each channel's handler is called with each message, in order."""

    def __init__(self, redis: Redis) -> None:
        self.pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self.handlers: dict[str, Handler] = {}
        self.outage = Outage("subscriptions")
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self.handlers[channel] = handler
        await self.pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.handlers.pop(channel, None)
        with contextlib.suppress(RedisError):
            await self.pubsub.unsubscribe(channel)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-listener")

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        with contextlib.suppress(RedisError):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _run(self) -> None:
        while True:
            if not self.pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self.pubsub.get_message(timeout=1.0)
                self.outage.ok()
            except RedisError as exc:  # redis-py subscribes again on the next read
                self.outage.failed(exc)
                await asyncio.sleep(0.2)
                continue
            if message is None or message.get("type") != "message":
                continue
            handler = self.handlers.get(str(message["channel"]))
            if handler is not None:
                try:
                    handler(str(message["data"]))
                except Exception:  # one bad message must not stop the others
                    log.exception("cluster: a message on %s failed", message["channel"])


def error_fields(exc: BridgeError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "status": exc.status, "code": exc.code.value, "message": exc.message,
            "details": exc.details, "headers": exc.headers}


def _classes(cls: type[BridgeError]) -> dict[str, type[BridgeError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_classes(sub))
    return found


def error_from(fields: dict[str, Any]) -> BridgeError:
    """The error another instance raised, as the same class with the same status, code and details."""
    cls = _classes(BridgeError).get(str(fields.get("type")), BridgeError)
    exc = cls.__new__(cls)  # not through __init__: some take other arguments (CapExceeded's cap)
    BridgeError.__init__(exc, str(fields.get("message", "")), details=fields.get("details"),
                         headers=fields.get("headers") or None, code=ErrorCode(fields["code"]))
    exc.status = int(fields.get("status", cls.status))
    if isinstance(exc, CapExceeded):
        exc.cap = str((fields.get("details") or {}).get("cap"))
    return exc
