"""The Redis store's plumbing: one redis-py asyncio client (a connection pool that reconnects by
itself once Redis is back), the registered Lua scripts, and the one translation of Redis failures
into :class:`bridge.errors.StoreUnavailable`, so no raw Redis exception reaches a handler."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.errors import StoreUnavailable

from . import redis_scripts
from .redis_keys import Keys

P = ParamSpec("P")
T = TypeVar("T")
PING_TIMEOUT = 2.0
BATCH = 500  # ids per MGET/HMGET: one round trip each, none of them huge


def guarded(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a store call; a Redis failure (down, restarting, out of memory, read-only) becomes a 503
    StoreUnavailable. The Redis error stays as its cause for the traceback; its text names host and
    port at most, never the URL's password."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise StoreUnavailable() from exc

    return run


def chunks(items: list[str], size: int = BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


class RedisBase:
    def __init__(self, url: str, *, prefix: str = "a2eb:") -> None:
        self._url = url  # may carry a password: never logged nor put in an error
        self.keys = Keys(prefix)
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    @property
    def redis(self) -> Any:
        """The client. Typed Any: redis-py types each command's result as "str | bytes" (either
        decoding) and as sync-or-async at once, so every call would need a cast to say what
        ``decode_responses=True`` on the asyncio client guarantees."""
        if self._client is None:
            raise RuntimeError("RedisRoomStore is not open")
        return self._client

    def script(self, name: str) -> AsyncScript:
        """A registered script: redis-py runs it by its SHA and loads it again after a Redis restart."""
        return self._scripts[name]

    async def open(self) -> None:
        """Build the client; no connection is made yet, so a bridge starts (not ready) with Redis down."""
        if self._client is not None:
            return
        # Few, quick retries: a broken pooled connection after a Redis restart is replaced at once,
        # while a Redis that is down fails the call in well under a second (the default backoff would
        # hold a request for seconds).
        self._client = Redis.from_url(
            self._url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError])
        self._scripts = {name: self._client.register_script(getattr(redis_scripts, name))
                         for name in ("PUT", "RESERVE", "ENQUEUE", "UPDATE_DELIVERY", "CHARGE")}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        """False (never an exception) while Redis cannot answer."""
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT):  # not wait_for: see bridge/webhooks/deliverer.py
                return bool(await self._client.ping())
        except Exception:  # a readiness probe answers, whatever the client ran into
            return False
