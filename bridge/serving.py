"""Running ASGI apps with uvicorn: the main server, and servers embedded in a running loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server started inside an already running event loop (the in-process simulator,
    tests). It leaves signal handling to whoever owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @classmethod
    def for_app(cls, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> EmbeddedServer:
        config.setdefault("log_level", "warning")
        config.setdefault("timeout_graceful_shutdown", 2)
        return cls(uvicorn.Config(app, host=host, port=port, **config))

    async def start(self) -> str:
        """Serve in a background task; return the base URL once the socket listens."""
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
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
