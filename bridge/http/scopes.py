"""Middleware that only HTTP requests go through.

A websocket stays inside the ASGI app for as long as its socket is open, so every middleware that
awaits the app for it keeps a coroutine frame (and what its closures hold) alive that long: a
kilobyte or so per socket, ten thousand times over in a process holding ten thousand sockets. The
bridge's HTTP middlewares (CORS, security headers, body limits) do nothing for a websocket:
:class:`HttpOnly` hands every other scope straight to the app, returning the app's awaitable rather
than awaiting it (an ASGI app is anything whose call can be awaited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpOnly:
    """``HttpOnly(app, middleware, **options)``: ``middleware(app, **options)`` for HTTP, ``app`` for
    the rest (websockets, lifespan)."""

    def __init__(self, app: ASGIApp, middleware: Callable[..., ASGIApp], /, **options: Any) -> None:
        self.app = app
        self.http = middleware(app, **options)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return (self.http if scope["type"] == "http" else self.app)(scope, receive, send)
