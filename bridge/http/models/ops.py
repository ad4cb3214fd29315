"""What is not a room: probes, the avatar list, the pass-through's listing and answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class AvatarList(BaseModel):
    avatars: list[dict[str, Any]] = Field(description="A2E's streaming avatars: _id, name, ...")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyChecks(BaseModel):
    store: bool
    a2e: bool
    a2e_error: str | None = None
    a2e_message: str | None = None
    cluster: bool | None = None  # many instances: its subscriptions and its inbox read Redis
    live_rooms: int


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


class OperationInfo(BaseModel):
    name: str
    group: str
    method: str
    path: str
    certainty: str
    required: dict[str, str]
    optional: dict[str, str]
    creates_task: bool
    summary: str


class OperationList(BaseModel):
    operations: list[OperationInfo]


class A2EAnswer(BaseModel):
    data: Any = Field(description="A2E's data for the operation, as A2E answered it")
