"""What a room says: speak and ask bodies, their acceptance, streams, flush, utterances."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, Field, create_model, field_validator

from bridge.rooms.relay import CHUNK_CHARS

from .base import UTTERANCE_ID_PATTERN, Answer, Request_

# A character that is not whitespace as Python's str.strip() reads it (the relay's rule), spelled out:
# "\S" means different sets in JSON Schema's regex dialect (ECMA-262: U+0085 is not white space,
# U+FEFF is) and in pydantic's (Unicode White_Space), so a generator and the handler would disagree.
VISIBLE = ("[^\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f"
           "\\u3000]")


@functools.cache
def command_body(kind: Literal["speak", "ask"], max_chars: int) -> type[BaseModel]:
    """The body of speak/ask: a text with a visible character, at most ``max_chars``
    (``BRIDGE_MAX_TEXT_CHARS``; a question at most 500 as well)."""
    limit = max_chars if kind == "speak" else min(max_chars, CHUNK_CHARS)
    what = "what the avatar says (split at sentences)" if kind == "speak" else "the question"

    def visible(cls: type[BaseModel], text: str) -> str:
        if not text.strip():
            raise ValueError("text must hold more than whitespace")
        return text

    return create_model(f"{kind.capitalize()}Body", __base__=Request_,
                        __validators__={"visible": field_validator("text")(visible)},
                        text=(str, Field(min_length=1, max_length=limit, pattern=VISIBLE, description=what,
                                         examples=["Welcome to the shop!" if kind == "speak" else "When do you open?"])))


class CommandAccepted(Answer):
    status: Literal["accepted"] = "accepted"
    kind: Literal["speak", "ask"]
    position: int = Field(description="the first chunk's place in the room's order")
    positions: list[int]
    chunks: int
    utterance: str = Field(pattern=UTTERANCE_ID_PATTERN, description="the speak's or ask's utterance")
    utterances: list[str] = Field(description="its pieces' utterances, one per position")


class StreamAccepted(Answer):
    status: Literal["accepted"] = "accepted"
    kind: Literal["speak"] = "speak"
    utterance: str = Field(pattern=UTTERANCE_ID_PATTERN, description="the stream's utterance")
    positions: list[int] = Field(description="each sentence's place in the room's order")
    utterances: list[str] = Field(description="each sentence's utterance, one per position")
    chunks: int


class FlushResult(Answer):
    flushed: int = Field(description="pending commands dropped")
    dropped: list[str] = Field(description="every utterance the flush cancelled")


class UtteranceView(Answer):
    """An utterance: ``queued`` → ``sent`` → ``speaking`` → ``done``, or ``cancelled`` / ``failed``."""

    id: str = Field(pattern=UTTERANCE_ID_PATTERN)
    seq: int
    kind: Literal["speak", "ask", "stream"]
    state: Literal["queued", "sent", "speaking", "done", "cancelled", "failed"]
    parent: str | None = Field(description="the speak, ask or stream this is a piece of")
    position: int | None = Field(description="its place in the room's order, once queued to A2E")
    text: str
    estimated: bool = Field(description="speaking/done inferred from the text's length, not the channel")
    reason: str | None = Field(description="why it was cancelled or failed")
    pieces: list[str] = Field(description="the utterances it was cut into")


class CancelResult(Answer):
    cancelled: list[str] = Field(description="every utterance removed (the one named and its queued pieces)")
