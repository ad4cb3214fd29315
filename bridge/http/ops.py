"""What is not a room: health and readiness probes, the avatar list, metrics and the kiosk page with
its static files (the OpenAPI document and /docs: :mod:`bridge.http.openapi`)."""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EAuthError, A2EError
from bridge.errors import Unauthorized, from_a2e
from bridge.metrics import metrics_endpoint
from bridge.rooms import Rooms
from bridge.settings import ConfigurationError, Settings

from .auth import Authenticator
from .models import AvatarList, Health, Ready, ReadyChecks
from .openapi import A2E_STATUSES, operation
from .responses import JSONResponse

CALLS_A2E = dict.fromkeys(A2E_STATUSES, "")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
KEY_REFUSED = A2EAuthError.__name__
log = logging.getLogger("bridge")

@operation(summary="The streaming avatars A2E offers", answer=AvatarList, tag="a2e", errors=CALLS_A2E)
async def avatars(request: Request) -> Response:
    auth: Authenticator = request.app.state.auth
    auth.authenticate(request)
    a2e: A2EClient = request.app.state.a2e
    try:
        items = await a2e.streaming_avatars()
    except A2EError as exc:
        raise from_a2e(exc) from None
    return JSONResponse(AvatarList(avatars=items).model_dump(mode="json"))


@operation(summary="The process is up", answer=Health, auth=False, tag="operations")
async def healthz(request: Request) -> Response:
    return JSONResponse(Health().model_dump(mode="json"))


class UpstreamCheck:
    """A2E's reachability for ``/readyz``, which anyone may call: the answer is kept
    ``BRIDGE_READY_CACHE_SECONDS`` and concurrent probes share the one call in flight, so a flood
    of probes costs A2E at most one call per period.

    Hand-written: the async caching libraries (async-lru, aiocache) do not keep failures, and a
    failing A2E is exactly when it must not be asked on every probe.
    """

    def __init__(self, a2e: A2EClient, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.a2e, self.ttl, self.clock = a2e, ttl, clock
        self._result: str | None = None  # None: reachable; else the A2E error's class name
        self._checked_at = -math.inf
        self._inflight: asyncio.Future[str | None] | None = None

    async def result(self) -> str | None:
        if self.clock() - self._checked_at < self.ttl:
            return self._result
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._check())
        # shield: a probe that hangs up must not cancel the check the others wait for
        return await asyncio.shield(self._inflight)

    async def _check(self) -> str | None:
        try:
            await self.a2e.remaining_coins()
            result = None
        except A2EError as exc:
            result = type(exc).__name__
        finally:
            self._inflight = None
        if result == KEY_REFUSED and self._result != KEY_REFUSED:  # once per refusal, not per probe
            log.error("A2E refuses the bridge's key (A2E_API_KEY): every A2E call fails until it is fixed")
        self._result, self._checked_at = result, self.clock()
        return result


def upstream_check(request: Request) -> UpstreamCheck:
    state, client = request.app.state, request.app.state.a2e
    check: UpstreamCheck | None = getattr(state, "upstream_check", None)
    if check is None or check.a2e is not client:  # made on first use, for the client of this run
        check = state.upstream_check = UpstreamCheck(client, state.settings.ready_cache_seconds)
    return check


@operation(summary="A2E reachable (and taking the bridge's key) and the room store open; A2E is asked at most "
                   "every BRIDGE_READY_CACHE_SECONDS", answer=Ready, auth=False, tag="operations",
           description="503 (not ready) answers the same body, with the failing checks.", also_answers=(503,),
           errors={503: "not ready (the same body as 200, with the failing checks)"})
async def readyz(request: Request) -> Response:
    rooms: Rooms = request.app.state.rooms
    checks: dict[str, Any] = {"store": await rooms.registry.store.ping()}
    a2e_error = await upstream_check(request).result()
    checks["a2e"] = a2e_error is None
    if a2e_error is not None:
        checks["a2e_error"] = a2e_error
    if a2e_error == KEY_REFUSED:
        checks["a2e_message"] = "A2E refuses the bridge's key: the operator must set a valid A2E_API_KEY"
    ready = checks["store"] and checks["a2e"]
    cluster = request.app.state.cluster
    if cluster is not None:  # a peer's forwarded command needs this instance's inbox and its reply channel
        checks["cluster"] = cluster.connected
        ready = ready and checks["cluster"]
    checks["live_rooms"] = len(rooms.registry.live)
    body = Ready(status="ready" if ready else "not_ready", checks=ReadyChecks(**checks))
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """The metrics; with ``BRIDGE_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``
    (a scraper's token, distinct from the client keys)."""
    token = request.app.state.settings.metrics_token
    expected = token.get_secret_value() if token is not None else ""
    if expected:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise Unauthorized("/metrics needs Authorization: Bearer <BRIDGE_METRICS_TOKEN>",
                               headers={"WWW-Authenticate": "Bearer"})
    return await metrics_endpoint(request)


# index.html carries this empty marker; the page route fills it in from the settings.
KIOSK_SDK_MARKER = 'data-agora-sdk="" data-agora-sdk-integrity=""'


def render_kiosk_page(settings: Settings, name: str = "index.html") -> str:
    """A page of bridge/static (the console, index.html, by default) with the Agora Web SDK's URL and
    integrity hash as data attributes on <html>: the page learns them from the server (no inline
    script, nothing taken from its own URL)."""
    page = (STATIC_DIR / name).read_text(encoding="utf-8")
    if KIOSK_SDK_MARKER not in page:
        raise ConfigurationError(f"bridge/static/{name} lost its {KIOSK_SDK_MARKER} marker")
    filled = (f'data-agora-sdk="{html.escape(settings.agora_sdk_url)}" '
              f'data-agora-sdk-integrity="{html.escape(settings.agora_sdk_integrity or "")}"')
    return page.replace(KIOSK_SDK_MARKER, filled, 1)


async def kiosk_page(request: Request) -> Response:
    """The page as rendered once by the app (``app.state.kiosk_page``)."""
    return HTMLResponse(request.app.state.kiosk_page, headers={"Cache-Control": "no-cache"})


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/v1/avatars", avatars, methods=["GET"]),
]
site_routes: list[BaseRoute] = [
    Route("/metrics", metrics, methods=["GET"], include_in_schema=False),
    Route("/", kiosk_page, methods=["GET"], include_in_schema=False),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False, follow_symlink=True), name="static"),
]
