"""Running the bridge with uvicorn: ``run(settings)`` is what ``a2e-bridge serve`` does.

``EmbeddedServer`` (uvicorn inside a running loop) lives beside the simulator it embeds; it is
importable from here too.
"""

from __future__ import annotations

import signal
import sys

import uvicorn

from .app import create_app
from .logs import log_config
from .settings import Settings
from .simulator.embedded import EmbeddedServer

__all__ = ["EmbeddedServer", "run"]


def run(settings: Settings) -> None:
    """Serve the bridge until SIGTERM/SIGINT; raises ConfigurationError for unsafe settings."""
    app = create_app(settings)
    # uvicorn shuts down gracefully (rooms are left in the lifespan), then re-raises the signal to
    # the previous handler: make that a clean exit so SIGTERM ends with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, host=settings.host, port=settings.port,
                log_config=log_config(settings.log_level), timeout_graceful_shutdown=5,
                ws_ping_interval=settings.ws_ping_interval, ws_ping_timeout=settings.ws_ping_interval,
                ws_max_size=max(settings.ws_max_frame_bytes * 4, 1 << 20))
