"""The A2E simulator: A2E's REST API (built from the endpoint table), plus ``/_sim/*`` controls.

Run it alone with ``a2e-bridge simulate`` or in-process under the bridge when no A2E key is set.
With ``SimConfig.api_keys`` set, A2E routes refuse any other key the way A2E does (HTTP 200, code
401) and the control routes (``/_sim/state``, ``/_sim/faults``, ``/_sim/rtc/...``; not
``/_sim/health``) need one of those keys too; empty, any key is accepted and the controls are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import math
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from bridge.a2e.endpoints import ENDPOINTS, Endpoint
from bridge.a2e.errors import CODE_CAPACITY_BUSY

from .faults import FaultSpec, FaultTable
from .feed import ChannelFeed, feed_websocket
from .handlers import HANDLERS
from .state import SimConfig, SimError, SimState

log = logging.getLogger("bridge.simulator")

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "list": (list,), "bool": (bool,)}


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


CLOSE_UNAUTHORIZED = 4401  # the bridge's close code for a missing or unknown key


async def refuse_websocket(websocket: WebSocket, message: str) -> None:
    """Refuse a websocket the way the bridge does (accept, then close 4401 with the reason): a
    handshake refused with an HTTP answer makes uvicorn log an error for every attempt."""
    await websocket.accept()
    await websocket.close(CLOSE_UNAUTHORIZED, message)


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


def _check_fields(row: Endpoint, params: dict[str, Any]) -> None:
    """A2E-style 400 for a missing or mistyped required field."""
    for name, kind in row.required.items():
        value = params.get(name)
        if value is None or value == "":
            raise SimError(400, f"{name} is required", http_status=400)
        allowed = _TYPES[kind]
        if kind == "int" and isinstance(value, bool) or not isinstance(value, allowed):
            raise SimError(400, f"{name} must be of type {kind}", http_status=400)


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (A2E's parser refuses them); Python's json would accept them."""
    raise ValueError(f"{name} is not valid JSON")


class _DropConnection(Exception):
    """Raised after the response started: the server then aborts the connection mid-reply."""


async def _drop(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b'{"code":0,', "more_body": True})
    raise _DropConnection("simulated dropped connection")


def _operation_endpoint(row: Endpoint):
    async def endpoint(request: Request) -> Response:
        sim: SimState = request.app.state.sim
        sim.counters[row.name] = sim.counters.get(row.name, 0) + 1
        key = bearer_key(request)
        if not key:
            return JSONResponse(error_envelope(401, "missing Authorization: Bearer <token>"), status_code=401)
        if not key_accepted(sim.config, key):
            # A2E answers an unknown key with HTTP 200 and a non-zero code (see the notes).
            return JSONResponse(error_envelope(401, "invalid token"), status_code=200)
        params: dict[str, Any] = dict(request.query_params)
        if request.method != "GET":
            raw = await request.body()
            if raw.strip():
                try:
                    body = json.loads(raw, parse_constant=_no_constant)
                except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                    return JSONResponse(error_envelope(400, "body is not valid JSON"), status_code=400)
                if not isinstance(body, dict):
                    return JSONResponse(error_envelope(400, "body must be a JSON object"), status_code=400)
                params.update(body)
        params.update(request.path_params)
        try:
            _check_fields(row, params)
            data = await _run(request.app, row, params)
        except SimError as exc:
            return JSONResponse(error_envelope(exc.code, exc.msg), status_code=exc.http_status)
        return JSONResponse(envelope(data))

    endpoint.__name__ = row.name
    return endpoint


async def _run(app: Starlette, row: Endpoint, params: dict[str, Any]) -> Any:
    sim: SimState = app.state.sim
    feed: ChannelFeed = app.state.sim_feed
    sim.refresh()  # expired rooms close their feed (SimState.on_expire)
    if row.name in ("ask", "speak"):
        room = sim.command(row.name, params["channel"], params["text"])
        if row.name == "ask":
            feed.on_ask(room.channel, params["text"], room.qa_context, room.avatar_uid)
        else:
            feed.on_speak(room.channel, params["text"], room.avatar_uid)
        return {}
    data = HANDLERS[row.name](sim, params)
    if row.name == "leave":
        feed.close(params["channel"])
    if row.name == "agora_token":
        _expire_on_time(sim, data["channel"])
    return data


def _expire_on_time(sim: SimState, channel: str) -> None:
    """Expire the room when its time is up, even if no request comes: A2E ends the channel then."""
    room = sim.rooms.get(channel)
    if room is None or room.status != "open":
        return
    delay = room.expires_at - sim.clock()
    if delay > 0:
        asyncio.get_running_loop().call_later(delay + 0.01, _expire_on_time, sim, channel)
    else:
        sim.refresh()


def _route_path(scope: Scope) -> str:
    """The request path relative to where the simulator is mounted (the bridge mounts it at /_a2e)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):] or "/"
    return path


async def _stall(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds`` without answering; True if the client disconnected meanwhile."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), seconds)
    except TimeoutError:
        return False
    return True


class RequestCounter:
    """Counts every request and websocket that reaches the simulator (``/_sim/state``: ``requests``),
    whatever its path, so a test can show that nothing reached it."""

    def __init__(self, app: ASGIApp, sim: SimState) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.sim.requests += 1
        await self.app(scope, receive, send)


class FaultMiddleware:
    """Applies ``/_sim/faults`` rules to A2E routes before they run."""

    def __init__(self, app: Any, faults: FaultTable, by_path: dict[tuple[str, str], str]) -> None:
        self.app = app
        self.faults = faults
        self.by_path = by_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = _route_path(scope)
        if path.startswith("/_sim"):
            return await self.app(scope, receive, send)
        fault = self.faults.pick(path, self._operation(scope["method"], path))
        if fault is None:
            return await self.app(scope, receive, send)
        log.info("injecting fault %s on %s", fault.kind, path)
        if fault.kind == "http_500":
            response: Response = JSONResponse({"code": 500, "msg": "simulated internal error"}, status_code=500)
        elif fault.kind == "http_429":
            response = JSONResponse(error_envelope(429, "too many requests"), status_code=429,
                                    headers={"Retry-After": str(math.ceil(fault.seconds))})
        elif fault.kind == "code_1001":
            response = JSONResponse(error_envelope(CODE_CAPACITY_BUSY, "hosts are occupied"))
        elif fault.kind == "timeout":
            if await _stall(fault.seconds, receive):
                return  # the client gave up waiting: nobody to answer
            response = JSONResponse(error_envelope(504, "simulated late answer"), status_code=504)
        else:
            return await _drop(send)
        await response(scope, receive, send)

    def _operation(self, method: str, path: str) -> str | None:
        exact = self.by_path.get((method, path))
        if exact:
            return exact
        for (m, template), name in self.by_path.items():
            if m == method and "{" in template:
                prefix = template.split("{", 1)[0]
                if path.startswith(prefix) and "/" not in path[len(prefix):]:
                    return name
        return None


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods get A2E's envelope, not Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    msg = {404: f"no such path: {request.url.path}",
           405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(error_envelope(exc.status_code, msg), status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("simulator bug on %s %s", request.method, request.url.path)
    return JSONResponse(error_envelope(500, f"simulator error: {type(exc).__name__}"), status_code=500)


async def sim_state(request: Request) -> Response:
    return JSONResponse(request.app.state.sim.snapshot())


async def sim_faults(request: Request) -> Response:
    faults: FaultTable = request.app.state.sim_faults
    if request.method == "DELETE":
        return JSONResponse({"cleared": faults.clear()})
    if request.method == "GET":
        return JSONResponse({"faults": faults.describe()})
    try:
        spec = FaultSpec.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
        return JSONResponse({"error": {"code": "bad_fault", "message": "invalid fault", "details": errors}},
                            status_code=422)
    faults.add(spec)
    return JSONResponse({"faults": faults.describe()}, status_code=201)


async def sim_health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_simulator_app(config: SimConfig | None = None, *, fault_seed: int | None = None) -> Starlette:
    """A Starlette app that speaks A2E's REST API from the endpoint table."""
    config = config or SimConfig()
    rows = sorted(ENDPOINTS.values(), key=lambda r: (bool(r.path_params), r.path))  # literals before {_id}
    missing = [r.name for r in rows if r.name not in HANDLERS]
    assert not missing, f"simulator has no handler for {missing}"
    routes: list[Any] = [Route(r.path, _operation_endpoint(r), methods=[r.method], name=r.name) for r in rows]
    routes += [
        Route("/_sim/state", control_route(sim_state), methods=["GET"]),
        Route("/_sim/faults", control_route(sim_faults), methods=["GET", "POST", "DELETE"]),
        Route("/_sim/health", sim_health, methods=["GET"]),  # open: a liveness probe that tells nothing
        WebSocketRoute("/_sim/rtc/{channel}", control_route(feed_websocket)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await app.state.sim_feed.aclose()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: on_http_error, Exception: on_unexpected})
    app.state.sim = SimState(config)
    app.state.sim_feed = ChannelFeed(seconds_per_char=config.seconds_per_char)
    app.state.sim.on_expire.append(lambda room: app.state.sim_feed.close(room.channel))
    app.state.sim_faults = FaultTable(seed=fault_seed)
    by_path = {(r.method, r.path): r.name for r in rows}
    app.add_middleware(FaultMiddleware, faults=app.state.sim_faults, by_path=by_path)
    app.add_middleware(RequestCounter, sim=app.state.sim)  # outermost: counts what faults answer too
    return app
