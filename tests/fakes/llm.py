"""A local OpenAI-compatible chat-completions server (streaming only), standing in for an LLM.

``POST /v1/chat/completions`` answers with Server-Sent Events in the format of OpenAI's
``chat.completion.chunk``, one chunk per token of the current :class:`Script`, then
``data: [DONE]``. Faults are injected per script: ``slow`` (nothing for ``slow_seconds``),
``http_500``, ``garbled`` (a chunk that is not JSON after ``fault_after`` tokens) and ``drop``
(the connection breaks after ``fault_after`` tokens). Every request is recorded (headers and
body); every token sent is stamped with ``time.monotonic()`` (the bench compares it with the
simulator's clock, both in this process).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Fault = Literal["slow", "http_500", "garbled", "drop"]


@dataclass
class Script:
    tokens: list[str]
    first_delay: float = 0.0  # seconds before the first token
    token_delay: float = 0.0  # seconds between tokens
    fault: Fault | None = None
    fault_after: int = 0  # tokens sent before a garbled chunk or a drop
    slow_seconds: float = 30.0
    gate: asyncio.Event | None = None  # set: the last token waits for it


class BrokenStream(Exception):
    """Raised inside the response body: uvicorn then breaks the connection mid-stream."""


@dataclass
class FakeLLM:
    """The server's state: what it will answer (``scripts`` in turn, then ``default``) and what it saw."""

    default: Script = field(default_factory=lambda: Script(["Hello", "!"]))
    scripts: deque[Script] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, token)
    received_at: list[float] = field(default_factory=list)
    aborted: int = 0  # answers whose client went away before the end (the bridge stopped them)
    url: str = ""  # the server's base URL once served (``/v1`` is the OpenAI base URL)

    def then(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        self.received_at.append(time.monotonic())
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        script = self.scripts.popleft() if self.scripts else self.default
        if script.fault == "http_500":
            return JSONResponse({"error": {"message": "the model is overloaded", "type": "server_error"}},
                                status_code=500)
        return StreamingResponse(self._events(script, body.get("model", "fake")), media_type="text/event-stream")

    async def _events(self, script: Script, model: str) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in self._chunks(script, model):
                yield chunk
            finished = True
        finally:
            if not finished and script.fault is None:
                self.aborted += 1

    async def _chunks(self, script: Script, model: str) -> AsyncIterator[bytes]:
        if script.fault == "slow":
            await asyncio.sleep(script.slow_seconds)
        if script.first_delay:
            await asyncio.sleep(script.first_delay)
        for i, token in enumerate([*script.tokens, None]):
            if script.fault == "garbled" and i == script.fault_after:
                yield b'data: {"choices": [{"delta": {"content": "oops\n\n'
                yield b"data: [DONE]\n\n"
                return
            if script.fault == "drop" and i == script.fault_after:
                raise BrokenStream("the fake LLM drops the connection")
            if token is None:
                break
            if i and script.token_delay:
                await asyncio.sleep(script.token_delay)
            if script.gate is not None and i == len(script.tokens) - 1:
                await asyncio.wait_for(script.gate.wait(), 10)
            self.sent.append((time.monotonic(), token))
            yield _chunk(model, {"content": token} if i else {"role": "assistant", "content": token}, None)
        yield _chunk(model, {}, "stop")
        yield b"data: [DONE]\n\n"


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(data)}\n\n".encode()
