"""bridge/aio.py: cancelling a task and waiting for it never hides the caller's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from bridge.aio import cancel_and_wait


async def test_the_task_is_cancelled_and_its_cancellation_is_not_raised() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_what_the_task_failed_with_is_raised() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_during_the_wait_goes_through() -> None:
    """The bug it replaces: ``with suppress(CancelledError): await task`` swallowed the caller's
    cancellation, so a loop that closed a room while being cancelled ran on forever."""
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # its cleanup takes a while
            raise

    rounds = 0

    async def loop_that_stops_a_task_each_round() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            inner = asyncio.create_task(slow_to_stop())
            await asyncio.sleep(0)
            await cancel_and_wait(inner)

    outer = asyncio.create_task(loop_that_stops_a_task_each_round())
    await asyncio.sleep(0.05)  # inside its first cancel_and_wait
    outer.cancel()
    done, _ = await asyncio.wait([outer], timeout=2)
    assert outer in done and outer.cancelled() and rounds == 1
