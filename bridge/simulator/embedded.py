"""The simulator embedded in the bridge when no A2E key is set: on its own loopback port, and
mounted at ``/_a2e`` of the bridge.

It stands in for a paid A2E account that every tenant's rooms share, so only the bridge may use
it as A2E: it accepts one random per-process key, which only the bridge holds (its A2E client and
its simulated event observer). Everyone else gets A2E's refusal on its A2E routes, on the loopback
port and under ``/_a2e``, and a 401 on its control routes on the loopback port.

Under ``/_a2e`` the control routes (``/_sim/state``, ``/_sim/faults``, ``/_sim/rtc/...``) are open
to whoever the bridge's ``authorize`` admits (development mode: everyone, so newcomers can look at
``/_a2e/_sim/state``; with client keys: trusted tenants, who already act on the whole account). The
mount then swaps the caller's credentials for the per-process key; it never hands the key out.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from bridge.errors import BridgeError
from bridge.serving import EmbeddedServer

from .app import create_simulator_app
from .protocol import refuse_websocket
from .state import SimConfig

__all__ = ["EmbeddedSimulator", "SimulatorMount"]

Authorize = Callable[[HTTPConnection], None]  # raises a BridgeError to refuse


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

    def mount(self, authorize: Authorize) -> SimulatorMount:
        """The ASGI app to mount in the bridge (at ``/_a2e``)."""
        return SimulatorMount(self.app, self.key, authorize)


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
    per-process key in place of the caller's ``Authorization``. A refusal is the bridge's error
    shape: a 401 ``{"error": ...}``, or for a websocket the bridge's close code 4401.
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
        try:
            self.authorize(HTTPConnection(scope))
        except BridgeError as exc:
            if scope["type"] == "websocket":
                return await refuse_websocket(WebSocket(scope, receive, send), exc.message)
            return await JSONResponse({"error": exc.to_dict()}, status_code=exc.status,
                                      headers=exc.headers)(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        headers.append((b"authorization", self._authorization))
        await self.app({**scope, "headers": headers}, receive, send)
