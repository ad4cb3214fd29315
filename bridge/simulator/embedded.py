"""The simulator inside another process: its config from the bridge's settings, and uvicorn servers
started in an already running event loop (the bridge's embedded simulator, tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from bridge.settings import Settings

from .state import SimConfig


def simulator_config(settings: Settings) -> SimConfig:
    return SimConfig(coins=settings.sim_coins, max_channels=settings.sim_max_channels,
                     task_step_seconds=settings.sim_task_step_seconds,
                     seconds_per_char=settings.sim_seconds_per_char)


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the duration; yields its base URL."""
    server = EmbeddedServer.for_app(app)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


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
