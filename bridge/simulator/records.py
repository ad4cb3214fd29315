"""The simulator's media tasks and the records A2E answers about them, in A2E's documented shapes.

Where A2E documents a family's record (avatar videos, face swap, image to video; see
``../shared/notes/a2e-api-*.md``) the simulator answers exactly those fields, with A2E's spellings
and types, typos included (``faild_message``); the contract tests compare them with the documented
examples (``tests/simulator/documented.py``). Undocumented families get one generic record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["FAILED_STATE", "LIFECYCLES", "SimTask", "face_swap_task_created", "iso", "status_row"]

# Each task family's states in order; the last is the success state. See the A2E notes.
LIFECYCLES: dict[str, tuple[str, ...]] = {
    "video": ("init", "start", "pending", "process", "copy", "success"),
    "voice": ("sent", "pendding", "processing", "completed"),
    "avatar": ("pending", "processing", "completed"),
    "face_swap_preview": ("initialized", "processing", "completed"),
    "face_swap_task": ("initialized", "processing", "completed"),
    "dubbing": ("initialized", "processing", "completed"),
    "image_to_video": ("sent", "pending", "completed"),
    "caption_removal": ("initialized", "processing", "completed"),
}
FAILED_STATE = {"video": "fail"}
FAILURE_TEXT = "simulated failure: input asked to fail"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SimTask:
    kind: str
    task_id: str
    created_at: float
    fields: dict[str, Any]
    fails: bool
    user_id: str = ""
    coins: int = 0  # what it was charged
    deleted: bool = False

    def state(self, now: float, step: float) -> tuple[str, int]:
        """(status, progress 0..100) at ``now``: one lifecycle state per ``step`` seconds."""
        states = LIFECYCLES[self.kind]
        index = self._index(now, step)
        last = len(states) - 1
        if index >= last:
            return (FAILED_STATE.get(self.kind, "failed") if self.fails else states[last]), 100
        return states[index], int(100 * index / last)

    def _index(self, now: float, step: float) -> int:
        return int((now - self.created_at) / step) if step > 0 else len(LIFECYCLES[self.kind])

    def reached(self, state_index: int, step: float) -> str | None:
        """When the task entered its ``state_index``-th state (ISO), if it has by now."""
        return iso(self.created_at + state_index * step) if step >= 0 else None

    def record(self, now: float, step: float) -> dict[str, Any]:
        builder = _RECORDS.get(self.kind, _generic)
        return builder(self, now, step)


def _result_url(task: SimTask) -> str:
    return f"https://sim.a2e.invalid/results/{task.kind}/{task.task_id}.mp4"


def _generic(task: SimTask, now: float, step: float) -> dict[str, Any]:
    status, progress = task.state(now, step)
    done = status in ("completed", "success")
    return {**task.fields, "_id": task.task_id, "createdAt": iso(task.created_at), "updatedAt": iso(now),
            "current_status": status, "result_url": _result_url(task) if done else "", "process": progress,
            "failed_message": FAILURE_TEXT if status in ("failed", "fail") else ""}


def _video(task: SimTask, now: float, step: float) -> dict[str, Any]:
    """``video/awsResult``: the 17 documented fields (``anchor_type`` a string, ``custom_backs_id`` null)."""
    status, progress = task.state(now, step)
    f = task.fields
    return {
        "_id": task.task_id, "msg": FAILURE_TEXT if status == "fail" else "",
        "result": _result_url(task) if status == "success" else "", "process": progress, "status": status,
        "anchor_type": str(f.get("anchor_type", 0)), "web_bg_width": f.get("web_bg_width", 0),
        "web_bg_height": f.get("web_bg_height", 0), "color": f.get("color", ""),
        "result_people_url": "", "result_bg_url": "", "anchor_id": f.get("anchor_id", ""),
        "replace_bg_id": f.get("back_id", ""), "custom_backs_id": f.get("custom_back_id"),
        "createdAt": iso(task.created_at), "diff_s": int(now - task.created_at), "current_date": iso(now),
    }


def _face_swap_preview(task: SimTask, now: float, step: float) -> dict[str, Any]:
    """``userFaceSwapPreview/add``: video_url, face_url, current_status, result_url, _id, user_id; the
    failure code and text (``faild_message``) once it failed."""
    status, _ = task.state(now, step)
    record = {"video_url": task.fields["video_url"], "face_url": task.fields["face_url"], "current_status": status,
              "result_url": _result_url(task) if status == "completed" else "", "_id": task.task_id,
              "user_id": task.user_id}
    if status == "failed":
        record.update(error_code=1, faild_message=FAILURE_TEXT)
    return record


def _face_swap_task(task: SimTask, now: float, step: float) -> dict[str, Any]:
    """``userFaceSwapTask/records`` rows (14 fields): ``error_code`` a string ("" running, "0" done),
    ``faild_message`` "" running, null done; the times each state was entered (null until then)."""
    status, _ = task.state(now, step)
    index = min(task._index(now, step), len(LIFECYCLES["face_swap_task"]) - 1)
    failed = status == "failed"
    return {
        "name": task.fields.get("name", ""), "video_url": task.fields["video_url"],
        "duration": task.fields.get("duration", 6), "face_url": task.fields["face_url"], "current_status": status,
        "result_url": _result_url(task) if status == "completed" else "",
        "error_code": "1" if failed else "0" if status == "completed" else "",
        "faild_message": FAILURE_TEXT if failed else None if status == "completed" else "",
        "_id": task.task_id, "createdAt": iso(task.created_at), "updatedAt": iso(now),
        "initialized_time": task.reached(0, step), "processing_time": task.reached(1, step) if index >= 1 else None,
        "completed_time": task.reached(2, step) if index >= 2 else None,
    }


def face_swap_task_created(record: dict[str, Any]) -> dict[str, Any]:
    """``userFaceSwapTask/add`` answers the row without its state times."""
    return {k: v for k, v in record.items() if not k.endswith("_time")}


def status_row(record: dict[str, Any]) -> dict[str, Any]:
    """``userFaceSwapTask/status`` rows: ``error_code`` an integer or null, ``faild_message`` null
    unless it failed."""
    failed = record["current_status"] == "failed"
    return {"current_status": record["current_status"], "result_url": record["result_url"],
            "error_code": 1 if failed else None, "faild_message": FAILURE_TEXT if failed else None,
            "_id": record["_id"]}


def _image_to_video(task: SimTask, now: float, step: float) -> dict[str, Any]:
    """``userImage2Video/{_id}``: the 11 documented fields, ``coins`` charged and ``failed_code``."""
    status, _ = task.state(now, step)
    failed = status == "failed"
    return {
        "_id": task.task_id, "name": task.fields.get("name", ""), "image_url": task.fields["image_url"],
        "prompt": task.fields.get("prompt", ""), "negative_prompt": task.fields.get("negative_prompt", ""),
        "current_status": status, "coins": task.coins, "createdAt": iso(task.created_at),
        "failed_message": FAILURE_TEXT if failed else "", "failed_code": "1" if failed else "",
        "result_url": _result_url(task) if status == "completed" else "",
    }


_RECORDS = {"video": _video, "face_swap_preview": _face_swap_preview, "face_swap_task": _face_swap_task,
            "image_to_video": _image_to_video}
