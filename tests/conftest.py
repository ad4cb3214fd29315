"""Shared fixtures: the A2E simulator (uvicorn on loopback) and bridges in front of it, in-process by
choice of the test module (``pytestmark = pytest.mark.in_process``) or under uvicorn. Helpers that
are not fixtures live in ``tests/helpers.py``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import SimConfig
from tests.fakes.llm import FakeLLM
from tests.helpers import Bridge, RedisServer, Sim, bridge_settings, serve, start_bridge


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (tests take their own database through ``redis_url``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed Redis database on the session's server (restarted if a test killed it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(16).startswith(b"+OK")
    return redis_server.url


@pytest.fixture
async def sim_factory() -> AsyncIterator[Callable[..., Any]]:
    """Start simulators (uvicorn, port 0) with ``SimConfig`` fields; ``clock=`` replaces the time
    their state runs on (``SimState.clock``)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*, clock: Callable[[], float] | None = None, **config: Any) -> Sim:
            config.setdefault("task_step_seconds", 0.05)
            config.setdefault("seconds_per_char", 0.002)
            app = create_simulator_app(SimConfig(**config), fault_seed=1)
            if clock is not None:
                app.state.sim.clock = clock
            return Sim(await stack.enter_async_context(serve(app)), app)

        yield start


@pytest.fixture
async def sim(sim_factory: Callable[..., Any]) -> Sim:
    return await sim_factory()


@pytest.fixture
async def a2e(sim: Sim) -> AsyncIterator[A2EClient]:
    async with A2EClient("test-key", sim.url, timeout=2.0, backoff_max=0.05) as client:
        yield client


@pytest.fixture
async def bridge_factory(request: pytest.FixtureRequest, tmp_path: Path, sim: Sim) -> AsyncIterator[Callable[..., Any]]:
    """Start bridges talking to the ``sim`` fixture: ``start(headers=..., in_process=..., clock=...,
    **settings)``. ``in_process`` defaults to the test's markers: in-process under ``in_process``,
    unless ``real_server``; otherwise uvicorn on its own port."""
    default_in_process = (request.node.get_closest_marker("in_process") is not None
                          and request.node.get_closest_marker("real_server") is None)
    async with contextlib.AsyncExitStack() as stack:

        async def start(*, headers: dict[str, str] | None = None, in_process: bool | None = None,
                        clock: Callable[[], float] | None = None, **overrides: Any) -> Bridge:
            return await start_bridge(stack, sim, bridge_settings(tmp_path, **overrides), headers=headers, clock=clock,
                                      in_process=default_in_process if in_process is None else in_process)

        yield start


@pytest.fixture
async def bridge(bridge_factory: Callable[..., Any]) -> Bridge:
    return await bridge_factory()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """A local OpenAI-compatible streaming server (``tests/fakes/llm.py``) on port 0; ``llm.url``."""
    fake = FakeLLM()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake
