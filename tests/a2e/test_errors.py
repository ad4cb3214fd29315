"""Every A2EError class, provoked for real against the simulator over loopback.

Every raised error is checked for what A2E sent (code, msg, trace_id, HTTP status), and for the
API key: it must never appear in ``str``/``repr``/``to_dict`` of an error nor in any log record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.errors import (
    A2EAuthError,
    A2EBadRequest,
    A2ECapacityBusy,
    A2EError,
    A2EInsufficientCredits,
    A2ENotFound,
    A2ERateLimited,
    A2ETimeout,
    A2EUnavailable,
    error_from_reply,
)
from bridge.simulator.state import AVATARS
from tests.helpers import add_fault, free_port

KEY = "sk_CANARY-d0-not-l3ak-9f27c1"
AVATAR = AVATARS[0]["_id"]


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
        assert KEY not in record.getMessage(), record
        assert KEY not in repr(record.args)


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., A2EClient]]:
    clients: list[A2EClient] = []

    def make(url: str, key: str = KEY, **kw: Any) -> A2EClient:
        kw.setdefault("timeout", 2.0)
        kw.setdefault("backoff_max", 0.01)
        client = A2EClient(key, url, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(sim: Any, client_factory: Callable[..., A2EClient]) -> A2EClient:
    return client_factory(sim.url)


def check(exc: A2EError, *, code: int | None, status: int | None, operation: str, trace: bool = True,
          msg: str | None = None) -> None:
    """What A2E said is on the error, and the key is nowhere in it."""
    assert exc.code == code
    assert exc.status == status
    assert exc.operation == operation
    assert isinstance(exc.msg, str) and exc.msg
    if msg is not None:
        assert msg in exc.msg
    if trace:
        assert isinstance(exc.trace_id, str) and len(exc.trace_id) >= 16
        assert exc.trace_id in str(exc)
    else:
        assert exc.trace_id is None
    text = str(exc)
    assert operation in text and exc.msg in text
    as_dict = exc.to_dict()
    assert as_dict["kind"] == type(exc).__name__
    assert {k: as_dict[k] for k in ("code", "msg", "trace_id", "status", "operation")} == {
        "code": exc.code, "msg": exc.msg, "trace_id": exc.trace_id, "status": exc.status, "operation": operation}
    json.dumps(as_dict)  # serialisable as is
    chain: BaseException | None = exc
    while chain is not None:
        for rendering in (str(chain), repr(chain), json.dumps(as_dict)):
            assert KEY not in rendering
        chain = chain.__cause__ or chain.__context__


# -- A2EAuthError ---------------------------------------------------------------------------
async def test_missing_key_is_http_401(sim: Any, client_factory: Callable[..., A2EClient]) -> None:
    with pytest.raises(A2EAuthError) as info:
        await client_factory(sim.url, key="").call("remaining_coins")
    check(info.value, code=401, status=401, operation="remaining_coins")


async def test_wrong_key_is_http_200_with_code_401(sim_factory: Any, client_factory: Callable[..., A2EClient]) -> None:
    sim = await sim_factory(api_keys=("good",))
    with pytest.raises(A2EAuthError) as info:
        await client_factory(sim.url).call("agora_token", avatar_id=AVATAR)
    check(info.value, code=401, status=200, operation="agora_token", msg="invalid token")
    # the right key passes, and nothing was charged for the refused one
    coins = await client_factory(sim.url, key="good").call("remaining_coins")
    assert coins["coins"] == sim.state.config.coins


async def test_auth_errors_are_not_retried(sim_factory: Any, client_factory: Callable[..., A2EClient]) -> None:
    sim = await sim_factory(api_keys=("good",))
    with pytest.raises(A2EAuthError):
        await client_factory(sim.url).call("remaining_coins")  # a safe op, yet one attempt only
    assert sim.state.counters["remaining_coins"] == 1


# -- A2EBadRequest --------------------------------------------------------------------------
async def test_missing_field(client: A2EClient) -> None:
    with pytest.raises(A2EBadRequest) as info:
        await client.call("agora_token", expire_seconds=60)
    assert type(info.value) is A2EBadRequest
    check(info.value, code=400, status=400, operation="agora_token", msg="avatar_id")


async def test_wrong_type(client: A2EClient) -> None:
    with pytest.raises(A2EBadRequest) as info:
        await client.call("video_generate", anchor_id=AVATAR, anchor_type="0", audioSrc="https://x.example/a.mp3")
    assert type(info.value) is A2EBadRequest
    check(info.value, code=400, status=400, operation="video_generate", msg="anchor_type")


async def test_a2e_code_30005_with_http_200(client: A2EClient) -> None:
    with pytest.raises(A2EBadRequest) as info:
        await client.call("video_generate", anchor_id=AVATAR, anchor_type=0, audioSrc="https://x.example/a.mp3",
                          back_id="a", custom_back_id="b")
    assert type(info.value) is A2EBadRequest
    check(info.value, code=30005, status=200, operation="video_generate")


async def test_qa_context_too_long(client: A2EClient) -> None:
    room = await client.agora_token(AVATAR, 60)
    with pytest.raises(A2EBadRequest) as info:
        await client.set_qa_context(room["channel"], "x" * 5001)
    check(info.value, code=400, status=200, operation="set_qa_context", msg="5000")


async def test_missing_path_parameter_is_refused_before_sending(sim: Any, client: A2EClient) -> None:
    with pytest.raises(ValueError, match="_id"):
        await client.call("video_delete")
    assert "video_delete" not in sim.state.counters


# -- A2ENotFound ----------------------------------------------------------------------------
async def test_unknown_task_id(client: A2EClient) -> None:
    with pytest.raises(A2ENotFound) as info:
        await client.call("video_status", _id="0123456789abcdef01234567")
    check(info.value, code=404, status=404, operation="video_status")
    with pytest.raises(A2ENotFound) as info:
        await client.call("dubbing_get", _id="0123456789abcdef01234567")
    check(info.value, code=404, status=404, operation="dubbing_get")


async def test_ask_on_unknown_and_closed_channels(client: A2EClient) -> None:
    with pytest.raises(A2ENotFound) as info:
        await client.ask("sim_doesnotexist", "hello?")
    check(info.value, code=404, status=200, operation="ask", msg="sim_doesnotexist")
    room = await client.agora_token(AVATAR, 60)
    await client.leave(room["channel"])
    with pytest.raises(A2ENotFound) as info:
        await client.speak(room["channel"], "still there?")
    check(info.value, code=404, status=200, operation="speak", msg="left")


# -- A2EInsufficientCredits -----------------------------------------------------------------
async def test_insufficient_credits(sim_factory: Any, client_factory: Callable[..., A2EClient]) -> None:
    sim = await sim_factory(coins=30)
    client = client_factory(sim.url)
    with pytest.raises(A2EInsufficientCredits) as info:
        await client.agora_token(AVATAR, 3600)  # 60 coins
    check(info.value, code=1002, status=200, operation="agora_token", msg="insufficient")
    with pytest.raises(A2EInsufficientCredits) as info:
        await client.call("image_to_video_start", image_url="https://x.example/i.png")  # 100 coins
    check(info.value, code=1002, status=200, operation="image_to_video_start")
    assert (await client.remaining_coins())["coins"] == 30  # nothing charged
    assert sim.state.counters["agora_token"] == 1  # not retried


# -- A2ECapacityBusy ------------------------------------------------------------------------
async def test_capacity_at_max_channels(sim_factory: Any, client_factory: Callable[..., A2EClient]) -> None:
    sim = await sim_factory(max_channels=1)
    client = client_factory(sim.url)
    room = await client.agora_token(AVATAR, 60)
    with pytest.raises(A2ECapacityBusy) as info:
        await client.agora_token(AVATAR, 60)
    check(info.value, code=1001, status=200, operation="agora_token", msg="hosts are occupied")
    await client.leave(room["channel"])
    assert (await client.agora_token(AVATAR, 60))["channel"] != room["channel"]


async def test_capacity_fault(sim: Any, client: A2EClient) -> None:
    add_fault(sim, endpoint="agora_token", kind="code_1001", times=1)
    with pytest.raises(A2ECapacityBusy) as info:
        await client.agora_token(AVATAR, 60)
    check(info.value, code=1001, status=200, operation="agora_token")
    assert (await client.agora_token(AVATAR, 60))["channel"]


# -- A2ERateLimited -------------------------------------------------------------------------
async def test_rate_limited(sim: Any, client: A2EClient) -> None:
    add_fault(sim, endpoint="speak", kind="http_429", seconds=7)
    room = await client.agora_token(AVATAR, 60)
    with pytest.raises(A2ERateLimited) as info:
        await client.speak(room["channel"], "hi")
    check(info.value, code=429, status=429, operation="speak")
    assert info.value.retry_after == 7.0


# -- A2EUnavailable -------------------------------------------------------------------------
async def test_http_500(sim: Any, client: A2EClient, caplog: pytest.LogCaptureFixture) -> None:
    add_fault(sim, endpoint="/api/v1/streaming-avatar/agora-token", kind="http_500")
    with pytest.raises(A2EUnavailable) as info:
        await client.agora_token(AVATAR, 60)
    assert type(info.value) is A2EUnavailable and info.value.request_sent
    check(info.value, code=500, status=500, operation="agora_token", trace=False, msg="simulated internal error")
    # the failure was logged (so the no-key-in-logs guard had something to read)
    assert any("agora_token failed" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)


async def test_dropped_connection(sim: Any, client: A2EClient) -> None:
    add_fault(sim, endpoint="agora_token", kind="drop_connection")
    with pytest.raises(A2EUnavailable) as info:
        await client.agora_token(AVATAR, 60)
    assert type(info.value) is A2EUnavailable and info.value.request_sent and info.value.outcome_unknown
    check(info.value, code=None, status=None, operation="agora_token", trace=False)


async def test_connection_refused(client_factory: Callable[..., A2EClient]) -> None:
    client = client_factory(f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(A2EUnavailable) as info:
        await client.agora_token(AVATAR, 60)
    assert type(info.value) is A2EUnavailable and not info.value.request_sent and not info.value.outcome_unknown
    check(info.value, code=None, status=None, operation="agora_token", trace=False, msg="cannot connect")


# -- A2ETimeout -----------------------------------------------------------------------------
async def test_timeout(sim: Any, client_factory: Callable[..., A2EClient]) -> None:
    add_fault(sim, endpoint="ask", kind="timeout", seconds=20)
    client = client_factory(sim.url, timeout=0.3)
    room = await client.agora_token(AVATAR, 60)
    with pytest.raises(A2ETimeout) as info:
        await client.ask(room["channel"], "anyone?")
    assert isinstance(info.value, A2EUnavailable) and info.value.request_sent and info.value.outcome_unknown
    check(info.value, code=None, status=None, operation="ask", trace=False, msg="in time")


# -- the mapping itself, for replies the simulator never sends --------------------------------
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"code": 0, "data": {}}, None),
        (200, {"code": 200, "data": {}}, None),
        (200, {"code": 403, "msg": "forbidden"}, A2EAuthError),
        (403, None, A2EAuthError),
        (200, {"code": 429, "msg": "slow down"}, A2ERateLimited),
        (200, {"code": 77, "msg": "Insufficient balance of coins"}, A2EInsufficientCredits),
        (502, None, A2EUnavailable),
        (200, "<html>", A2EUnavailable),
        (200, ["not", "an", "envelope"], A2EUnavailable),
        (404, {"msg": "nope"}, A2ENotFound),
        (400, {"code": 12, "msg": "bad"}, A2EBadRequest),
    ],
)
def test_error_from_reply(status: int, body: Any, expected: type[A2EError] | None) -> None:
    error = error_from_reply(status=status, body=body, operation="op")
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected, error
        assert str(error) and error.status == status
