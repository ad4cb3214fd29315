"""Runtime fault injection for the simulator (``POST/DELETE /_sim/faults``)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

FaultKind = Literal["http_500", "http_429", "timeout", "code_1001", "drop_connection"]


class FaultSpec(BaseModel):
    """One rule: requests to ``endpoint`` (a path, an operation name or ``*``) fail with ``kind``
    with probability ``rate``; ``times`` limits how many requests it hits (None: unlimited)."""

    endpoint: str = Field(min_length=1)
    kind: FaultKind
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=None, ge=1)
    seconds: float = Field(default=30.0, gt=0, le=600,
                           description="how long a timeout fault stalls; the Retry-After of an http_429")


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
