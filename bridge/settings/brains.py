"""``BRIDGE_BRAINS``: who may answer a room's ``ask`` instead of A2E (values only; bridge/rooms/brains.py
builds them)."""

from __future__ import annotations

import re
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Annotated


class OpenAIBrain(BaseModel):
    """``ask`` answered by an OpenAI-compatible chat-completions endpoint (streaming); the key is
    read from the environment variable ``api_key_env`` and never leaves the server."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str
    system_prompt: str | None = None
    tenants: list[str] | None = None  # who may use it (None: every tenant)
    timeout: float = Field(15.0, gt=0)  # seconds for the first word, and between words
    history: int = Field(20, ge=0)  # messages of the room's conversation sent along
    max_retries: int = Field(1, ge=0, le=5)  # before any word came (never mid-answer)


class WebhookBrain(BaseModel):
    """``ask`` POSTed to ``url``, signed with the secret in ``secret_env`` (README: Brains)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["webhook"]
    url: str
    secret_env: str
    tenants: list[str] | None = None
    timeout: float = Field(15.0, gt=0)
    history: int = Field(20, ge=0)


BrainConfig = Annotated[Union[OpenAIBrain, WebhookBrain], Field(discriminator="kind")]
_BRAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_brain_names(brains: dict[str, BrainConfig]) -> dict[str, BrainConfig]:
    if bad := [n for n in brains if n == "a2e" or not _BRAIN_NAME.fullmatch(n)]:
        raise ValueError(f"BRIDGE_BRAINS: {bad[0]!r} cannot name a brain (letters, digits, _ and -; 'a2e' is A2E's own)")
    return brains
