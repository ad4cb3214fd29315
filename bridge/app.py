"""Assembles the bridge: settings in, Starlette app out. Side effects happen in the lifespan."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from .a2e.client import A2EClient
from .http import passthrough
from .http import rooms as api
from .http.auth import Authenticator
from .http.responses import EXCEPTION_HANDLERS, JSONResponse
from .metrics import metrics_endpoint
from .rooms import Rooms
from .rooms.lifecycle import RoomLifecycle
from .rooms.observing import RoomObserving, choose_source, make_observer
from .rooms.registry import RoomRegistry
from .rooms.relay import Relay
from .rooms.sweeper import Sweeper
from .serving import EmbeddedServer
from .settings import Settings
from .simulator.app import create_simulator_app
from .simulator.state import SimConfig
from .store import open_store

log = logging.getLogger("bridge")

SIMULATOR_MOUNT = "/_a2e"
STATIC_DIR = Path(__file__).resolve().parent / "static"

schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "a2e-bridge", "version": "0.1.0"}})


class ConfigurationError(RuntimeError):
    """The settings cannot give a safe service."""


async def openapi(request: Request) -> Response:
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


async def kiosk_page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def simulator_config(settings: Settings) -> SimConfig:
    return SimConfig(coins=settings.sim_coins, max_channels=settings.sim_max_channels,
                     task_step_seconds=settings.sim_task_step_seconds,
                     seconds_per_char=settings.sim_seconds_per_char)


def create_app(settings: Settings | None = None, *, a2e: A2EClient | None = None) -> Starlette:
    """The bridge app. With no A2E key (and no injected client) it embeds the simulator."""
    settings = settings or Settings()
    if not settings.uses_simulator and not settings.api_keys and a2e is None:
        raise ConfigurationError(
            "A2E_API_KEY is set but BRIDGE_API_KEYS is empty: refusing to expose a paid A2E account "
            "without client keys (set BRIDGE_API_KEYS=tenant:key,...)")
    simulator = create_simulator_app(simulator_config(settings)) if settings.uses_simulator and a2e is None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim_server = None
        client = a2e
        if client is None and simulator is not None:
            sim_server = EmbeddedServer.for_app(simulator)
            base_url = await sim_server.start()
            client = A2EClient("simulator-key", base_url, timeout=settings.a2e_timeout,
                               max_attempts=settings.a2e_max_attempts)
            log.warning("A2E_API_KEY is not set: using the built-in A2E simulator at %s (inspect it at %s/_sim/state)",
                        base_url, SIMULATOR_MOUNT)
        elif client is None:
            assert settings.a2e_api_key is not None
            client = A2EClient(settings.a2e_api_key.get_secret_value(), settings.a2e_base_url,
                               timeout=settings.a2e_timeout, max_attempts=settings.a2e_max_attempts)
            log.info("using A2E at %s", settings.a2e_base_url)
        if settings.dev_mode:
            log.warning("development mode: no BRIDGE_API_KEYS, every caller is tenant 'dev'")
        store = open_store(settings.db)
        await store.open()
        clock = time.time
        registry = RoomRegistry(store, clock=clock)
        lifecycle = RoomLifecycle(settings, client, store, registry, clock=clock)
        relay = Relay(settings, client, registry, on_upstream_gone=lifecycle.upstream_gone)
        sweeper = Sweeper(settings, registry, lifecycle, store, clock=clock)
        source = choose_source(settings.event_source, on_simulator=settings.uses_simulator)
        observing = RoomObserving(make_observer(source, a2e_base_url=client.base_url), source)
        lifecycle.on_open.extend([relay.open, observing.start])
        log.info("room events come from: %s (BRIDGE_EVENT_SOURCE=%s)", source, settings.event_source)
        app.state.rooms = Rooms(registry, lifecycle, relay, sweeper)
        app.state.a2e = client
        app.state.event_source = source
        try:
            async with lifecycle.running(), sweeper.running():
                yield
        finally:
            await observing.aclose()
            await store.close()
            if a2e is None:
                await client.aclose()
            if sim_server is not None:
                await sim_server.stop()

    routes: list[Any] = [
        *api.routes,
        *passthrough.routes,
        Route("/openapi.json", openapi, include_in_schema=False),
        Route("/metrics", metrics_endpoint, include_in_schema=False),
        Route("/", kiosk_page, include_in_schema=False),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False, follow_symlink=True), name="static"),
    ]
    if simulator is not None:
        routes.append(Mount(SIMULATOR_MOUNT, app=simulator))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    app.state.auth = Authenticator(
        settings.api_keys, dev_mode=settings.dev_mode, ticket_ttl=settings.ticket_ttl,
        ticket_secret=settings.ticket_secret.get_secret_value().encode() if settings.ticket_secret else None)
    return app
