"""bridge.a2e stands alone: one module speaks HTTP (with its connection pool), metrics come in through a hook, the client is
built from settings, unknown operations are the client's own error, and tasks do not need the client."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS, endpoint
from bridge.a2e.errors import A2EInvalidInput, A2ENotFound, A2EUnknownOperation
from bridge.a2e.tasks import wait_for

A2E_DIR = Path(__file__).resolve().parents[2] / "bridge" / "a2e"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_only_the_transport_and_its_pool_import_httpx_and_nothing_imports_the_rest_of_the_bridge() -> None:
    for path in A2E_DIR.glob("*.py"):
        modules = imported_modules(path)
        uses_httpx = any(m == "httpx" or m.startswith("httpx.") for m in modules)
        assert uses_httpx == (path.name in ("transport.py", "pool.py")), path.name
        assert not any(m.startswith("bridge") for m in modules), (path.name, modules)  # relative imports only
    assert ".client" not in imported_modules(A2E_DIR / "tasks.py")  # no circle client <-> tasks


async def test_calls_are_reported_through_the_hook(a2e: A2EClient, sim: Any) -> None:
    seen: list[tuple[str, str]] = []
    a2e.on_call = lambda operation, outcome, seconds: seen.append((operation, outcome)) if seconds >= 0 else None
    await a2e.call("remaining_coins")
    with pytest.raises(A2EInvalidInput):  # refused before sending: not an A2E call, not reported
        await a2e.call("voice_get", _id="../token/list")
    with pytest.raises(A2EInvalidInput):
        await a2e.call("language_detect", text=float("nan"))  # NaN is not JSON
    with pytest.raises(A2ENotFound):  # sent, and A2E refused it: reported with the error's class
        await a2e.call("voice_get", _id="0123456789abcdef01234567")
    assert seen == [("remaining_coins", "ok"), ("voice_get", "A2ENotFound")]


async def test_from_settings_is_the_constructor(sim: Any) -> None:
    settings = SimpleNamespace(a2e_api_key=SecretStr("k"), a2e_base_url="http://127.0.0.1:9",
                               a2e_timeout=3.0, a2e_max_attempts=2)
    client = A2EClient.from_settings(settings, base_url=sim.url)
    try:
        assert client.base_url == sim.url and client.max_attempts == 2
        assert "k" not in repr(client) and "k" not in repr(client.transport)
        assert isinstance(await client.remaining_coins(), dict)
    finally:
        await client.aclose()


def test_unknown_operations_are_the_clients_own_error() -> None:
    with pytest.raises(A2EUnknownOperation, match="unknown A2E operation 'speek'") as caught:
        endpoint("speek")
    assert isinstance(caught.value, KeyError) and caught.value.request_sent is False


def test_rows_carry_their_pass_through_policy() -> None:
    closed = {name for name, row in ENDPOINTS.items() if not row.passthrough}
    assert {"agora_token", "speak", "ask", "leave", "set_qa_context", "api_token_list"} <= closed
    assert all(ENDPOINTS[name].group in ("streaming", "tokens") for name in closed)


async def test_tasks_follow_any_caller() -> None:
    class Fake:
        def __init__(self) -> None:
            self.states = iter(["processing", "completed"])

        async def call(self, operation: str, params: dict[str, Any] | None = None, **fields: Any) -> Any:
            assert operation == "dubbing_get" and fields == {"_id": "t1"}
            return {"_id": "t1", "status": next(self.states), "result": "https://x/y.mp4"}

    status = await wait_for(Fake(), "dubbing_start", "t1", interval=0)
    assert status.succeeded and status.result_url == "https://x/y.mp4"
