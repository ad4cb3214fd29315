"""What is not a room: health and readiness probes, the avatar list, the OpenAPI document, metrics
and the kiosk page with its static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError
from bridge.errors import from_a2e
from bridge.metrics import metrics_endpoint
from bridge.rooms import Rooms

from .auth import Authenticator
from .responses import JSONResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "a2e-bridge", "version": "0.1.0"}})


async def avatars(request: Request) -> Response:
    """
    summary: The streaming avatars A2E offers
    responses:
      200: {description: "{avatars: [{_id, name, ...}]}"}
    """
    auth: Authenticator = request.app.state.auth
    auth.authenticate(request)
    a2e: A2EClient = request.app.state.a2e
    try:
        items = await a2e.streaming_avatars()
    except A2EError as exc:
        raise from_a2e(exc) from None
    return JSONResponse({"avatars": items})


async def healthz(request: Request) -> Response:
    """
    summary: The process is up
    responses:
      200: {description: ok}
    """
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """
    summary: Upstream reachable and the room store open
    responses:
      200: {description: ready}
      503: {description: "not ready, with the failing checks"}
    """
    rooms: Rooms = request.app.state.rooms
    a2e: A2EClient = request.app.state.a2e
    checks: dict[str, Any] = {"store": await rooms.registry.store.ping()}
    try:
        await a2e.remaining_coins()
        checks["a2e"] = True
    except A2EError as exc:
        checks["a2e"] = False
        checks["a2e_error"] = type(exc).__name__
    ready = checks["store"] and checks["a2e"]
    checks["live_rooms"] = len(rooms.registry.live)
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


async def openapi(request: Request) -> Response:
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


async def kiosk_page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/v1/avatars", avatars, methods=["GET"]),
]
site_routes: list[BaseRoute] = [
    Route("/openapi.json", openapi, include_in_schema=False),
    Route("/metrics", metrics_endpoint, include_in_schema=False),
    Route("/", kiosk_page, include_in_schema=False),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False, follow_symlink=True), name="static"),
]
