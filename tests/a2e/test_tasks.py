"""wait_for on every kind of task (every row with a status_op), against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.errors import A2EError
from bridge.a2e.tasks import (
    TaskFailed,
    TaskStatus,
    TaskTimeout,
    task_id_of,
    task_status,
    wait_for,
)

from .examples import MEDIA, Resolver

TASK_OPS = sorted(name for name, row in ENDPOINTS.items() if row.status_op)
DERIVED = {"avatar_continue_training", "avatar_clone_voice"}  # take their input from a base avatar

# Per task kind, a field whose value contains "fail": the simulator then ends that task failed.
FAILING: dict[str, dict[str, Any]] = {
    "voice_clone_train": {"name": "please fail"},
    "video_generate": {"audioSrc": f"{MEDIA}/fail.mp3"},
    "avatar_train": {"video_url": f"{MEDIA}/fail.mp4"},
    "avatar_continue_training": {},  # see DERIVED
    "avatar_clone_voice": {},
    "face_swap_preview_add": {"face_url": f"{MEDIA}/fail.jpg"},
    "face_swap_task_add": {"name": "FAIL"},
    "dubbing_start": {"source_url": f"{MEDIA}/fail.mp4"},
    "image_to_video_start": {"image_url": f"{MEDIA}/fail.png"},
    "caption_removal_start": {"source_url": f"{MEDIA}/fail.mp4"},
}


def test_task_table_is_covered() -> None:
    assert TASK_OPS, "the table has no task rows?"
    assert set(FAILING) == set(TASK_OPS), "give every task row a failing input in FAILING"


async def start(a2e: A2EClient, operation: str, *, fail: bool = False) -> str:
    if operation in DERIVED:
        # the base avatar's fields carry over (a failing base makes a failing task); the simulator
        # does not need the base to be trained, so it is not waited for
        base = await a2e.call("avatar_train", name="fail base" if fail else "base", video_url=f"{MEDIA}/me.mp4")
        params = {"_id": base["_id"]}
    else:
        params = await Resolver(a2e).params(operation, FAILING[operation] if fail else None)
    task_id = task_id_of(await a2e.call(operation, params))
    assert task_id
    return task_id


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", TASK_OPS)
async def test_task_succeeds_with_result_url(operation: str, module_a2e: A2EClient) -> None:
    a2e = module_a2e
    task_id = await start(a2e, operation)
    seen: list[TaskStatus] = []
    final = await wait_for(a2e, operation, task_id, timeout=20, interval=0.01, progress=seen.append)
    assert final.succeeded and final.done and final.task_id == task_id
    assert final.result_url and final.result_url.startswith("https://")
    assert final.error is None and final.progress == 100
    assert seen[-1] == final and all(s.task_id == task_id for s in seen)
    progress = [s.progress for s in seen if s.progress is not None]  # not every family reports it
    assert progress == sorted(progress), f"progress went back: {progress}"
    assert len(seen) == 1 or not seen[0].done


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation", TASK_OPS)
async def test_failing_input_raises_task_failed(operation: str, module_a2e: A2EClient) -> None:
    a2e = module_a2e
    task_id = await start(a2e, operation, fail=True)
    with pytest.raises(TaskFailed) as info:
        await a2e.wait_for(operation, task_id, timeout=20, interval=0.01)
    assert isinstance(info.value, A2EError)
    assert "simulated failure" in info.value.msg
    assert info.value.operation == ENDPOINTS[operation].status_op


async def test_task_timeout_on_a_slow_simulator(sim_factory: Any) -> None:
    sim = await sim_factory(task_step_seconds=5)
    async with A2EClient("k", sim.url, timeout=2) as a2e:
        for operation in TASK_OPS:
            task_id = await start(a2e, operation)
            seen: list[TaskStatus] = []
            with pytest.raises(TaskTimeout) as info:
                await wait_for(a2e, operation, task_id, timeout=0.1, interval=0.03, progress=seen.append)
            assert task_id in str(info.value)
            assert seen and not any(s.done for s in seen)


async def test_progress_callbacks_sync_and_async(sim_factory: Any) -> None:
    sim = await sim_factory(task_step_seconds=0.1)
    async with A2EClient("k", sim.url, timeout=2) as a2e:
        sync_seen: list[int | None] = []
        task_id = await start(a2e, "video_generate")
        await wait_for(a2e, "video_generate", task_id, timeout=20, interval=0.02,
                       progress=lambda s: sync_seen.append(s.progress))

        async_seen: list[int | None] = []

        async def on_progress(status: TaskStatus) -> None:
            async_seen.append(status.progress)

        task_id = await start(a2e, "dubbing_start")
        await a2e.wait_for("dubbing_start", task_id, timeout=20, interval=0.02, progress=on_progress)

    for seen in (sync_seen, async_seen):
        assert all(isinstance(p, int) for p in seen), seen
        assert seen == sorted(seen) and seen[-1] == 100
        assert len(set(seen)) >= 3, f"expected intermediate progress, got {seen}"


@pytest.mark.asyncio(loop_scope="module")
async def test_wait_for_accepts_the_status_operation(module_a2e: A2EClient) -> None:
    a2e = module_a2e
    task_id = await start(a2e, "video_generate")
    final = await wait_for(a2e, "video_status", task_id, timeout=20, interval=0.01)
    assert final.status == "success" and final.raw["_id"] == task_id


def test_task_status_reads_every_family_shape() -> None:
    ok = task_status("a", [{"_id": "b", "status": "fail"}, {"_id": "a", "status": "success", "result": "https://r"}])
    assert ok.succeeded and ok.result_url == "https://r"
    failed = task_status("a", {"_id": "a", "current_status": "failed", "faild_message": "bad face"})
    assert failed.done and not failed.succeeded and failed.error == "bad face"
    running = task_status("a", {"_id": "a", "current_status": "processing", "process": 40.0,
                                "failed_message": "stale text"})
    assert running.progress == 40 and running.error is None and not running.done
    assert task_status("a", []).status == "unknown"
    assert task_id_of([{"id": 7}]) == "7" and task_id_of("x") is None and task_id_of({}) is None
