"""A request id for every HTTP request and websocket handshake: bound to the log context for
everything logged while the request runs (uvicorn's access line included), and returned as
``X-Request-ID``. A caller's own ``X-Request-ID`` is kept when it is a short token (a proxy's or a
client's id, so lines can be matched across services); anything else is replaced.

A pure ASGI middleware, like the others here: ``BaseHTTPMiddleware`` would run the app in another
task (the log context would not reach it) and wrap streamed bodies.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import logs

HEADER = "X-Request-ID"
_GIVEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(scope: Scope) -> str:
    given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
    return given if _GIVEN.fullmatch(given) else uuid.uuid4().hex


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.http.response.start"):
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = logs.start_context(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.reset(token)
