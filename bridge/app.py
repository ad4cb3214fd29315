"""Assembles the bridge: settings in, Starlette app out.

Side effects happen in the lifespan, each in a small async context manager, entered in this order
and left in reverse: the embedded simulator, the A2E client, the room store, the channel observers,
the brains (``BRIDGE_BRAINS``), the rooms' record writer, the usage ledger, the webhook deliverer, the rooms
(recovered on the way in, left on the way out), with ``BRIDGE_REDIS_URL`` the cluster (rooms owned,
adopted and handed over among instances), the sweeper and the kiosks' warm rooms.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount

from .a2e.client import A2EClient
from .cluster import Cluster
from .errors import BridgeError
from .http import commands, events, journal, kiosk, openapi, operator, ops, passthrough, rooms, ws
from .http.auth import DEV_TENANT, Authenticator
from .http.limits import BodyLimit
from .http.origins import OriginPolicy
from .http.request_id import RequestId
from .http.responses import EXCEPTION_HANDLERS, error_response
from .http.scopes import HttpOnly, ServerSend
from .http.security_headers import SecurityHeaders
from .metrics import record_a2e_call
from .rooms import Rooms
from .rooms.answers import Answering
from .rooms.brains import build_brains
from .rooms.clients import ClientRegistry
from .rooms.handle import LocalHandle, RoomHandles
from .rooms.lifecycle import RoomLifecycle
from .rooms.observing import RoomObserving, choose_source, make_observer
from .rooms.registry import Clock, RoomRegistry
from .rooms.relay import Relay
from .rooms.store import RoomStore
from .rooms.sweeper import Sweeper
from .rooms.transcript import Transcripts
from .rooms.usage import UsageLedger
from .rooms.warm import WarmPool
from .rooms.writer import SerialWriter
from .settings import ConfigurationError, Settings
from .simulator.embedded import EmbeddedSimulator, Refusal, simulator_config
from .store import open_store
from .webhooks import Deliverer, Notifier

__all__ = ["ConfigurationError", "SIMULATOR_MOUNT", "create_app"]

log = logging.getLogger("bridge")

SIMULATOR_MOUNT = "/_a2e"


def create_app(settings: Settings | None = None, *, a2e: A2EClient | None = None,
               clock: Clock = time.time) -> Starlette:
    """The bridge app. With no A2E key (and no injected client) it embeds the simulator. ``clock``
    is the rooms' time (tests move a fake one instead of sleeping)."""
    settings = settings or Settings()
    if not settings.uses_simulator and not settings.api_keys and not settings.browser_keys and a2e is None:
        raise ConfigurationError(
            "A2E_API_KEY is set but BRIDGE_API_KEYS is empty: refusing to expose a paid A2E account "
            "without client keys (set BRIDGE_API_KEYS=tenant:key,...)")
    # its own random key, which only this process holds (see bridge/simulator/embedded.py)
    simulator = EmbeddedSimulator(simulator_config(settings)) if settings.uses_simulator and a2e is None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if simulator is not None:
                await stack.enter_async_context(simulator.running())
            client = await stack.enter_async_context(a2e_client(settings, a2e, simulator))
            if settings.dev_mode:
                log.warning("development mode: no BRIDGE_API_KEYS, every caller is tenant 'dev'")
            store = await stack.enter_async_context(room_store(settings))
            observing = await stack.enter_async_context(
                observers(settings, client, upstream_key(settings, a2e, simulator)))
            answering = await stack.enter_async_context(brains(settings))
            app.state.a2e = client
            app.state.event_source = observing.source
            app.state.rooms = room_domain(settings, client, store, observing, clock, answering)
            app.state.deliverer = webhooks(settings, app.state.rooms, store)
            # entered before the rooms, so left after them: what closing rooms record is written
            await stack.enter_async_context(app.state.rooms.transcripts.writer.running())
            await stack.enter_async_context(app.state.rooms.usage.running())
            await stack.enter_async_context(app.state.deliverer.running())
            # many instances (BRIDGE_REDIS_URL): rooms are adopted by the ownership scan, not recovered
            cluster = Cluster(settings, app.state.rooms) if settings.redis_url else None
            app.state.cluster = cluster
            await stack.enter_async_context(app.state.rooms.lifecycle.running(recover=cluster is None))
            if cluster is not None:  # left first: hands the rooms over, or leaves them as the last instance
                await stack.enter_async_context(cluster.running())
            await stack.enter_async_context(app.state.rooms.sweeper.running())
            await stack.enter_async_context(app.state.rooms.warm.running())
            yield

    routes: list[BaseRoute] = [*ops.routes, *rooms.routes, *commands.routes, *events.routes, *ws.routes,
                               *passthrough.routes, *journal.routes, *kiosk.routes, *operator.routes, *openapi.routes,
                               *operator.site_routes, *ops.site_routes]
    if simulator is not None:
        routes.append(Mount(SIMULATOR_MOUNT, app=simulator.mount(simulator_controls)))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Outermost first. ServerSend keeps the server's send for websocket frames (scopes.py). The
        # request id wraps everything (every answer carries it); CORS answers preflights before the body
        # limit and the routes (auth) see them, and adds its headers to every answer, a 413 included,
        # so that a page can read the error.
        # The HTTP-only ones never see a websocket (they would be held for the socket's lifetime).
        middleware=[Middleware(ServerSend), Middleware(RequestId),
                    Middleware(HttpOnly, CORSMiddleware, allow_origins=settings.every_allowed_origin(),
                               allow_methods=["GET", "POST", "PUT", "DELETE"],
                               allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
                               expose_headers=["X-Request-ID", "Retry-After"], allow_credentials=False,
                               max_age=600),
                    Middleware(HttpOnly, SecurityHeaders, sdk_url=settings.agora_sdk_url,
                               agora_connect_src=settings.agora_connect_src),
                    Middleware(HttpOnly, BodyLimit, default=settings.max_body_bytes,
                               passthrough=settings.max_passthrough_body_bytes)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    app.state.cluster = None  # the Cluster, set in the lifespan when BRIDGE_REDIS_URL is set
    app.state.kiosk_page = ops.render_kiosk_page(settings)
    app.state.kiosk_mode_page = ops.render_kiosk_page(settings, kiosk.PAGE)
    app.state.simulator = simulator  # the embedded EmbeddedSimulator, or None
    app.state.auth = Authenticator(
        settings.api_keys, dev_mode=settings.dev_mode, ticket_ttl=settings.ticket_ttl,
        ticket_max_life=settings.ticket_max_life, browser_keys=settings.browser_keys,
        origins=OriginPolicy(settings),
        ticket_secret=settings.ticket_secret.get_secret_value().encode() if settings.ticket_secret else None,
        operator_key=settings.operator_key.get_secret_value() if settings.operator_key else None)
    return app


def simulator_controls(conn: HTTPConnection) -> Refusal | None:
    """Who may use the embedded simulator's controls under ``/_a2e``: the pass-through's trusted
    tenants (anyone in development mode); others get the bridge's refusal."""
    try:
        passthrough.require_trusted(conn, "the simulator's controls")
    except BridgeError as exc:
        return Refusal(exc.message, error_response(exc))
    return None


def upstream_key(settings: Settings, injected: A2EClient | None, simulator: EmbeddedSimulator | None) -> str | None:
    """The key the bridge's own calls present upstream, its event observer's too: the embedded
    simulator's per-process key, else the A2E key (an external simulator wants it); none for an
    injected client."""
    if injected is not None:
        return None
    if simulator is not None:
        return simulator.key
    assert settings.a2e_api_key is not None
    return settings.a2e_api_key.get_secret_value()


@contextlib.asynccontextmanager
async def a2e_client(settings: Settings, injected: A2EClient | None,
                     simulator: EmbeddedSimulator | None) -> AsyncIterator[A2EClient]:
    """The injected client (its owner closes it), else one for the embedded simulator or for A2E.
    Either way its calls are counted in /metrics (the client reports them through its hook)."""
    if injected is not None:
        if injected.on_call is None:
            injected.on_call = record_a2e_call
        yield injected
        return
    key = upstream_key(settings, injected, simulator)
    assert key is not None
    if simulator is not None:
        assert simulator.base_url is not None
        client = A2EClient.from_settings(settings, api_key=key, base_url=simulator.base_url,
                                         on_call=record_a2e_call)
        log.warning("A2E_API_KEY is not set: using the built-in A2E simulator at %s (inspect it at %s/_sim/state)",
                    simulator.base_url, SIMULATOR_MOUNT)
    else:
        client = A2EClient.from_settings(settings, api_key=key, on_call=record_a2e_call)
        log.info("using A2E at %s", settings.a2e_base_url)
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def room_store(settings: Settings) -> AsyncIterator[RoomStore]:
    store = open_store(settings.redis_url or settings.db)  # Redis: the registry every instance shares
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def observers(settings: Settings, client: A2EClient, api_key: str | None) -> AsyncIterator[RoomObserving]:
    source = choose_source(settings.event_source, on_simulator=settings.uses_simulator)
    observing = RoomObserving(make_observer(source, a2e_base_url=client.base_url, api_key=api_key), source)
    log.info("room events come from: %s (BRIDGE_EVENT_SOURCE=%s)", source, settings.event_source)
    try:
        yield observing
    finally:
        await observing.aclose()


@contextlib.asynccontextmanager
async def brains(settings: Settings) -> AsyncIterator[Answering]:
    """The brains of BRIDGE_BRAINS (their keys read from the environment now), closed on the way out."""
    answering = Answering(build_brains(settings))
    if answering.brains:
        log.info("brains: %s", ", ".join(sorted(answering.brains)))
    try:
        yield answering
    finally:
        await answering.aclose()


def room_domain(settings: Settings, client: A2EClient, store: RoomStore, observing: RoomObserving,
                clock: Clock, answering: Answering | None = None) -> Rooms:
    """The rooms, with their hooks wired once: an open room gets a command queue and an observer; a
    channel A2E forgot closes its room. Warm rooms of profiles that name no tenant belong to
    development mode's tenant (the settings refuse such profiles when there are client keys)."""
    clients = ClientRegistry(per_room=settings.max_clients_per_room, per_ticket=settings.max_clients_per_ticket,
                             per_tenant=settings.max_clients_per_tenant)
    registry = RoomRegistry(store, clients, clock=clock)
    lifecycle = RoomLifecycle(settings, client, store, registry, clock=clock)
    relay = Relay(settings, client, registry, on_upstream_gone=lifecycle.upstream_gone, answering=answering)
    writer = SerialWriter("journal")  # one order for everything recorded about rooms
    transcripts = Transcripts(store, writer, clock=clock, batch_seconds=settings.transcript_batch_seconds)
    usage = UsageLedger(settings, store, writer, client, clock=clock)
    lifecycle.on_open.extend([relay.open, observing.start, transcripts.watch, usage.charged])
    lifecycle.on_closing.append(relay.closing)
    lifecycle.on_closed.append(usage.refunded)
    relay.on_sent.append(transcripts.sent)
    relay.on_flushed.append(transcripts.flushed)
    sweeper = Sweeper(settings, registry, lifecycle, store, clock=clock)
    warm = WarmPool(settings, lifecycle, registry, default_tenant=DEV_TENANT if settings.dev_mode else None, clock=clock,
                    check_brain=relay.answering.check)
    return Rooms(registry, lifecycle, relay, sweeper, transcripts, usage, warm, RoomHandles(LocalHandle(relay, lifecycle)))


def webhooks(settings: Settings, rooms: Rooms, store: RoomStore) -> Deliverer:
    """Room events into the outbox (after the ledger's hooks, so ``room.closed`` carries the usage),
    and the deliverer woken by each one."""
    notifier = Notifier(settings, store, rooms.transcripts.writer)
    deliverer = Deliverer(settings, store)
    rooms.lifecycle.on_open.append(notifier.opened)
    rooms.lifecycle.on_closed.append(notifier.closed)
    rooms.sweeper.on_expiring.append(notifier.expiring)
    rooms.usage.on_spend_threshold.append(notifier.spend)
    notifier.on_enqueued.append(deliverer.wake)
    return deliverer
