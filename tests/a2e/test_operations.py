"""Every operation of the endpoint table, called through A2EClient against the simulator over loopback.

The tests are parametrized over ``ENDPOINTS``: a new row is covered automatically, and fails until
``examples.EXAMPLES`` gives it example parameters and an expected shape.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.tasks import task_status

from .examples import EXAMPLES, OBJECT_ID, Resolver, check_shape

# One simulator (real uvicorn on loopback) for the whole module, see tests/a2e/conftest.py.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def a2e(module_a2e: A2EClient) -> A2EClient:
    return module_a2e


@pytest.fixture
def sim_app(module_sim: Any) -> Any:
    return module_sim.app


# Fields some answers must carry, beyond their shape.
KEYS: dict[str, set[str]] = {
    "login_token": {"token"},
    "api_token_generate": {"_id", "token"},
    "agora_token": {"token", "appId", "channel", "uid", "expire_epoch_timestamp", "expire_date_UTC"},
    "get_qa_context": {"text"},
    "remaining_coins": {"coins", "diamonds"},
    "language_detect": {"language"},
    "save_url": {"url"},
}


async def test_every_operation_has_an_example() -> None:
    missing = sorted(set(ENDPOINTS) - set(EXAMPLES))
    stale = sorted(set(EXAMPLES) - set(ENDPOINTS))
    assert not missing, f"add example params and a shape to tests/a2e/examples.py for: {missing}"
    assert not stale, f"examples for operations no longer in the table: {stale}"


async def test_every_required_field_is_in_its_example() -> None:
    for name, row in ENDPOINTS.items():
        params, _ = EXAMPLES.get(name, ({}, ""))
        absent = [f for f in (*row.required, *row.path_params) if f not in params]
        assert not absent, f"{name}: example lacks {absent}"


@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
async def test_operation(operation: str, a2e: A2EClient, sim_app: Any) -> None:
    if operation not in EXAMPLES:
        pytest.fail(f"no example for {operation}: add one to tests/a2e/examples.py")
    _, shape = EXAMPLES[operation]
    resolver = Resolver(a2e)
    params = await resolver.params(operation)
    before = sim_app.state.sim.counters.get(operation, 0)

    envelope = await a2e.call_envelope(operation, params)

    assert envelope["code"] == 0
    assert isinstance(envelope.get("trace_id"), str) and envelope["trace_id"]
    data = envelope["data"]
    check_shape(operation, shape, data)
    assert KEYS.get(operation, set()) <= set(data if isinstance(data, dict) else {}), data
    assert sim_app.state.sim.counters.get(operation, 0) == before + 1, "the simulator route for this row was not hit once"
    row = ENDPOINTS[operation]
    if row.creates_task:
        # the status operation knows the new task
        status = task_status(data["_id"], await a2e.call(row.status_op, _id=data["_id"]))
        assert status.task_id == data["_id"] and status.status != "unknown"


# Where a new task shows up (None: A2E has no list for that family).
LISTED_IN: dict[str, str | None] = {
    "voice_clone_train": "voice_clone_training_records",
    "video_generate": "video_list",
    "avatar_train": "avatar_training_records",
    "avatar_continue_training": "avatar_training_records",
    "avatar_clone_voice": "voice_clone_training_records",
    "face_swap_preview_add": None,
    "face_swap_task_add": "face_swap_task_list",
    "dubbing_start": "dubbing_list",
    "image_to_video_start": "image_to_video_list",
    "caption_removal_start": "caption_removal_list",
}


@pytest.mark.parametrize("operation", sorted(n for n, r in ENDPOINTS.items() if r.creates_task))
async def test_new_tasks_appear_in_their_lists(operation: str, a2e: A2EClient) -> None:
    assert operation in LISTED_IN, f"say in LISTED_IN where a {operation} task is listed"
    data = await a2e.call(operation, await Resolver(a2e).params(operation))
    assert OBJECT_ID.match(data["_id"])
    lister = LISTED_IN[operation]
    if lister is None:
        return
    listed = await a2e.call(lister)
    rows = listed["rows"] if isinstance(listed, dict) else listed
    assert any(r.get("_id") == data["_id"] for r in rows), f"{operation} task {data['_id']} not in {lister}"


async def test_unknown_operation_names_the_known_ones(a2e: A2EClient) -> None:
    with pytest.raises(KeyError, match="unknown A2E operation 'speek'.*speak"):
        await a2e.call("speek", channel="x", text="y")


async def test_deleted_records_are_gone(a2e: A2EClient) -> None:
    resolver = Resolver(a2e)
    video = await resolver.make("video_generate")
    await a2e.call("video_delete", _id=video["_id"])
    listed = await a2e.call("video_list")
    assert all(r["_id"] != video["_id"] for r in listed["rows"])


async def test_pages_are_one_based_and_bounded(a2e: A2EClient) -> None:
    for _ in range(3):
        await a2e.call("dubbing_start", source_url="https://media.example.com/x.mp4", target_lang="de")
    count = (await a2e.call("dubbing_list"))["count"]
    assert count >= 3
    first = await a2e.call("dubbing_list", pageNum=1, pageSize=2)
    second = await a2e.call("dubbing_list", pageNum=2, pageSize=2)
    assert first["count"] == second["count"] == count
    assert len(first["rows"]) == len(second["rows"]) == 2
    assert not {r["_id"] for r in first["rows"]} & {r["_id"] for r in second["rows"]}


async def test_convenience_methods(a2e: A2EClient) -> None:
    avatars = await a2e.streaming_avatars()
    assert avatars and all("_id" in a for a in avatars)
    room = await a2e.agora_token(avatars[0]["_id"], 60)
    assert await a2e.set_qa_context(room["channel"], "context") == {}
    assert await a2e.ask(room["channel"], "hi?") == {}
    assert await a2e.speak(room["channel"], "hello") == {}
    assert await a2e.leave(room["channel"]) == {}
    coins = await a2e.remaining_coins()
    assert isinstance(coins["coins"], int)
    assert "test-key" not in repr(a2e)
