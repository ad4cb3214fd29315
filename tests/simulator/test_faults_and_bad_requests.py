"""Fault injection controls, and bad requests: every one gets JSON (A2E's envelope on API paths), never a 500."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS, Endpoint
from bridge.a2e.errors import A2ECapacityBusy, A2EUnavailable
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import AVATARS, SimConfig
from tests.helpers import serve

AVATAR = AVATARS[0]["_id"]
AUTH = {"Authorization": "Bearer k"}
VALID = {"str": "sim_x", "int": 1, "list": ["https://media.example.com/a.mp3"], "bool": True}
WRONG = {"str": 123, "int": "1", "list": "https://media.example.com/a.mp3", "bool": "yes"}
ODD_VALUES: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "fail", "x" * 10_000, "\u0000é漢🙂", [], {"a": [None]}]


def is_envelope(reply: httpx.Response, *, code: int | None = None) -> dict[str, Any]:
    assert reply.status_code < 500, f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text[:300]}"
    assert reply.headers["content-type"].startswith("application/json"), reply.text[:300]
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("code"), int), body
    if body["code"] != 0:
        assert isinstance(body.get("msg"), str) and body["msg"], body
        assert body.get("data") is None and isinstance(body.get("trace_id"), str), body
    if code is not None:
        assert body["code"] == code, body
    return body


def url_of(row: Endpoint, value: str = "0123456789abcdef01234567") -> str:
    """The row's path with ``value`` (percent-encoded) as every parameter: odd ids on purpose, which
    ``Endpoint.render_path`` would refuse, to show the simulator copes with what any client sends."""
    return re.sub(r"{\w+}", lambda _: quote(value, safe=""), row.path)


def valid_params(row: Endpoint) -> dict[str, Any]:
    return {name: VALID[kind] for name, kind in row.required.items()}


async def send(http: httpx.AsyncClient, row: Endpoint, params: dict[str, Any], path: str | None = None,
               **kw: Any) -> httpx.Response:
    path = path or url_of(row)
    if row.method == "GET":
        return await http.get(path, params={k: v for k, v in params.items() if v is not None}, **kw)
    return await http.request(row.method, path, json=params, **kw)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sim() -> AsyncIterator[str]:
    app = create_simulator_app(SimConfig(task_step_seconds=0.02, seconds_per_char=0.002), fault_seed=1)
    async with serve(app) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(shared_sim: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shared_sim, headers=AUTH, timeout=10) as client:
        yield client


@pytest.fixture
async def sim_http(sim: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as client:
        yield client


# -- /_sim/faults -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "speak", "kind": "explode"},
        {"endpoint": "speak", "kind": "http_500", "rate": 1.5},
        {"endpoint": "speak", "kind": "http_500", "rate": -0.1},
        {"endpoint": "speak", "kind": "http_500", "times": 0},
        {"endpoint": "speak", "kind": "timeout", "seconds": 0},
        {"endpoint": "speak", "kind": "timeout", "seconds": 10_000},
        {"endpoint": "", "kind": "http_500"},
        {"kind": "http_500"},
        {"endpoint": "speak"},
        {"endpoint": 5, "kind": "http_500"},
        ["speak", "http_500"],
        "not json at all",
        None,
    ],
)
@pytest.mark.asyncio(loop_scope="module")
async def test_bad_fault_specs_are_refused_with_422(body: Any, http: httpx.AsyncClient) -> None:
    sim_http = http
    content = body.encode() if isinstance(body, str) else b"" if body is None else json.dumps(body).encode()
    reply = await sim_http.post("/_sim/faults", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "bad_fault" and error["details"]
    assert all({"loc", "msg"} <= set(d) for d in error["details"])
    assert (await sim_http.get("/_sim/faults")).json() == {"faults": []}


async def test_fault_table_add_list_clear(sim_http: httpx.AsyncClient) -> None:
    reply = await sim_http.post("/_sim/faults", json={"endpoint": "speak", "kind": "http_429", "times": 2})
    assert reply.status_code == 201
    (fault,) = reply.json()["faults"]
    assert fault == {"endpoint": "speak", "kind": "http_429", "rate": 1.0, "times": 2, "seconds": 30.0, "hits": 0}
    await sim_http.post("/_sim/faults", json={"endpoint": "*", "kind": "code_1001", "rate": 0})
    assert len((await sim_http.get("/_sim/faults")).json()["faults"]) == 2
    assert (await sim_http.delete("/_sim/faults")).json() == {"cleared": 2}
    assert (await sim_http.get("/_sim/faults")).json() == {"faults": []}
    assert (await sim_http.delete("/_sim/faults")).json() == {"cleared": 0}


async def test_star_fault_hits_every_api_path_but_not_the_controls(sim: Any, sim_http: httpx.AsyncClient) -> None:
    await sim_http.post("/_sim/faults", json={"endpoint": "*", "kind": "code_1001"})
    async with A2EClient("k", sim.url, timeout=2, max_attempts=1) as a2e:
        for op in ("remaining_coins", "streaming_avatars", "agora_token", "voice_get"):
            with pytest.raises(A2ECapacityBusy):
                await a2e.call(op, avatar_id=AVATAR, _id="0123456789abcdef01234567")
        # unknown API paths are faulted too (the rule is for every path)
        assert (await sim_http.get("/api/v1/nope", headers=AUTH)).json()["code"] == 1001
        assert (await sim_http.get("/_sim/health")).json() == {"ok": True}
        assert (await sim_http.get("/_sim/state")).status_code == 200
        assert (await sim_http.get("/_sim/faults")).json()["faults"][0]["hits"] == 5
        await sim_http.delete("/_sim/faults")
        assert "coins" in await a2e.remaining_coins()
    assert sim.state.counters == {"remaining_coins": 1}


async def test_fault_by_path_and_by_templated_operation(sim: Any, sim_http: httpx.AsyncClient) -> None:
    async with A2EClient("k", sim.url, timeout=2, max_attempts=1) as a2e:
        await sim_http.post("/_sim/faults", json={"endpoint": "/api/v1/user/remainingCoins", "kind": "http_500"})
        with pytest.raises(A2EUnavailable):
            await a2e.remaining_coins()
        await sim_http.delete("/_sim/faults")
        # voice_get is GET /api/v1/userVoice/{_id}; the literal GET /api/v1/userVoice/completedRecord is another row
        await sim_http.post("/_sim/faults", json={"endpoint": "voice_get", "kind": "http_500"})
        await a2e.call("voice_clone_list")
        with pytest.raises(A2EUnavailable):
            await a2e.call("voice_get", _id="0123456789abcdef01234567")
    assert (await sim_http.get("/_sim/faults")).json()["faults"][0]["hits"] == 1


async def test_rate_zero_never_fires_and_times_limits(sim: Any, sim_http: httpx.AsyncClient) -> None:
    await sim_http.post("/_sim/faults", json={"endpoint": "remaining_coins", "kind": "http_500", "rate": 0})
    async with A2EClient("k", sim.url, timeout=2, max_attempts=1) as a2e:
        for _ in range(30):
            await a2e.remaining_coins()
        assert (await sim_http.get("/_sim/faults")).json()["faults"][0]["hits"] == 0
        await sim_http.delete("/_sim/faults")

        await sim_http.post("/_sim/faults", json={"endpoint": "remaining_coins", "kind": "http_500", "times": 3})
        failures = 0
        for _ in range(10):
            try:
                await a2e.remaining_coins()
            except A2EUnavailable:
                failures += 1
        assert failures == 3
        await sim_http.delete("/_sim/faults")

        await sim_http.post("/_sim/faults", json={"endpoint": "remaining_coins", "kind": "http_500", "rate": 0.5})
        results = []
        for _ in range(40):
            try:
                results.append(bool(await a2e.remaining_coins()))
            except A2EUnavailable:
                results.append(False)
        hits = (await sim_http.get("/_sim/faults")).json()["faults"][0]["hits"]
        assert 0 < hits < 40 and results.count(False) == hits
    assert sim.state.counters["remaining_coins"] == 30 + 7 + 40 - hits


async def test_faults_work_when_the_simulator_is_mounted_under_a_prefix() -> None:
    """The bridge mounts the simulator at /_a2e: faults must match paths relative to the mount."""
    sim_app = create_simulator_app(SimConfig(), fault_seed=1)
    async with serve(Starlette(routes=[Mount("/_a2e", app=sim_app)])) as url:
        async with httpx.AsyncClient(base_url=f"{url}/_a2e", timeout=5) as http, \
                A2EClient("k", f"{url}/_a2e", timeout=2, max_attempts=1) as a2e:
            assert "coins" in await a2e.remaining_coins()
            for endpoint in ("remaining_coins", "/api/v1/user/remainingCoins"):
                assert (await http.post("/_sim/faults", json={"endpoint": endpoint, "kind": "http_500"})).status_code == 201
                with pytest.raises(A2EUnavailable):
                    await a2e.remaining_coins()
                assert (await http.delete("/_sim/faults")).json() == {"cleared": 1}
            # a fault on every path spares the controls, which live under the mount too
            await http.post("/_sim/faults", json={"endpoint": "*", "kind": "http_500"})
            assert (await http.get("/_sim/state")).status_code == 200
            with pytest.raises(A2EUnavailable):
                await a2e.call("voice_get", _id="0123456789abcdef01234567")
            assert (await http.get("/_sim/faults")).json()["faults"][0]["hits"] == 1
            assert (await http.delete("/_sim/faults")).json() == {"cleared": 1}
            reply = await http.get("/api/v1/nope", headers=AUTH)
            assert reply.status_code == 404 and reply.json()["code"] == 404
        assert sim_app.state.sim.counters == {"remaining_coins": 1}


# -- bad requests -------------------------------------------------------------------------------
async def test_missing_or_malformed_key(sim_http: httpx.AsyncClient) -> None:
    row = ENDPOINTS["remaining_coins"]
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        reply = await sim_http.get(row.path, headers=headers)
        assert reply.status_code == 401
        is_envelope(reply, code=401)


@pytest.mark.parametrize(("path", "method", "status"), [
    ("/api/v1/nope", "GET", 404),
    ("/api/v2/streaming-avatar/ask", "POST", 404),
    ("/", "GET", 404),
    ("/api/v1/streaming-avatar/ask", "GET", 405),
    ("/api/v1/user/remainingCoins", "PUT", 405),  # GET, and POST as some callers send it
    ("/api/v1/anchor/character_list", "DELETE", 405),  # POST, and GET as newer documents say
    ("/api/v1/userVoice/0123456789abcdef01234567", "PUT", 405),
    ("/_sim/nope", "GET", 404),
    ("/_sim/state", "POST", 405),
])
@pytest.mark.asyncio(loop_scope="module")
async def test_unknown_paths_and_methods(path: str, method: str, status: int, http: httpx.AsyncClient) -> None:
    sim_http = http
    reply = await sim_http.request(method, path, headers=AUTH)
    assert reply.status_code == status
    body = is_envelope(reply, code=status)
    assert path in body["msg"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
async def test_bad_requests_get_a2e_errors(operation: str, http: httpx.AsyncClient) -> None:
    row = ENDPOINTS[operation]
    # no auth at all
    is_envelope(await send(http, row, valid_params(row), headers={"Authorization": ""}), code=401)
    # every required field missing, then each one mistyped
    for name, kind in row.required.items():
        params = valid_params(row)
        del params[name]
        body = is_envelope(await send(http, row, params), code=400)
        assert name in body["msg"]
        if row.method != "GET":  # query strings only carry strings
            params[name] = WRONG[kind]
            body = is_envelope(await send(http, row, params), code=400)
            assert name in body["msg"]
    if row.method != "GET":
        for content in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 50_000, b'{"x": NaN}'):
            reply = await http.request(row.method, url_of(row), content=content,
                                       headers={"content-type": "application/json"})
            is_envelope(reply, code=400)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
async def test_odd_values_never_crash_the_simulator(operation: str, http: httpx.AsyncClient) -> None:
    row = ENDPOINTS[operation]
    extras = ("expire_seconds", "pageNum", "pageSize", "current", "type", "tts_id", "back_id")
    requests = []
    for value in ODD_VALUES:
        if row.method == "GET" and isinstance(value, (list, dict)):
            continue  # a query string holds strings only
        if row.method == "GET" and isinstance(value, str):
            value = value[:2000]  # seven of them must fit in one URL
        # each required field in turn, then all the optional fields A2E reads at once
        for params in [{**valid_params(row), name: value} for name in row.required] + [
                {**valid_params(row), **dict.fromkeys(extras, value)}]:
            requests.append(send(http, row, params))
    if row.method != "GET":
        for raw in (b'{"pageSize": 1e400, "current": Infinity}', b'{"expire_seconds": -Infinity}'):
            requests.append(http.request(row.method, url_of(row), content=raw,
                                         headers={"content-type": "application/json"}))
    for value in ("x", "0" * 24, " ", "a" * 500, "..", "%", "é漢", "null"):
        requests.append(send(http, row, valid_params(row), path=url_of(row, value)))
    for reply in await asyncio.gather(*requests):  # concurrently: the simulator must cope with that too
        is_envelope(reply)


async def test_unexpected_errors_answer_json(sim: Any, sim_http: httpx.AsyncClient) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    sim.app.router.routes.append(Route("/api/v1/boom", boom))
    reply = await sim_http.get("/api/v1/boom")
    assert reply.status_code == 500
    body = reply.json()
    assert body["code"] == 500 and body["msg"] == "simulator error: RuntimeError" and body["trace_id"]
    assert "Traceback" not in reply.text
