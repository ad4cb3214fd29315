"""Assembles the bridge: settings in, Starlette app out.

Side effects happen in the lifespan, each in a small async context manager, entered in this order
and left in reverse: the embedded simulator, the A2E client, the room store, the channel observers,
the rooms (recovered on the way in, left on the way out) and the sweeper.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from .a2e.client import A2EClient
from .http import events, ops, passthrough, rooms, ws
from .http.auth import Authenticator
from .http.responses import EXCEPTION_HANDLERS
from .rooms import Rooms
from .rooms.lifecycle import RoomLifecycle
from .rooms.observing import RoomObserving, choose_source, make_observer
from .rooms.registry import RoomRegistry
from .rooms.relay import Relay
from .rooms.store import RoomStore
from .rooms.sweeper import Sweeper
from .settings import Settings
from .simulator.app import create_simulator_app
from .simulator.embedded import served, simulator_config
from .store import open_store

log = logging.getLogger("bridge")

SIMULATOR_MOUNT = "/_a2e"

class ConfigurationError(RuntimeError):
    """The settings cannot give a safe service."""

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
        async with contextlib.AsyncExitStack() as stack:
            sim_url = await stack.enter_async_context(served(simulator)) if simulator is not None else None
            client = await stack.enter_async_context(a2e_client(settings, a2e, sim_url))
            if settings.dev_mode:
                log.warning("development mode: no BRIDGE_API_KEYS, every caller is tenant 'dev'")
            store = await stack.enter_async_context(room_store(settings))
            observing = await stack.enter_async_context(observers(settings, client))
            app.state.a2e = client
            app.state.event_source = observing.source
            app.state.rooms = room_domain(settings, client, store, observing)
            await stack.enter_async_context(app.state.rooms.lifecycle.running())
            await stack.enter_async_context(app.state.rooms.sweeper.running())
            yield

    routes: list[BaseRoute] = [*ops.routes, *rooms.routes, *events.routes, *ws.routes, *passthrough.routes,
                               *ops.site_routes]
    if simulator is not None:
        routes.append(Mount(SIMULATOR_MOUNT, app=simulator))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.settings = settings
    app.state.auth = Authenticator(
        settings.api_keys, dev_mode=settings.dev_mode, ticket_ttl=settings.ticket_ttl,
        ticket_secret=settings.ticket_secret.get_secret_value().encode() if settings.ticket_secret else None)
    return app

@contextlib.asynccontextmanager
async def a2e_client(settings: Settings, injected: A2EClient | None, sim_url: str | None) -> AsyncIterator[A2EClient]:
    """The injected client (its owner closes it), else one for the embedded simulator or for A2E."""
    if injected is not None:
        yield injected
        return
    if sim_url is not None:
        client = A2EClient("simulator-key", sim_url, timeout=settings.a2e_timeout,
                           max_attempts=settings.a2e_max_attempts)
        log.warning("A2E_API_KEY is not set: using the built-in A2E simulator at %s (inspect it at %s/_sim/state)",
                    sim_url, SIMULATOR_MOUNT)
    else:
        assert settings.a2e_api_key is not None
        client = A2EClient(settings.a2e_api_key.get_secret_value(), settings.a2e_base_url,
                           timeout=settings.a2e_timeout, max_attempts=settings.a2e_max_attempts)
        log.info("using A2E at %s", settings.a2e_base_url)
    try:
        yield client
    finally:
        await client.aclose()

@contextlib.asynccontextmanager
async def room_store(settings: Settings) -> AsyncIterator[RoomStore]:
    store = open_store(settings.db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()

@contextlib.asynccontextmanager
async def observers(settings: Settings, client: A2EClient) -> AsyncIterator[RoomObserving]:
    source = choose_source(settings.event_source, on_simulator=settings.uses_simulator)
    observing = RoomObserving(make_observer(source, a2e_base_url=client.base_url), source)
    log.info("room events come from: %s (BRIDGE_EVENT_SOURCE=%s)", source, settings.event_source)
    try:
        yield observing
    finally:
        await observing.aclose()

def room_domain(settings: Settings, client: A2EClient, store: RoomStore, observing: RoomObserving) -> Rooms:
    """The rooms, with their hooks wired once: an open room gets a command queue and an observer; a
    channel A2E forgot closes its room."""
    clock = time.time
    registry = RoomRegistry(store, clock=clock)
    lifecycle = RoomLifecycle(settings, client, store, registry, clock=clock)
    relay = Relay(settings, client, registry, on_upstream_gone=lifecycle.upstream_gone)
    lifecycle.on_open.extend([relay.open, observing.start])
    return Rooms(registry, lifecycle, relay, Sweeper(settings, registry, lifecycle, store, clock=clock))
