"""Request body limits, as a pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and wrap
the body in its own stream).

A body over the limit is refused with 413 ``payload_too_large`` before the app parses it: at once
when ``Content-Length`` says so (the body is never read, and a client waiting on
``Expect: 100-continue`` never sends it), else while it streams in (chunked), as soon as the bytes
read pass the limit. Nothing beyond the limit is buffered: uvicorn pauses reading at 64 KiB
until the app asks for more, and the app only ever holds what this middleware let through.
After the 413 the server discards the rest of the body, so a client still sending it reads the
answer instead of a connection reset; ``bridge.http.guard.GuardedH11Protocol`` bounds that drain in bytes
and time and closes the connection past it.

:class:`TokenBucket` is the websocket's frame flood limit (``BRIDGE_WS_RATE_LIMIT``/``_BURST``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.errors import PayloadTooLarge
from bridge.frames import encode, error_body

log = logging.getLogger("bridge")

PASSTHROUGH_PREFIX = "/v1/a2e"


class BodyLimit:
    """Caps request bodies: ``passthrough`` bytes under ``/v1/a2e``, ``default`` bytes elsewhere."""

    def __init__(self, app: ASGIApp, *, default: int, passthrough: int) -> None:
        self.app = app
        self.default = default
        self.passthrough = passthrough

    def limit_for(self, path: str) -> int:
        if path == PASSTHROUGH_PREFIX or path.startswith(PASSTHROUGH_PREFIX + "/"):
            return self.passthrough
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return

        received = 0
        refused = False  # the body went over the limit: the 413 is (or will be) the answer
        app_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not app_started:
                        await _refuse(send, limit)
                    raise PayloadTooLarge(_message(limit), details={"max_bytes": limit})
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal app_started
            if refused:
                return  # the 413 went out instead of whatever the app answers to the exception
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            # Raised by (or because of) the PayloadTooLarge above, which the client has been told
            # about; an app that does not handle it (e.g. a mounted sub-app) must not log a 500.
            log.debug("request body over %d bytes on %s refused", limit, scope["path"], exc_info=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 has already refused a malformed one with 400
    return None


def _message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


async def _refuse(send: Send, limit: int) -> None:
    error = PayloadTooLarge(_message(limit), details={"max_bytes": limit})
    body = encode(error_body(error.code, error.message, error.details)).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class TokenBucket:
    """Frames per second with a burst allowance. Hand-written: ten lines, and the limiter
    libraries (aiolimiter, limits) wait for capacity, while we need an immediate yes/no."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
