"""The A2E simulator: A2E's REST API (built from the endpoint table), plus ``/_sim/*`` controls.

Run it alone with ``a2e-bridge simulate`` or in-process under the bridge when no A2E key is set.
With ``SimConfig.api_keys`` set, A2E routes refuse any other key the way A2E does (HTTP 200, code
401) and the control routes (``/_sim/state``, ``/_sim/faults``, ``/_sim/rtc/...``; not
``/_sim/health``) need one of those keys too; empty, any key is accepted and the controls are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from bridge.a2e.endpoints import ENDPOINTS, Endpoint

from .faults import FaultMiddleware, FaultSpec, FaultTable, RequestCounter
from .feed import ChannelFeed, feed_websocket
from .handlers import HANDLERS
from .protocol import bearer_key, control_route, envelope, error_envelope, key_accepted
from .state import SimConfig, SimError, SimState

log = logging.getLogger("bridge.simulator")

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "list": (list,), "bool": (bool,)}


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


def _operation_endpoint(row: Endpoint) -> Callable[[Request], Awaitable[Response]]:
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
            try:
                raw = await request.body()
            except ClientDisconnect:  # the caller went away before it finished sending: nothing to do
                return Response(status_code=400)
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


async def sim_commands(request: Request) -> Response:
    """What a channel was told to say, in order (what a test compares with the acks it got)."""
    room = request.app.state.sim.rooms.get(request.path_params["channel"])
    if room is None:
        return JSONResponse({"error": {"code": "not_found", "message": "no such channel"}}, status_code=404)
    return JSONResponse({"commands": room.commands})


async def sim_health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_simulator_app(config: SimConfig | None = None, *, fault_seed: int | None = None) -> Starlette:
    """A Starlette app that speaks A2E's REST API from the endpoint table."""
    config = config or SimConfig()
    rows = sorted(ENDPOINTS.values(), key=lambda r: (bool(r.path_params), r.path))  # literals before {_id}
    missing = [r.name for r in rows if r.name not in HANDLERS]
    assert not missing, f"simulator has no handler for {missing}"
    routes: list[Any] = [Route(r.path, _operation_endpoint(r), methods=list(r.methods), name=r.name) for r in rows]
    routes += [
        Route("/_sim/state", control_route(sim_state), methods=["GET"]),
        Route("/_sim/faults", control_route(sim_faults), methods=["GET", "POST", "DELETE"]),
        Route("/_sim/rooms/{channel}/commands", control_route(sim_commands), methods=["GET"]),
        Route("/_sim/health", sim_health, methods=["GET"]),  # open: a liveness probe that tells nothing
        WebSocketRoute("/_sim/rtc/{channel}", control_route(feed_websocket)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await app.state.sim_feed.aclose()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: on_http_error, Exception: on_unexpected})
    app.state.sim = SimState(config)
    app.state.sim_feed = ChannelFeed(seconds_per_char=config.seconds_per_char)
    app.state.sim.on_expire.append(lambda room: app.state.sim_feed.close(room.channel))
    app.state.sim_faults = FaultTable(seed=fault_seed)
    by_path: dict[tuple[str, str], str] = {(method, r.path): r.name for r in rows for method in r.methods}
    app.add_middleware(FaultMiddleware, faults=app.state.sim_faults, by_path=by_path)
    app.add_middleware(RequestCounter, sim=app.state.sim)  # outermost: counts what faults answer too
    return app
