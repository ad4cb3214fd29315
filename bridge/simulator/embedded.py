"""The simulator inside another process: its config from the bridge's settings, uvicorn servers
started in an already running event loop (the bridge's embedded simulator, tests), and the
simulator embedded in the bridge when no A2E key is set, on its own loopback port and mounted at
``/_a2e`` of the bridge.

The embedded simulator stands in for a paid A2E account that every tenant's rooms share, so only
the bridge may use it as A2E: it accepts one random per-process key, which only the bridge holds
(its A2E client and its simulated event observer). Everyone else gets A2E's refusal on its A2E
routes, on the loopback port and under ``/_a2e``, and a 401 on its control routes on the loopback
port.

Under ``/_a2e`` the control routes (``/_sim/state``, ``/_sim/faults``, ``/_sim/rtc/...``) are open
to whoever the bridge's ``authorize`` admits (development mode: everyone, so newcomers can look at
``/_a2e/_sim/state``; with client keys: trusted tenants, who already act on the whole account). The
mount then swaps the caller's credentials for the per-process key; it never hands the key out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

import uvicorn
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from bridge.settings import Settings

from .app import create_simulator_app
from .protocol import refuse_websocket
from .state import SimConfig

__all__ = ["EmbeddedServer", "EmbeddedSimulator", "Refusal", "SimulatorMount", "simulator_config"]


def simulator_config(settings: Settings, *, api_keys: tuple[str, ...] = ()) -> SimConfig:
    return SimConfig(coins=settings.sim_coins, max_channels=settings.sim_max_channels,
                     task_step_seconds=settings.sim_task_step_seconds,
                     seconds_per_char=settings.sim_seconds_per_char, api_keys=api_keys)


class EmbeddedSimulator:
    """The simulator app with a fresh per-process key, and its loopback server."""

    def __init__(self, config: SimConfig) -> None:
        self.key = secrets.token_urlsafe(32)
        self.app = create_simulator_app(dataclasses.replace(config, api_keys=(self.key,)))
        self.base_url: str | None = None
        self._server: EmbeddedServer | None = None

    def __repr__(self) -> str:  # the key must not leak through a repr in a log line
        return f"EmbeddedSimulator(base_url={self.base_url!r})"

    async def start(self) -> str:
        """Serve on a free loopback port; return its base URL."""
        self._server = EmbeddedServer.for_app(self.app)
        self.base_url = await self._server.start()
        return self.base_url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Served for the duration; yields its base URL."""
        url = await self.start()
        try:
            yield url
        finally:
            await self.stop()

    def mount(self, authorize: Authorize) -> SimulatorMount:
        """The ASGI app to mount in the bridge (at ``/_a2e``)."""
        return SimulatorMount(self.app, self.key, authorize)


class Refusal(NamedTuple):
    """How the bridge refuses a caller of the controls: ``response`` (an ASGI app) answers an HTTP
    request, ``message`` is a websocket's close reason (close code 4401)."""

    message: str
    response: ASGIApp


Authorize = Callable[[HTTPConnection], Refusal | None]  # None admits the caller


def _is_control(scope: Scope) -> bool:
    """A ``/_sim`` route, relative to the mount (the path arrives percent-decoded)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith("/_sim")


class SimulatorMount:
    """The simulator as mounted in the bridge.

    A2E routes pass unchanged: the simulator itself refuses any key but its own. Control routes
    need the bridge's ``authorize``; once it admits the caller, the request goes on with the
    per-process key in place of the caller's ``Authorization``. A refusal is the bridge's (its error
    body, or for a websocket the bridge's close code 4401).
    """

    def __init__(self, app: ASGIApp, key: str, authorize: Authorize) -> None:
        self.app = app
        self._authorization = f"Bearer {key}".encode()
        self.authorize = authorize

    def __repr__(self) -> str:
        return "SimulatorMount()"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not _is_control(scope):
            return await self.app(scope, receive, send)
        refusal = self.authorize(HTTPConnection(scope))
        if refusal is not None:
            if scope["type"] == "websocket":
                return await refuse_websocket(WebSocket(scope, receive, send), refusal.message)
            return await refusal.response(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        headers.append((b"authorization", self._authorization))
        await self.app({**scope, "headers": headers}, receive, send)


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
        if self._wake is not None:
            self._wake.set()
        with _quiet_lifecycle(), contextlib.suppress(asyncio.CancelledError):
            await self._task

    # uvicorn's main loop polls ``should_exit`` every 0.1 s and its shutdown sleeps a fixed 0.1 s then
    # polls every 0.1 s for connections to close: 0.2 s or more per stop. Embedded servers are started
    # and stopped hundreds of times (the test suite: that was most of its wall time), so these two
    # overrides wake at once and poll finely; what they do is otherwise uvicorn's own.
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):  # not wait_for: see bridge/webhooks/deliverer.py
                async with asyncio.timeout(0.1):
                    await self._wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110 (uvicorn has no event)
                    await asyncio.sleep(0.005)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


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
