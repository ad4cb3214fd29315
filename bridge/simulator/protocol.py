"""How the simulator answers, and whom: A2E's envelope, its key check and its refusals.

With ``SimConfig.api_keys`` set, A2E routes refuse any other key the way A2E does (HTTP 200, code
401) and the control routes need one of those keys too; empty, any key is accepted.
"""

from __future__ import annotations

import functools
import hmac
import uuid
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from bridge.frames import CloseCode

from .state import SimConfig


def envelope(data: Any) -> dict[str, Any]:
    return {"code": 0, "data": data, "trace_id": str(uuid.uuid4())}


def error_envelope(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": None, "trace_id": str(uuid.uuid4())}


def bearer_key(conn: HTTPConnection) -> str:
    """The key of an ``Authorization: Bearer <key>`` header, or ""."""
    auth = conn.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def key_accepted(config: SimConfig, key: str) -> bool:
    """Whether ``key`` may use the simulator: any non-empty key when no keys are configured."""
    if not config.api_keys:
        return bool(key)
    return any(hmac.compare_digest(key.encode(), known.encode()) for known in config.api_keys)




async def refuse_websocket(websocket: WebSocket, message: str) -> None:
    """Refuse a websocket the way the bridge does (accept, then close 4401 with the reason): a
    handshake refused with an HTTP answer makes uvicorn log an error for every attempt."""
    await websocket.accept()
    await websocket.close(CloseCode.UNAUTHORIZED, message)


_CONTROL_REFUSAL = "the simulator's controls need Authorization: Bearer <one of its keys>"


def control_route(handler: Any) -> Any:
    """A ``/_sim`` control route: open without configured keys, else only for one of them."""

    @functools.wraps(handler)
    async def guarded(conn: Any) -> Any:
        config: SimConfig = conn.app.state.sim.config
        if not config.api_keys or key_accepted(config, bearer_key(conn)):
            return await handler(conn)
        if isinstance(conn, WebSocket):
            return await refuse_websocket(conn, _CONTROL_REFUSAL)
        return JSONResponse({"error": {"code": "unauthorized", "message": _CONTROL_REFUSAL}}, status_code=401)

    return guarded
