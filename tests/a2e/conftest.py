"""Module-wide simulator fixtures: starting a simulator per test costs more than most tests here.

Tests using them must run in the module's event loop: ``@pytest.mark.asyncio(loop_scope="module")``.
They share state, so they create what they need and compare counters before/after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bridge.a2e.client import A2EClient
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import SimConfig
from tests.helpers import Sim, serve


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_sim() -> AsyncIterator[Sim]:
    app = create_simulator_app(SimConfig(task_step_seconds=0.02, seconds_per_char=0.002), fault_seed=1)
    async with serve(app) as url:
        yield Sim(url, app)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_a2e(module_sim: Sim) -> AsyncIterator[A2EClient]:
    async with A2EClient("test-key", module_sim.url, timeout=2.0, max_attempts=3, backoff_max=0.01) as client:
        yield client
