"""The embedded simulator (no A2E_API_KEY) is the bridge's alone.

It stands in for the paid account every tenant's rooms share. Its A2E routes accept only a random
per-process key that only the bridge holds, on its loopback port and under ``/_a2e``; its control
routes under ``/_a2e`` are for development mode and trusted tenants, and on its loopback port need
the per-process key. A real ``create_app(settings)`` (no injected client) serves here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.app import create_app
from bridge.serving import EmbeddedServer
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import SimConfig
from tests.helpers import (
    assert_error,
    bridge_settings,
    create_room,
    free_port,
    poll,
    spawn_cli,
    start_bridge,
    wait_http,
)

KEYS = {"k-acme": "acme", "k-globex": "globex"}
TRUSTED = {"Authorization": "Bearer k-acme"}  # BRIDGE_PASSTHROUGH_TENANTS=acme
GLOBEX = {"Authorization": "Bearer k-globex"}
REFUSED: dict[str, dict[str, str]] = {
    "no key": {},
    "a non-trusted tenant": GLOBEX,
    "a made-up bearer": {"Authorization": "Bearer made-up-key"},
    "another scheme": {"Authorization": "Basic azphY21lOg=="},
}
QA_SECRET = "globex internal: the discount code is GX-7781"


class Served:
    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app

    @property
    def sim_url(self) -> str:
        """The embedded simulator's own loopback port (where the bridge's A2E client points)."""
        return self.app.state.a2e.base_url

    def ws(self, path: str) -> str:
        return self.url.replace("http://", "ws://", 1) + path


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    servers: list[EmbeddedServer] = []

    async def start(**overrides: Any) -> Served:
        settings = bridge_settings(tmp_path, a2e_api_key=None, sim_seconds_per_char=0.002, **overrides)
        assert settings.uses_simulator
        app = create_app(settings)
        server = EmbeddedServer.for_app(app)
        servers.append(server)
        return Served(await server.start(), app)

    yield start
    for server in servers:
        await server.stop()


async def open_room(bridge: Served, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=bridge.url, headers=headers, timeout=10) as http:
        return await create_room(http, expire_seconds=300, qa_context=QA_SECRET)


async def ws_refusal(url: str, headers: dict[str, str]) -> tuple[int, str] | None:
    """How the server refused a websocket (close code and reason), or None if it let it listen."""
    async with connect(url, additional_headers=headers, open_timeout=5) as ws:
        try:
            await asyncio.wait_for(await ws.ping(), 5)  # answered only while the server keeps it open
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    return None


def is_a2e_refusal(r: httpx.Response) -> None:
    """A2E's refusal of a key: a non-zero code and a msg (HTTP 200 for a wrong key, 401 for none)."""
    body = r.json()
    assert r.status_code in (200, 401) and body["code"] == 401 and body["msg"] and body["data"] is None, r.text


async def trusted_state(bridge: Served) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=bridge.url, headers=TRUSTED) as http:
        r = await http.get("/_a2e/_sim/state")
        assert r.status_code == 200, r.text
        return r.json()


async def test_with_client_keys_the_mount_is_closed_to_all_but_trusted_tenants(serve: Callable[..., Any]) -> None:
    bridge = await serve(api_keys=KEYS, passthrough_tenants=["acme"])
    room = await open_room(bridge, GLOBEX)
    channel = room["channel"]
    for who, headers in REFUSED.items():
        async with httpx.AsyncClient(base_url=bridge.url, headers=headers) as http:
            # control routes: the bridge's 401
            for method, path, body in [("GET", "/_a2e/_sim/state", None), ("GET", "/_a2e/_sim/faults", None),
                                       ("POST", "/_a2e/_sim/faults", {"endpoint": "agora_token", "kind": "code_1001"}),
                                       ("DELETE", "/_a2e/_sim/faults", None), ("GET", "/_a2e/_sim/health", None),
                                       ("GET", "/_a2e/%5Fsim/state", None)]:
                r = await http.request(method, path, json=body)
                assert_error(r, 401, "unauthorized")
                assert channel not in r.text, who
            refusal = await ws_refusal(bridge.ws(f"/_a2e/_sim/rtc/{channel}"), headers)
            assert refusal is not None, f"{who} could listen to globex's room"
            assert refusal[0] == 4401 and refusal[1], refusal  # the bridge's close code for a refused key
            # A2E routes: the simulator refuses every key but the bridge's own
            r = await http.get("/_a2e/api/v1/streaming-avatar/get-qa-context", params={"channel": channel})
            is_a2e_refusal(r)
            assert QA_SECRET not in r.text
            for path in ("speak", "ask", "leave"):
                is_a2e_refusal(await http.post(f"/_a2e/api/v1/streaming-avatar/{path}",
                                               json={"channel": channel, "text": "hijacked"}))
            is_a2e_refusal(await http.get("/_a2e/api/v1/user/remainingCoins"))
    # nothing happened to globex's room, no fault was injected, rooms can still be opened
    state = await trusted_state(bridge)
    (sim_room,) = [r for r in state["rooms"] if r["channel"] == channel]
    assert sim_room["status"] == "open" and sim_room["commands"] == 0 and sim_room["qa_context_chars"] == len(QA_SECRET)
    async with httpx.AsyncClient(base_url=bridge.url, headers=TRUSTED) as http:
        assert (await http.get("/_a2e/_sim/faults")).json() == {"faults": []}
    await open_room(bridge, GLOBEX)


async def test_a_trusted_tenant_may_use_the_controls_but_not_the_a2e_routes(serve: Callable[..., Any]) -> None:
    bridge = await serve(api_keys=KEYS, passthrough_tenants=["acme"])
    room = await open_room(bridge, GLOBEX)
    async with httpx.AsyncClient(base_url=bridge.url, headers=TRUSTED) as http:
        assert room["channel"] in [r["channel"] for r in (await trusted_state(bridge))["rooms"]]
        r = await http.post("/_a2e/_sim/faults", json={"endpoint": "remaining_coins", "kind": "http_500", "rate": 0})
        assert r.status_code == 201 and len(r.json()["faults"]) == 1
        assert (await http.delete("/_a2e/_sim/faults")).json() == {"cleared": 1}
        # the A2E routes are the bridge's alone, trusted tenant or not (they have /v1/a2e)
        is_a2e_refusal(await http.get("/_a2e/api/v1/streaming-avatar/get-qa-context",
                                      params={"channel": room["channel"]}))
        assert (await http.post("/v1/a2e/remaining_coins")).status_code == 200
    assert await ws_refusal(bridge.ws(f"/_a2e/_sim/rtc/{room['channel']}"), TRUSTED) is None


async def test_the_loopback_port_needs_the_per_process_key(serve: Callable[..., Any]) -> None:
    bridge = await serve(api_keys=KEYS, passthrough_tenants=["acme"])
    room = await open_room(bridge, GLOBEX)
    sim_ws = bridge.sim_url.replace("http://", "ws://", 1)
    for who, headers in {**REFUSED, "a trusted tenant": TRUSTED}.items():
        async with httpx.AsyncClient(base_url=bridge.sim_url, headers=headers) as http:
            for method, path in [("GET", "/_sim/state"), ("GET", "/_sim/faults"), ("DELETE", "/_sim/faults")]:
                r = await http.request(method, path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (who, r.text)
            r = await http.post("/_sim/faults", json={"endpoint": "*", "kind": "code_1001"})
            assert r.status_code == 401, who
            is_a2e_refusal(await http.get("/api/v1/streaming-avatar/get-qa-context",
                                          params={"channel": room["channel"]}))
            is_a2e_refusal(await http.post("/api/v1/streaming-avatar/leave", json={"channel": room["channel"]}))
        refusal = await ws_refusal(f"{sim_ws}/_sim/rtc/{room['channel']}", headers)
        assert refusal is not None and refusal[0] == 4401, who
    async with httpx.AsyncClient(base_url=bridge.sim_url) as http:
        assert (await http.get("/_sim/health")).json() == {"ok": True}  # a liveness probe, nothing more
    assert (await trusted_state(bridge))["open_rooms"] == 1
    await open_room(bridge, GLOBEX)  # no fault got in


async def test_the_bridge_itself_still_uses_its_simulator(serve: Callable[..., Any]) -> None:
    """Rooms, commands and the simulated event observer (which connects to the loopback port's
    /_sim/rtc with the per-process key) work as before."""
    bridge = await serve(api_keys=KEYS, passthrough_tenants=["acme"])
    room = await open_room(bridge, GLOBEX)
    feed = bridge.app.state.simulator.app.state.sim_feed
    await poll(lambda: feed.subscribers(room["channel"]) >= 1)  # the observer is in: no event can be missed
    url = bridge.ws(f"/v1/rooms/{room['id']}/ws")
    async with connect(f"{url}?ticket={room['ws_ticket']}", open_timeout=5) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "room"
        await ws.send(json.dumps({"type": "ask", "id": "1", "text": "What is the discount code?"}))

        async def final_reply() -> dict[str, Any]:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "reply" and frame["final"]:
                    return frame

        reply = await final_reply()
    assert reply["text"]  # the answer travelled through the simulator's event feed
    async with httpx.AsyncClient(base_url=bridge.url, headers=GLOBEX) as http:
        r = await http.delete(f"/v1/rooms/{room['id']}")
        assert r.status_code == 200 and r.json()["state"] == "closed"


async def test_dev_mode_shows_the_simulator_state(serve: Callable[..., Any]) -> None:
    bridge = await serve()
    room = await open_room(bridge, {})
    async with httpx.AsyncClient(base_url=bridge.url, headers={"Authorization": "Bearer anything"}) as http:
        for headers in ({}, {"Authorization": "Bearer anything"}):
            r = await http.get("/_a2e/_sim/state", headers=headers)
            assert r.status_code == 200 and room["channel"] in r.text
        assert (await http.get("/_a2e/_sim/faults")).json() == {"faults": []}
        # the A2E routes stay the bridge's alone, even in development mode
        is_a2e_refusal(await http.get("/_a2e/api/v1/user/remainingCoins"))
    assert await ws_refusal(bridge.ws(f"/_a2e/_sim/rtc/{room['channel']}"), {}) is None
    async with httpx.AsyncClient(base_url=bridge.sim_url) as http:
        assert (await http.get("/_sim/state")).status_code == 401


# -- the simulator's own keys (SIM_API_KEYS, a2e-bridge simulate --api-key) ------------------------
async def test_simulator_keys_guard_a2e_routes_and_controls() -> None:
    app = create_simulator_app(SimConfig(api_keys=("k1", "k2")))
    server = EmbeddedServer.for_app(app)
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for key in ("k1", "k2"):
                r = await http.get("/api/v1/user/remainingCoins", headers={"Authorization": f"Bearer {key}"})
                assert r.json()["code"] == 0
                assert (await http.get("/_sim/state", headers={"Authorization": f"Bearer {key}"})).status_code == 200
            r = await http.get("/api/v1/user/remainingCoins", headers={"Authorization": "Bearer k3"})
            assert r.status_code == 200 and r.json()["code"] == 401 and r.json()["msg"] == "invalid token"
            assert (await http.get("/_sim/state", headers={"Authorization": "Bearer k3"})).status_code == 401
        assert "k1" not in repr(app.state.sim.config)
    finally:
        await server.stop()


async def test_without_keys_the_simulator_is_open_as_before(sim: Any) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        assert (await http.get("/_sim/state")).status_code == 200
        r = await http.get("/api/v1/user/remainingCoins", headers={"Authorization": "Bearer whatever"})
        assert r.json()["code"] == 0
    await poll(lambda: sim.state.requests >= 2)


# -- a key the simulator refuses, as the bridge meets it ------------------------------------------
SIM_KEY = "sk_sim_GOOD_2f7c"
BAD_KEY = "sk_sim_REVOKED_91d0"


def test_serve_refuses_to_start_with_a_key_a2e_refuses(tmp_path: Path) -> None:
    """``a2e-bridge simulate`` with keys (``SIM_API_KEYS`` and ``--api-key``) and ``a2e-bridge serve``
    in front of it: a refused A2E_API_KEY is a clear start-up error, not a 502 on every request."""
    port = free_port()
    sim = spawn_cli("simulate", "--port", str(port), "--api-key", SIM_KEY, "--api-key", "second-key",
                    env={"BRIDGE_LOG_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sim/health")
        refused = httpx.get(f"{url}/api/v1/user/remainingCoins", headers={"Authorization": f"Bearer {BAD_KEY}"})
        assert refused.status_code == 200 and refused.json()["code"] == 401 and refused.json()["msg"]
        env = {"A2E_BASE_URL": url, "BRIDGE_API_KEYS": "acme:client-key", "BRIDGE_DB": str(tmp_path / "b.db"),
               "BRIDGE_EVENT_SOURCE": "none", "BRIDGE_PORT": str(free_port())}
        bad = spawn_cli("serve", env={**env, "A2E_API_KEY": BAD_KEY})
        output, _ = bad.communicate(timeout=30)
        assert bad.returncode != 0, output
        assert "refused A2E_API_KEY" in output and "invalid token" in output and url in output, output
        assert "Traceback" not in output and BAD_KEY not in output
        good = spawn_cli("serve", env={**env, "A2E_API_KEY": SIM_KEY})
        try:
            wait_http(f"http://127.0.0.1:{env['BRIDGE_PORT']}/healthz")
            ready = httpx.get(f"http://127.0.0.1:{env['BRIDGE_PORT']}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
        finally:
            good.terminate()
            output, _ = good.communicate(timeout=30)
        assert "Traceback" not in output and SIM_KEY not in output
    finally:
        sim.terminate()
        sim.communicate(timeout=30)


async def test_a_key_refused_later_makes_the_bridge_not_ready(sim_factory: Any, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A key revoked while the bridge runs: /readyz says so (and the log, once), besides the 502
    upstream_auth of the calls that need A2E."""
    sim = await sim_factory(api_keys=("only-this-key",))  # the bridge's client presents another
    async with contextlib.AsyncExitStack() as stack:
        bridge = await start_bridge(stack, sim, bridge_settings(tmp_path, event_source="none",
                                                                ready_cache_seconds=0), in_process=True)
        for _ in range(2):
            r = await bridge.http.get("/readyz")
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["a2e"] is False and checks["a2e_error"] == "A2EAuthError"
            assert "A2E_API_KEY" in checks["a2e_message"]
        assert sum("refuses the bridge's key" in rec.getMessage() for rec in caplog.records) == 1
        assert_error(await bridge.http.post("/v1/rooms", json={}), 502, "upstream_auth")
