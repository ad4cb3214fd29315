"""Runtime fault injection for the simulator (``POST/DELETE /_sim/faults``)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.a2e.errors import CODE_CAPACITY_BUSY

from .protocol import envelope, error_envelope
from .state import SimState

log = logging.getLogger("bridge.simulator")

FaultKind = Literal["http_500", "http_429", "timeout", "code_1001", "drop_connection", "swallow", "lost_answer",
                    "late_answer"]
AFTER_WORK: frozenset[str] = frozenset({"lost_answer", "late_answer"})  # the call is carried out, then the answer fails


class FaultSpec(BaseModel):
    """One rule: requests to ``endpoint`` (a path, an operation name or ``*``) fail with ``kind``
    with probability ``rate``; ``times`` limits how many requests it hits (None: unlimited).
    ``swallow`` is the quiet failure: A2E's success envelope (``data: {}``) and nothing done, so an
    ask or speak gets its ack and the avatar never speaks (no channel events).

    ``timeout``, ``drop_connection``, ``http_*`` and ``code_1001`` strike before the call is carried
    out; ``lost_answer`` (the connection drops as the answer goes out) and ``late_answer`` (the
    answer comes ``seconds`` late, or never if the client gave up) strike after it: A2E did the work
    and its caller cannot tell.
    """

    endpoint: str = Field(min_length=1)
    kind: FaultKind
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=None, ge=1)
    seconds: float = Field(default=30.0, gt=0, le=600,
                           description="how long a timeout or late_answer fault stalls; the Retry-After of an http_429")


@dataclass
class Fault:
    endpoint: str
    kind: str
    rate: float
    times: int | None
    seconds: float
    hits: int = 0


class FaultTable:
    """The active faults; the first matching rule that fires decides."""

    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(spec.endpoint, spec.kind, spec.rate, spec.times, spec.seconds)
        self._faults.append(fault)
        return fault

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def pick(self, path: str, operation: str | None) -> Fault | None:
        for fault in self._faults:
            if fault.endpoint not in ("*", path, operation):
                continue
            if fault.times is not None and fault.hits >= fault.times:
                continue
            if self._random.random() < fault.rate:
                fault.hits += 1
                return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self._faults]


# --- applying them: an ASGI middleware in front of the A2E routes ---------------------------


class _DropConnection(Exception):
    """Raised after the response started: the server then aborts the connection mid-reply."""


async def _drop(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b'{"code":0,', "more_body": True})
    raise _DropConnection("simulated dropped connection")


def _route_path(scope: Scope) -> str:
    """The request path relative to where the simulator is mounted (the bridge mounts it at /_a2e)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):] or "/"
    return path


async def _stall(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds`` without answering; True if the client disconnected meanwhile."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), seconds)
    except TimeoutError:
        return False
    return True


class RequestCounter:
    """Counts every request and websocket that reaches the simulator (``/_sim/state``: ``requests``),
    whatever its path, so a test can show that nothing reached it."""

    def __init__(self, app: ASGIApp, sim: SimState) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.sim.requests += 1
        await self.app(scope, receive, send)


class FaultMiddleware:
    """Applies ``/_sim/faults`` rules to A2E routes before they run."""

    def __init__(self, app: Any, faults: FaultTable, by_path: dict[tuple[str, str], str]) -> None:
        self.app = app
        self.faults = faults
        self.by_path = by_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope) if scope["type"] == "http" else None
        fault = None
        if path is not None and not path.startswith("/_sim"):  # A2E routes only, never the controls
            fault = self.faults.pick(path, self._operation(scope["method"], path))
        if path is None or fault is None:
            await self.app(scope, receive, send)
            return
        log.info("injecting fault %s on %s", fault.kind, path)
        if fault.kind in AFTER_WORK:
            return await self._after_work(fault, scope, receive, send)
        if fault.kind == "http_500":
            response: Response = JSONResponse({"code": 500, "msg": "simulated internal error"}, status_code=500)
        elif fault.kind == "http_429":
            response = JSONResponse(error_envelope(429, "too many requests"), status_code=429,
                                    headers={"Retry-After": str(math.ceil(fault.seconds))})
        elif fault.kind == "swallow":
            response = JSONResponse(envelope({}))
        elif fault.kind == "code_1001":
            response = JSONResponse(error_envelope(CODE_CAPACITY_BUSY, "hosts are occupied"))
        elif fault.kind == "timeout":
            if await _stall(fault.seconds, receive):
                return  # the client gave up waiting: nobody to answer
            response = JSONResponse(error_envelope(504, "simulated late answer"), status_code=504)
        else:
            return await _drop(send)
        await response(scope, receive, send)

    async def _after_work(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """Carry the request out, then lose its answer (``lost_answer``) or send it late (``late_answer``)."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if fault.kind == "lost_answer":
            return await _drop(send)
        if await _stall(fault.seconds, receive):
            return  # the client gave up waiting: nobody to answer
        for message in held:
            await send(message)

    def _operation(self, method: str, path: str) -> str | None:
        exact = self.by_path.get((method, path))
        if exact:
            return exact
        for (m, template), name in self.by_path.items():
            if m == method and "{" in template:
                prefix = template.split("{", 1)[0]
                if path.startswith(prefix) and "/" not in path[len(prefix):]:
                    return name
        return None
