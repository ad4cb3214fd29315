"""Following A2E's long-running tasks (videos, dubbing, face swap, training, ...) to their end.

A2E's task families disagree on field names (``status`` vs ``current_status``, ``result`` vs
``result_url``, ``failed_message`` vs ``faild_message``) and on shapes (an object, or a one-element
array). :func:`task_status` reads all of them into one :class:`TaskStatus`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .endpoints import endpoint
from .errors import A2EError

__all__ = ["SUCCESS", "FAILURE", "TaskFailed", "TaskStatus", "TaskTimeout", "task_id_of", "task_status", "wait_for"]

SUCCESS = frozenset({"completed", "success"})
FAILURE = frozenset({"failed", "fail"})


class TaskFailed(A2EError):
    """The task ended in A2E's failed state."""


class TaskTimeout(A2EError):
    """The task did not end within the allowed time (it may still end later)."""


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    status: str
    progress: int | None
    result_url: str | None
    error: str | None
    raw: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status in SUCCESS or self.status in FAILURE

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS


def task_id_of(data: Any) -> str | None:
    """The id of the task a create call returned (``_id``, or ``id``/``task_id``/``taskId``)."""
    if isinstance(data, list):
        data = data[0] if data else {}
    if not isinstance(data, dict):
        return None
    for key in ("_id", "id", "task_id", "taskId"):
        if data.get(key):
            return str(data[key])
    return None


def task_status(task_id: str, data: Any) -> TaskStatus:
    """Normalise one status reply; ``data`` may be the record or an array holding it."""
    if isinstance(data, list):
        match = [d for d in data if isinstance(d, dict) and d.get("_id") == task_id]
        data = match[0] if match else (data[0] if data else {})
    record = data if isinstance(data, dict) else {}
    status = str(record.get("current_status") or record.get("status") or "unknown")
    progress = record.get("process", record.get("progress"))
    result = record.get("result_url") or record.get("result") or None
    error = record.get("failed_message") or record.get("faild_message") or record.get("msg") or None
    return TaskStatus(
        task_id=task_id,
        status=status,
        progress=int(progress) if isinstance(progress, (int, float)) else 100 if status in SUCCESS else None,
        result_url=str(result) if result else None,
        error=str(error) if error and status in FAILURE else None,
        raw=record,
    )


ProgressCallback = Callable[[TaskStatus], Awaitable[None] | None]


class Caller(Protocol):
    """What following a task needs of a client (the A2E client has it; tests may pass a fake)."""

    async def call(self, operation: str, params: dict[str, Any] | None = None, **fields: Any) -> Any: ...


async def wait_for(
    client: Caller,
    operation: str,
    task_id: str,
    *,
    timeout: float = 900.0,  # noqa: ASYNC109 (a deadline for the task, reported as TaskTimeout with its last status)
    interval: float = 3.0,
    progress: ProgressCallback | None = None,
) -> TaskStatus:
    """Poll the status operation of ``operation``'s task until it succeeds, fails or times out.

    Args:
        operation: the operation that created the task (e.g. ``video_generate``), or its status
            operation itself.
        progress: called with every status read; may be sync or async.

    Raises:
        TaskFailed: the task ended failed. TaskTimeout: ``timeout`` passed first.
    """
    row = endpoint(operation)
    status_op = row.status_op or row.name
    deadline = time.monotonic() + timeout
    while True:
        current = task_status(task_id, await client.call(status_op, _id=task_id))
        if progress is not None:
            outcome = progress(current)
            if asyncio.iscoroutine(outcome):
                await outcome
        if current.succeeded:
            return current
        if current.done:
            raise TaskFailed(current.error or f"task {task_id} failed", operation=status_op)
        if time.monotonic() + interval > deadline:
            raise TaskTimeout(f"task {task_id} still {current.status} after {timeout:g}s", operation=status_op)
        await asyncio.sleep(interval)
