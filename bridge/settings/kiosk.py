"""``BRIDGE_KIOSK_PROFILES``: what a ``/kiosk?profile=NAME`` page opens and how it behaves (values
only; bridge/http/kiosk.py serves them, bridge/rooms/warm.py keeps their warm rooms)."""

from __future__ import annotations

import re
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict, Field

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT

_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KioskProfile(BaseModel):
    """One kiosk deployment, served to ``/kiosk?profile=NAME``."""

    model_config = ConfigDict(extra="forbid")
    avatar_id: str = Field(min_length=1, max_length=128)
    qa_context: str | None = Field(None, max_length=QA_CONTEXT_LIMIT)
    brain: str | None = Field(None, min_length=1, max_length=64)  # who answers ask: "a2e" or a BRIDGE_BRAINS name
    idle_seconds: float = Field(30.0, ge=1)  # quiet time before "are you still there?"
    prompt_seconds: float = Field(10.0, gt=0)  # how long that question waits before the room is left
    language: str = Field("en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # speech recognition
    warm_rooms: int = Field(0, ge=0, le=50)  # rooms kept open ahead of visitors
    expire_seconds: int | None = Field(None, ge=10, le=86_400)  # default: BRIDGE_DEFAULT_EXPIRE_SECONDS
    watchdog_seconds: float = Field(10.0, gt=0)  # a speak/ask with no speaking_started this long is reported
    tenant: str | None = Field(None, min_length=1)  # only this tenant may use it; its warm rooms count for it


def check_kiosk_profiles(profiles: dict[str, KioskProfile], *, tenants: Collection[str],
                         brains: Collection[str]) -> None:
    """Names fit a URL; a named tenant has a key (with none, everyone is ``dev``); warm rooms know
    their tenant when there are keys; a brain is ``a2e`` or one of ``brains``."""
    for name, profile in profiles.items():
        where = f"BRIDGE_KIOSK_PROFILES: {name!r}"
        if not _PROFILE_NAME.fullmatch(name):
            raise ValueError(f"{where} is not a name (letters, digits, '_', '-')")
        if tenants and profile.warm_rooms and profile.tenant is None:
            raise ValueError(f"{where} keeps warm rooms, so it needs the tenant they belong to")
        if profile.tenant is not None and profile.tenant not in (tenants or {"dev"}):
            raise ValueError(f"{where} names tenant {profile.tenant!r}, which has no key")
        if profile.brain not in (None, "a2e", *brains):
            raise ValueError(f"{where} names brain {profile.brain!r}, which is not in BRIDGE_BRAINS")
