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


SERVER_SEND = "bridge.server_send"  # the scope key of the server's own ``send`` (see ServerSend)


class ServerSend:
    """Keeps a websocket's server ``send`` in its scope (``scope[SERVER_SEND]``), for the frames the
    room socket writes. The wrappers between it and the route are for other messages: the request
    id's adds a header to the handshake, Starlette's exception wrapper (a coroutine per message)
    watches for an HTTP response's start. A frame goes to every client of a room, so it skips both
    (issue 12); the handshake and the close still go through them. Outermost of the middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        return self.app(scope, receive, send)
