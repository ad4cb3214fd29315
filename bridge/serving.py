"""Running ASGI apps with uvicorn: the main server (:func:`run`, built from settings by
:func:`server_config`), and servers embedded in a running loop.

The main server guards its sockets: a connection must complete its request headers within
``BRIDGE_HEADER_TIMEOUT`` seconds, idle keep-alive connections close after
``BRIDGE_KEEPALIVE_TIMEOUT``, accepted client connections are capped (``BRIDGE_MAX_CONNECTIONS``,
by default derived from the descriptor limit with a reserve left for outbound A2E calls, the store
and logs), and descriptor exhaustion at accept is logged once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import TooManyConnections
from .logs import log_config
from .settings import Settings

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("bridge")

MIN_FD_RESERVE = 100  # descriptors always kept free of client connections: A2E pool, store, logs
STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server could not start
LOG_INTERVAL = 10.0  # seconds between two log lines about the same flood


class ConfigurationError(RuntimeError):
    """The settings cannot give a safe service."""


class _Throttle:
    """At most one event per ``interval``; counts the ones it swallowed in between."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self.suppressed = 0

    def ready(self) -> int | None:
        """``None`` to stay quiet, else the number of events swallowed since the last one let through."""
        now = self.clock()
        if now < self._next:
            self.suppressed += 1
            return None
        self._next = now + self.interval
        count, self.suppressed = self.suppressed, 0
        return count


class DescriptorExhaustionFilter(logging.Filter):
    """Lets one "Too many open files" record through per interval, with the count of those dropped.

    Where the repeats come from: when ``accept()`` fails with EMFILE, asyncio's accept loop
    (``selector_events._accept_connection``) logs "socket.accept() out of system resource" through
    the loop's exception handler (logger ``asyncio``), and it does not stop there: it goes on calling
    ``accept()`` up to ``backlog`` times (uvicorn's default 2048) in the same tick, logging each
    failure, and schedules a retry of the listening socket one second later for each of them. With
    descriptors exhausted that is thousands of log lines a second, each with a traceback.
    """

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.throttle = _Throttle(interval, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_descriptor_exhaustion(record):
            return True
        suppressed = self.throttle.ready()
        if suppressed is None:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:  # one line: the traceback is always the same, inside asyncio
            text = str(exc).replace("%", "%%") if record.args else str(exc)
            record.msg = f"{record.msg}: {text}"
            record.exc_info = record.exc_text = None
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed in the last " \
                         f"{self.throttle.interval:g} s)"
        return True


def _is_descriptor_exhaustion(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    return "out of system resource" in str(record.msg) or "Too many open files" in record.getMessage()


def install_descriptor_exhaustion_filter(logger_name: str = "asyncio") -> DescriptorExhaustionFilter:
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, DescriptorExhaustionFilter):
            return existing
    flt = DescriptorExhaustionFilter()
    logger.addFilter(flt)
    return flt


def _busy_response() -> bytes:
    body = json.dumps({"error": TooManyConnections(
        "the server has too many open connections; retry later").to_dict()}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n")
    return head.encode() + body


BUSY_RESPONSE = _busy_response()


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus what :class:`GuardedH11Protocol` reads from it."""

    def __init__(self, app: Any, *, header_timeout: float | None = None, max_connections: int | None = None,
                 **kwargs: Any) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.refusals = _Throttle()  # shared by the server's connections: one log line per interval
        super().__init__(app, **kwargs)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline, a bounded drain of refused bodies, and
    a cap on client connections.

    uvicorn only times out idle keep-alive connections (``timeout_keep_alive``, cancelled by the
    first byte received), so a client that sends part of a request head, or trickles it a byte at a
    time, would hold its socket forever. Here a deadline starts when the connection is made (and
    again when a response completes, for the next request on a kept-alive connection) and is
    cancelled once h11 has parsed a whole request head (``their_state`` leaves ``IDLE``); if it
    expires first, the connection is closed. Bytes arriving do not extend it, so a slowloris is cut.

    When the app answered before reading the whole body (a 413 from the body limit), uvicorn reads
    and discards the rest, so that the client, which usually sends its whole body before it reads,
    gets the answer rather than a connection reset, and the connection can be reused. That drain
    is bounded here: at most ``DRAIN_MAX_BYTES`` and the same deadline, then the connection is closed.

    Past ``max_connections`` client connections (HTTP, and websockets, which uvicorn keeps in the
    same ``server_state.connections`` set after the upgrade), a new connection is answered with a
    canned 503 ``too_many_connections`` and closed at once: never queued, never read.
    """

    DRAIN_MAX_BYTES = 4 * 1024 * 1024

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float | None = getattr(config, "header_timeout", None)
        self.max_connections: int | None = getattr(config, "max_connections", None)
        self.refusals: _Throttle = getattr(config, "refusals", None) or _Throttle()
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # what the deadline waits for: "head" or "drain"
        self._drained = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self.connections.discard(self)
            suppressed = self.refusals.ready()
            if suppressed is not None:
                self.logger.warning("connection limit reached (%d, BRIDGE_MAX_CONNECTIONS): refusing new connections%s",
                                    self.max_connections, f" ({suppressed} refused since the last message)"
                                    if suppressed else "")
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self._sync_deadline()

    def data_received(self, data: bytes) -> None:
        if self._phase == "drain":
            self._drained += len(data)
            if self._drained > self.DRAIN_MAX_BYTES:
                self._close("the rest of a refused request body is too long to drain")
                return
        super().data_received(data)
        self._sync_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_phase(None)
        super().connection_lost(exc)

    def _sync_deadline(self) -> None:
        """Run the deadline while a request head is awaited or a refused body drained, only then."""
        if self.header_timeout is None or self.transport.is_closing():
            self._set_phase(None)
        elif self.conn.their_state is h11.IDLE:
            self._set_phase("head")
        elif self.conn.their_state is h11.SEND_BODY and self.conn.our_state is h11.DONE:
            self._set_phase("drain")
        else:
            self._set_phase(None)

    def _set_phase(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase, self._drained = phase, 0
        if phase is not None and self.header_timeout is not None:
            self._deadline = self.loop.call_later(self.header_timeout, self._deadline_expired)

    def _deadline_expired(self) -> None:
        self._deadline = None
        what = ("sent no complete request head" if self._phase == "head"
                else "did not finish sending a refused request body")
        self._close(f"the client {what} within {self.header_timeout:g}s")

    def _close(self, why: str) -> None:
        self._set_phase(None)
        if self.transport.is_closing():
            return
        self.logger.debug("closing a connection: %s", why)
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


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
        max_connections=max_connections, timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]
        log_config=log_config(settings.log_level), timeout_graceful_shutdown=5,
        ws_ping_interval=settings.ws_ping_interval, ws_ping_timeout=settings.ws_ping_interval,
        ws_max_size=max(settings.ws_max_frame_bytes * 4, 1 << 20))


def run(app: Any, settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve ``app`` until a signal stops it (what ``a2e-bridge serve`` does)."""
    server = uvicorn.Server(server_config(app, settings, host=host, port=port))
    install_descriptor_exhaustion_filter()
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _EmbeddedConfig(uvicorn.Config):
    def configure_logging(self) -> None:
        """Leave logging to the process: uvicorn would re-apply its defaults globally (levels and
        handlers of the uvicorn loggers), silencing the main server's logs."""


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server started inside an already running event loop (the in-process simulator,
    tests). It leaves signal handling to whoever owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @classmethod
    def for_app(cls, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> EmbeddedServer:
        config.setdefault("timeout_graceful_shutdown", 2)
        return cls(_EmbeddedConfig(app, host=host, port=port, **config))

    async def start(self) -> str:
        """Serve in a background task; return the base URL once the socket listens."""
        with _quiet_lifecycle():
            self._task = asyncio.create_task(self.serve())
            while not self.started:
                if self._task.done():
                    self._task.result()  # re-raise a failed start-up
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        self.should_exit = True
        with _quiet_lifecycle(), contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.contextmanager
def _quiet_lifecycle() -> Iterator[None]:
    """Hide an embedded server's "Started server process"/"Shutting down" lines, which would read
    as the main server's (both log to ``uvicorn.error``); errors still pass."""
    quiet = _BelowWarning()
    logger = logging.getLogger("uvicorn.error")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING
