"""Shared fixtures: the simulator and the bridge served by uvicorn on loopback (real sockets)."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.a2e.client import A2EClient
from bridge.app import create_app
from bridge.serving import EmbeddedServer
from bridge.settings import Settings
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import SimConfig, SimState

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sim:
    url: str
    app: Any

    @property
    def state(self) -> SimState:
        return self.app.state.sim


@pytest.fixture
async def sim_factory() -> AsyncIterator[Callable[..., Any]]:
    servers: list[EmbeddedServer] = []

    async def start(**config: Any) -> Sim:
        config.setdefault("task_step_seconds", 0.05)
        config.setdefault("seconds_per_char", 0.002)
        app = create_simulator_app(SimConfig(**config), fault_seed=1)
        server = EmbeddedServer.for_app(app)
        servers.append(server)
        return Sim(await server.start(), app)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def sim(sim_factory: Callable[..., Any]) -> Sim:
    return await sim_factory()


@pytest.fixture
async def a2e(sim: Sim) -> AsyncIterator[A2EClient]:
    async with A2EClient("test-key", sim.url, timeout=2.0, backoff_max=0.05) as client:
        yield client


def bridge_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"db": str(tmp_path / "bridge.db"), "sweep_interval": 0.05, "a2e_timeout": 2.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class Bridge:
    url: str
    app: Any
    sim: Sim
    http: httpx.AsyncClient

    @property
    def rooms(self) -> Any:
        return self.app.state.rooms


@pytest.fixture
async def bridge_factory(tmp_path: Path, sim: Sim) -> AsyncIterator[Callable[..., Any]]:
    """Start a bridge (on its own port) talking to the ``sim`` fixture over loopback."""
    started: list[tuple[EmbeddedServer, A2EClient, httpx.AsyncClient]] = []

    async def start(*, headers: dict[str, str] | None = None, **overrides: Any) -> Bridge:
        settings = bridge_settings(tmp_path, **overrides)
        client = A2EClient("test-key", sim.url, timeout=settings.a2e_timeout, backoff_max=0.05)
        app = create_app(settings, a2e=client)
        server = EmbeddedServer.for_app(app)
        url = await server.start()
        http = httpx.AsyncClient(base_url=url, headers=headers or {}, timeout=20)
        started.append((server, client, http))
        return Bridge(url, app, sim, http)

    yield start
    for server, client, http in reversed(started):
        await http.aclose()
        await server.stop()
        await client.aclose()


@pytest.fixture
async def bridge(bridge_factory: Callable[..., Any]) -> Bridge:
    return await bridge_factory()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def spawn_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``a2e-bridge ARGS`` as a real child process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("A2E_API_KEY", None) if env is None or "A2E_API_KEY" not in env else None
    return subprocess.Popen([sys.executable, "-m", "bridge", *args], env=full_env, cwd=cwd or ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The bridge's one error shape: ``{"error": {"code", "message", "details"?}}`` with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def poll(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Wait until ``predicate()`` (sync or async) is truthy and return its value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
