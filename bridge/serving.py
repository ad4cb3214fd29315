"""Running the bridge with uvicorn: ``run(settings)`` is what ``a2e-bridge serve`` does, with the one
uvicorn configuration built from settings by :func:`server_config`.

The main server guards its sockets (:mod:`bridge.http.guard`): a connection must complete its
request headers within ``BRIDGE_HEADER_TIMEOUT`` seconds, idle keep-alive connections close after
``BRIDGE_KEEPALIVE_TIMEOUT``, accepted client connections are capped (``BRIDGE_MAX_CONNECTIONS``,
by default derived from the descriptor limit with a reserve left for outbound A2E calls, the store
and logs), and descriptor exhaustion at accept is logged once per interval. Development mode
listens only on loopback unless allowed (:func:`check_bind`).

``EmbeddedServer`` (uvicorn inside a running loop) lives beside the simulator it embeds; it is
importable from here too.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import socket
import sys
from typing import Any

import uvicorn

from .a2e.client import A2EClient
from .a2e.errors import A2EAuthError, A2EError
from .app import create_app
from .http.guard import (
    DescriptorExhaustionFilter,
    GuardedH11Protocol,
    ServerConfig,
    install_descriptor_exhaustion_filter,
)
from .logs import log_config
from .settings import ConfigurationError, Settings
from .simulator.embedded import EmbeddedServer

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "WS_IMPLEMENTATION",
    "WS_PER_MESSAGE_DEFLATE",
    "ConfigurationError",
    "DescriptorExhaustionFilter",
    "EmbeddedServer",
    "GuardedH11Protocol",
    "check_a2e_key",
    "check_bind",
    "connection_limit",
    "install_descriptor_exhaustion_filter",
    "is_loopback",
    "run",
    "server_config",
]

log = logging.getLogger("bridge")

# uvicorn's websocket implementation and permessage-deflate, chosen by figures (bench/scale.py memory
# and fanout, bench/relay_latency.py; README, Benchmarks). wsproto holds an idle socket in the least
# memory (about 2.5 KiB less than websockets-sansio, 10 KiB less than the legacy websockets one) at
# the same latency and fan-out CPU. No permessage-deflate: its zlib state is ~40 KiB per client that
# asks for it (every browser does), more than the rest of the connection, for frames of a few
# hundred bytes.
WS_IMPLEMENTATION = "wsproto"
WS_PER_MESSAGE_DEFLATE = False
MIN_FD_RESERVE = 100  # descriptors always kept free of client connections: A2E pool, store, logs
STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server could not start


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost":  # RFC 6761: always loopback
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_bind(settings: Settings, host: str) -> None:
    """Development mode makes every caller tenant ``dev``: only on loopback, unless allowed."""
    if not settings.dev_mode or is_loopback(host):
        return
    if not settings.allow_network_dev_mode:
        raise ConfigurationError(
            f"refusing to listen on {host!r} in development mode (no BRIDGE_API_KEYS and no A2E_API_KEY): "
            "every caller on the network would be tenant 'dev'. Listen on 127.0.0.1, set BRIDGE_API_KEYS, "
            "or set BRIDGE_ALLOW_NETWORK_DEV_MODE=true to allow it anyway")
    log.warning("development mode on the network address %s (BRIDGE_ALLOW_NETWORK_DEV_MODE=true): ANYONE who "
                "can reach it is tenant 'dev' without a key and may open rooms; use it only on a trusted network",
                host)


def raise_descriptor_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard one where allowed; return the soft limit in force."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 10240):  # macOS: an unlimited hard limit cannot be the soft one
        if soft != resource.RLIM_INFINITY and (target == resource.RLIM_INFINITY or target > soft):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
            except (ValueError, OSError):
                continue
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def connection_limit(settings: Settings, nofile: int | None) -> int | None:
    """``BRIDGE_MAX_CONNECTIONS``, or by default the descriptor limit minus a reserve (at least
    ``MIN_FD_RESERVE``, an eighth of a large limit). Refuses a limit that leaves no headroom."""
    if nofile is None:
        return settings.max_connections
    if settings.max_connections is None:
        limit = nofile - max(MIN_FD_RESERVE, nofile // 8)
        if limit < 1:
            raise ConfigurationError(
                f"the descriptor limit (RLIMIT_NOFILE, ulimit -n) is {nofile}: too low to serve clients and keep "
                f"{MIN_FD_RESERVE} descriptors for A2E calls, the store and logs; raise it")
        return limit
    if settings.max_connections > nofile - MIN_FD_RESERVE:
        raise ConfigurationError(
            f"BRIDGE_MAX_CONNECTIONS={settings.max_connections} leaves fewer than {MIN_FD_RESERVE} of the "
            f"{nofile} file descriptors (RLIMIT_NOFILE, ulimit -n) for A2E calls, the store and logs; "
            f"set it to at most {nofile - MIN_FD_RESERVE} or raise the descriptor limit")
    return settings.max_connections


def server_config(app: Any, settings: Settings, *, host: str | None = None, port: int | None = None) -> ServerConfig:
    """The one uvicorn configuration of ``a2e-bridge serve``, from settings (the CLI may override
    host and port). Refuses unsafe settings with :class:`ConfigurationError`."""
    host = host or settings.host
    port = port if port is not None else settings.port
    check_bind(settings, host)
    nofile = raise_descriptor_limit()
    max_connections = connection_limit(settings, nofile)
    # The limit is checked in connection_made, after accept(): a burst may briefly hold more
    # descriptors (asyncio accepts up to `backlog` sockets a tick), which the reserve absorbs; were
    # they exhausted anyway, accept() fails with EMFILE and asyncio retries a second later (logged
    # once per interval, see DescriptorExhaustionFilter). A smaller backlog would not help: it is
    # also the listen queue, and a short one makes the kernel drop honest clients' SYNs in a burst.
    log.info("limits: %s client connections (descriptor limit %s), request head within %gs, keep-alive %gs, "
             "bodies up to %d bytes (pass-through %d)", max_connections or "unlimited", nofile or "unknown",
             settings.header_timeout, settings.keepalive_timeout, settings.max_body_bytes,
             settings.max_passthrough_body_bytes)
    return ServerConfig(
        app, host=host, port=port, http=GuardedH11Protocol, header_timeout=settings.header_timeout,
        max_connections=max_connections, timeout_keep_alive=settings.keepalive_timeout,
        log_config=log_config(settings.log_level, settings.log_format), timeout_graceful_shutdown=5,
        ws=WS_IMPLEMENTATION, ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE,
        ws_ping_interval=settings.ws_ping_interval, ws_ping_timeout=settings.ws_ping_interval,
        ws_max_size=max(settings.ws_max_frame_bytes * 4, 1 << 20))


def check_a2e_key(settings: Settings) -> None:
    """With a real A2E key, ask A2E once before serving: a refused key (A2E's HTTP 200 with code 401,
    or an HTTP 401/403) is a :class:`ConfigurationError`, since every call would fail; an A2E that
    cannot be reached is not (it may come back, and ``/readyz`` says so meanwhile)."""
    if settings.uses_simulator or settings.a2e_api_key is None:
        return

    async def probe() -> None:
        assert settings.a2e_api_key is not None
        async with A2EClient(settings.a2e_api_key.get_secret_value(), settings.a2e_base_url,
                             timeout=min(settings.a2e_timeout, 10.0), max_attempts=1) as client:
            await client.remaining_coins()

    try:
        asyncio.run(probe())
    except A2EAuthError as exc:
        code = f" (code {exc.code})" if exc.code is not None else f" (HTTP {exc.status})"
        raise ConfigurationError(
            f"A2E at {settings.a2e_base_url} refused A2E_API_KEY: {exc.msg or 'invalid token'}{code}. Set "
            "A2E_API_KEY to an API token from A2E's web UI (and A2E_BASE_URL to the server it belongs to)") from None
    except A2EError as exc:
        log.warning("could not check A2E_API_KEY at start (%s); /readyz reports A2E's state", exc)


class BridgeServer(uvicorn.Server):
    """uvicorn's server, with two additions: the objects of start-up frozen out of the garbage
    collector's way once started, and, with many instances, the rooms handed over to the other
    instances on SIGTERM before uvicorn closes the connections (its own websocket close, 1012,
    would come first and tell clients nothing about where to go)."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.bridge_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Once started, what start-up made (the app, its libraries: ~60k objects that live as long
        as the process) is moved out of the garbage collector's way: a full collection then looks at
        what serving made, not at them (such a pass took 40-120 ms in the middle of a benchmark run)."""
        await super().startup(sockets)
        if self.started:
            gc.collect()
            gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        cluster = getattr(self.bridge_app.state, "cluster", None)
        if cluster is not None:
            for server in self.servers:
                server.close()  # no new connections while the rooms are handed over
            await cluster.hand_over_if_peers()
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    """Serve the bridge until SIGTERM/SIGINT; raises ConfigurationError for unsafe settings or a
    refused A2E key."""
    app = create_app(settings)
    check_a2e_key(settings)
    server = BridgeServer(server_config(app, settings), app)
    install_descriptor_exhaustion_filter()
    # uvicorn shuts down gracefully (rooms are left in the lifespan), then re-raises the signal to
    # the previous handler: make that a clean exit so SIGTERM ends with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
