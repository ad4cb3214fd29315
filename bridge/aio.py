"""asyncio helpers the layers share."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it ended; raise what it failed with (not its cancellation).

    Not ``task.cancel()`` then ``with suppress(CancelledError): await task``: that also swallows the
    *caller's* own cancellation when it comes during the wait, and the caller runs on. A sweeper
    closing a room as the shutdown cancelled it kept sweeping, and the shutdown waited for it
    forever. ``asyncio.wait`` neither raises the task's cancellation nor hides the caller's."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
