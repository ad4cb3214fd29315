"""JSON responses of the HTTP API: every body goes through :func:`bridge.frames.encode`, every error
through :func:`bridge.frames.error_body`."""

from __future__ import annotations

import logging
from typing import Any

from starlette import responses
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from bridge.errors import BridgeError
from bridge.frames import ErrorCode, encode, error_body

log = logging.getLogger("bridge")


class JSONResponse(responses.JSONResponse):
    """Starlette's JSONResponse, rendered by the protocol's one encoder (UTF-8 safe)."""

    def render(self, content: Any) -> bytes:
        return encode(content).encode("utf-8")


def error_response(exc: BridgeError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers)


async def on_bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    return error_response(exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method the app serves on the request's path, across its routes (one path may have a route
    per method: Starlette's own ``Allow`` names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, ErrorCode.HTTP_ERROR)
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(ErrorCode.INTERNAL_ERROR, "internal error"), status_code=500)


EXCEPTION_HANDLERS = {BridgeError: on_bridge_error, HTTPException: on_http_error, Exception: on_unexpected}
