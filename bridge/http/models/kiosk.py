"""Kiosk mode's requests and answers (``bridge/http/kiosk.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Answer, Request_
from .rooms import NewRoom


class WatchdogReport(Request_):
    kind: Literal["speak", "ask"]
    waited_seconds: float = Field(ge=0, le=86_400)


class WatchdogAnswer(Answer):
    reported: bool = Field(description="false: a repeat within a second, not counted again")


class KioskProfileView(Answer):
    """A profile as the page needs it: no tenant, no QA context text (only its length)."""

    name: str
    avatar_id: str | None
    brain: str | None
    idle_seconds: float
    prompt_seconds: float
    language: str
    warm_rooms: int
    warm_rooms_ready: int
    expire_seconds: int
    watchdog_seconds: float
    qa_context_chars: int
    coins_per_minute: float
    coins_per_hour: float
    warm_coins_per_hour: float


class KioskRoom(NewRoom):
    warm: bool = Field(description="the room was opened ahead of the visitor (a warm room)")
