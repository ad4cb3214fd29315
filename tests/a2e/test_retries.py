"""Retries happen only where re-sending is safe, counted on the simulator's side.

Faults are applied in the simulator's middleware, before the handler counts the call: the number of
HTTP attempts is the fault's ``hits`` plus the growth of the operation's counter in the simulator's
state (what ``GET /_sim/faults`` and ``GET /_sim/state`` report).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.errors import (
    A2EError,
    A2ENotFound,
    A2ERateLimited,
    A2ETimeout,
    A2EUnavailable,
)
from bridge.serving import EmbeddedServer
from bridge.simulator.app import create_simulator_app
from bridge.simulator.state import AVATARS, SimConfig
from tests.helpers import Sim, add_fault, clear_faults, fault_hits, free_port

from .examples import Resolver

AVATAR = AVATARS[0]["_id"]
ATTEMPTS = 3


class Attempts:
    """Reads how many HTTP requests reached the simulator for one operation."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.base = 0

    def state(self) -> dict[str, Any]:
        return self.sim.state.snapshot()

    def hits(self) -> int:
        return sum(fault_hits(self.sim))

    def start(self, operation: str, **spec: Any) -> None:
        """Install a fault on ``operation`` (the only one) and remember its counter."""
        self.operation = operation
        self.base = self.sim.state.counters.get(operation, 0)
        clear_faults(self.sim)
        add_fault(self.sim, endpoint=operation, **spec)

    def handled(self) -> int:
        return self.sim.state.counters.get(self.operation, 0) - self.base

    def total(self) -> int:
        return self.hits() + self.handled()

    def clear(self) -> None:
        clear_faults(self.sim)


@pytest.fixture(scope="module")
def shared(module_sim: Sim, module_a2e: A2EClient) -> tuple[A2EClient, Attempts]:
    return module_a2e, Attempts(module_sim)


@pytest.fixture
def attempts(sim: Sim) -> Attempts:
    return Attempts(sim)


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="bridge.a2e")
    return caplog


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum("retrying A2E call" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
async def test_one_server_error_is_retried_only_where_safe(operation: str, shared: tuple[A2EClient, Attempts]) -> None:
    """Every row: one HTTP 500, then the call succeeds after one retry if safe, else raises after one try."""
    client, counter = shared
    params = await Resolver(client).params(operation)  # create what the call needs, before the fault
    counter.start(operation, kind="http_500", times=1)
    if ENDPOINTS[operation].retry_safe:
        await client.call(operation, params)
        assert counter.hits() == 1 and counter.handled() == 1, "expected exactly one retry"
    else:
        with pytest.raises(A2EUnavailable):
            await client.call(operation, params)
        assert counter.hits() == 1 and counter.handled() == 0, "a non-safe call was sent twice"
    counter.clear()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("kind", ["http_500", "drop_connection"])
async def test_safe_operation_gives_up_after_max_attempts(kind: str, shared: tuple[A2EClient, Attempts],
                                                          retry_log: pytest.LogCaptureFixture) -> None:
    a2e, attempts = shared
    attempts.start("remaining_coins", kind=kind, seconds=1)
    with pytest.raises((A2EUnavailable, A2ERateLimited)):
        await a2e.remaining_coins()
    assert attempts.hits() == a2e.max_attempts == ATTEMPTS
    assert attempts.handled() == 0
    assert retries_logged(retry_log) == ATTEMPTS - 1
    attempts.clear()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", ["speak", "ask", "agora_token", "video_generate"])
@pytest.mark.parametrize("kind", ["http_500", "http_429", "drop_connection"])
async def test_unsafe_operations_are_tried_once(operation: str, kind: str, shared: tuple[A2EClient, Attempts],
                                                retry_log: pytest.LogCaptureFixture) -> None:
    a2e, attempts = shared
    params = await Resolver(a2e).params(operation)
    attempts.start(operation, kind=kind, seconds=1)  # unlimited: a retry would hit it again
    with pytest.raises((A2EUnavailable, A2ERateLimited)):
        await a2e.call(operation, params)
    assert attempts.total() == 1
    assert retries_logged(retry_log) == 0
    attempts.clear()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
async def test_work_done_but_the_answer_lost(operation: str, shared: tuple[A2EClient, Attempts],
                                             retry_log: pytest.LogCaptureFixture) -> None:
    """A2E carried the call out and the answer never came back (``lost_answer``): a safe operation is
    sent again and succeeds; any other is carried out once, and its caller learns the outcome is unknown."""
    client, counter = shared
    params = await Resolver(client).params(operation)
    safe = ENDPOINTS[operation].retry_safe
    counter.start(operation, kind="lost_answer", times=1 if safe else None)  # unlimited: a resend would be lost too
    if safe:
        await client.call(operation, params)
        assert counter.hits() == 1 and counter.handled() == 2 and retries_logged(retry_log) == 1
    else:
        with pytest.raises(A2EUnavailable) as info:
            await client.call(operation, params)
        assert info.value.outcome_unknown and info.value.request_sent and info.value.status is None
        assert counter.hits() == 1 and counter.handled() == 1, "carried out once, never resent"
        assert retries_logged(retry_log) == 0
    counter.clear()


async def test_a_late_answer_is_an_unknown_outcome(sim_factory: Any, retry_log: pytest.LogCaptureFixture) -> None:
    sim = await sim_factory()
    counter = Attempts(sim)
    async with A2EClient("k", sim.url, timeout=0.3, backoff_max=0.01) as client:
        room = await client.agora_token(AVATAR, 60)
        counter.start("speak", kind="late_answer", seconds=5)
        with pytest.raises(A2ETimeout) as info:
            await client.speak(room["channel"], "said once")
        assert info.value.outcome_unknown
        assert [c["text"] for c in sim.state.rooms[room["channel"]].commands] == ["said once"]
        assert counter.hits() == 1 and retries_logged(retry_log) == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_long_retry_after_is_not_waited_for(shared: tuple[A2EClient, Attempts],
                                                  retry_log: pytest.LogCaptureFixture) -> None:
    """Retry-After longer than one backoff may last: the caller gets the error and its retry_after at once."""
    a2e, attempts = shared
    attempts.start("remaining_coins", kind="http_429", seconds=30)
    with pytest.raises(A2ERateLimited) as info:
        await a2e.remaining_coins()
    assert info.value.retry_after == 30
    assert attempts.total() == 1
    assert retries_logged(retry_log) == 0
    attempts.clear()


async def test_safe_operation_waits_retry_after_then_succeeds(sim: Any, attempts: Attempts,
                                                              retry_log: pytest.LogCaptureFixture) -> None:
    async with A2EClient("k", sim.url, timeout=2.0, max_attempts=3, backoff_max=1.0) as a2e:
        attempts.start("remaining_coins", kind="http_429", times=1, seconds=1)  # Retry-After: 1
        assert "coins" in await a2e.remaining_coins()
    assert attempts.hits() == 1 and attempts.handled() == 1
    (message,) = [r.getMessage() for r in retry_log.records if "retrying A2E call" in r.getMessage()]
    assert "again in 1.00s" in message


async def test_leave_is_retried_and_refunds_once(sim: Any, a2e: A2EClient, attempts: Attempts) -> None:
    room = await a2e.agora_token(AVATAR, 600)
    after_mint = attempts.state()["coins"]
    attempts.start("leave", kind="drop_connection", times=2)
    assert await a2e.leave(room["channel"]) == {}
    assert attempts.hits() == 2 and attempts.handled() == 1
    state = attempts.state()
    (record,) = [r for r in state["rooms"] if r["channel"] == room["channel"]]
    assert record["status"] == "left"
    assert state["coins"] == after_mint + record["refunded"]
    # and leaving again changes nothing
    await a2e.leave(room["channel"])
    assert attempts.state()["coins"] == state["coins"]


async def test_timeout_is_not_retried_for_unsafe_operations(sim_factory: Any, retry_log: pytest.LogCaptureFixture) -> None:
    sim = await sim_factory()
    counter = Attempts(sim)
    async with A2EClient("k", sim.url, timeout=0.3, backoff_max=0.01) as client:
        room = await client.agora_token(AVATAR, 60)
        counter.start("speak", kind="timeout", seconds=30)
        with pytest.raises(A2ETimeout):
            await client.speak(room["channel"], "hello")
        assert counter.total() == 1
        assert retries_logged(retry_log) == 0
        # a safe operation is retried after a timeout
        counter.start("remaining_coins", kind="timeout", seconds=30, times=1)
        await client.remaining_coins()
        assert counter.hits() == 1 and counter.handled() == 1
        assert retries_logged(retry_log) == 1


async def test_request_never_sent_is_retried_even_for_speak(retry_log: pytest.LogCaptureFixture) -> None:
    """Connection refused on the first attempt(s); the simulator starts listening meanwhile; speak arrives once."""
    port = free_port()
    first_refusal = asyncio.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retrying A2E call" in record.getMessage():
                first_refusal.set()

    handler = OnRetry()
    logging.getLogger("bridge.a2e").addHandler(handler)
    app = create_simulator_app(SimConfig())
    server = EmbeddedServer.for_app(app, port=port)
    try:
        async with A2EClient("k", f"http://127.0.0.1:{port}", max_attempts=200, backoff_max=0.02) as client:
            call = asyncio.create_task(client.speak("sim_000000000000", "hello"))
            await asyncio.wait_for(first_refusal.wait(), 10)
            await server.start()
            with pytest.raises(A2ENotFound):  # it reached the simulator, which knows no such channel
                await asyncio.wait_for(call, 10)
        assert app.state.sim.counters == {"speak": 1}
        assert retries_logged(retry_log) >= 1
    finally:
        logging.getLogger("bridge.a2e").removeHandler(handler)
        if server.started:
            await server.stop()


async def test_refused_connection_exhausts_attempts(retry_log: pytest.LogCaptureFixture) -> None:
    async with A2EClient("k", f"http://127.0.0.1:{free_port()}", max_attempts=4, backoff_max=0.01) as client:
        with pytest.raises(A2EUnavailable) as info:
            await client.speak("sim_x", "hello")
    assert not info.value.request_sent
    assert retries_logged(retry_log) == 3


@pytest.mark.asyncio(loop_scope="module")
async def test_refusals_are_not_retried(shared: tuple[A2EClient, Attempts]) -> None:
    """A2E's own refusals (4xx, non-zero codes) are answers, not failures: never re-sent."""
    a2e, attempts = shared
    attempts.start("video_status", kind="http_500", rate=0)  # a rule that never fires
    for _ in range(2):
        with pytest.raises(A2EError):
            await a2e.call("video_status", _id="0123456789abcdef01234567")
    assert attempts.total() == 2
    attempts.clear()
