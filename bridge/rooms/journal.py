"""What the bridge writes down about rooms for their operators, and the store ports for it.

- :class:`TranscriptEntry`: one line of a room's conversation log (ask, speak piece, final reply,
  brain answer, cancel), kept with the room and erased with it;
- :class:`Delivery`: one webhook event in the durable outbox, with its attempts;
- :class:`UsageRecord`: the bridge's own ledger of one room: coins charged at mint, refunded on leave.

Records are plain dataclasses serialised as JSON by the stores; ``id`` fields are given by the store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol

from .models import _iso

EntryKind = Literal["ask", "speak", "reply", "brain", "cancel"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
MAX_ATTEMPTS_KEPT = 20  # a delivery keeps its latest attempts, not every one of a week of retries


def _from(cls: type[Any], rec: dict[str, Any]) -> Any:
    """A record from its dict, ignoring keys a newer bridge may have added."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in rec.items() if k in known})


@dataclass
class TranscriptEntry:
    """One thing said in a room. ``origin``: who sent a command (``ws-<n>``: a websocket connection,
    ``rest``: the REST API); ``source``: where a reply came from (``simulator``, ``agora``, ``browser``).
    A speak cut into pieces is one entry per piece: ``part`` of ``parts``, ``position`` in the room's order."""

    room_id: str
    kind: EntryKind
    text: str
    at: float
    origin: str | None = None
    utterance_id: str | None = None
    position: int | None = None
    part: int | None = None
    parts: int | None = None
    reply_id: str | None = None
    source: str | None = None
    count: int | None = None  # cancel: how many pending commands it dropped
    id: int = 0  # the cursor (?after=), given by the store

    # its fields are all scalars: vars() rather than asdict(), which deep-copies (every command is logged)
    def to_public(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if v is not None and k != "room_id"}
        out["at_iso"] = _iso(self.at)
        return out

    def data(self) -> str:
        return json.dumps({k: v for k, v in vars(self).items() if v is not None and k != "id"})

    @classmethod
    def load(cls, entry_id: int, data: str) -> TranscriptEntry:
        entry: TranscriptEntry = _from(cls, {**json.loads(data), "id": entry_id})
        return entry


@dataclass
class Delivery:
    """A webhook event waiting for (or done with) delivery. ``order_key`` serialises a room's events
    (a room-less event, like ``spend.threshold``, is ordered per tenant); ``payload`` is the body
    exactly as signed; ``webhook_id`` is the ``webhook-id`` header, the same on every retry."""

    webhook_id: str
    tenant: str
    event: str
    payload: str
    created_at: float
    order_key: str
    room_id: str | None = None
    status: DeliveryStatus = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # the latest attempts: at, status, error, seconds
    id: int = 0

    def record_attempt(self, at: float, *, status: int | None, error: str | None, seconds: float) -> None:
        self.attempts += 1
        self.last_status, self.last_error = status, error
        self.history = [*self.history, {"at": at, "status": status, "error": error, "seconds": round(seconds, 4)}]
        self.history = self.history[-MAX_ATTEMPTS_KEPT:]

    def to_public(self) -> dict[str, Any]:
        return {"id": self.id, "webhook_id": self.webhook_id, "event": self.event, "room_id": self.room_id,
                "status": self.status, "attempts": self.attempts, "created_at": _iso(self.created_at),
                "next_attempt_at": _iso(self.next_attempt_at) if self.status == "pending" else None,
                "delivered_at": _iso(self.delivered_at), "last_status": self.last_status,
                "last_error": self.last_error,
                "history": [{**a, "at": _iso(a["at"])} for a in self.history]}

    def data(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "id"})

    @classmethod
    def load(cls, delivery_id: int, data: str) -> Delivery:
        delivery: Delivery = _from(cls, {**json.loads(data), "id": delivery_id})
        return delivery


@dataclass
class UsageRecord:
    """The ledger of one room, mirroring A2E's: ``charged`` = ceil(expire_seconds × coins per minute
    / 60) at mint; ``refunded`` = floor(unused seconds × coins per minute / 60) once A2E confirmed
    the leave (nothing if it never did, or the room had expired)."""

    room_id: str
    tenant: str
    opened_at: float
    expire_seconds: int
    charged: int
    closed_at: float | None = None
    used_seconds: float | None = None
    refunded: int = 0
    close_reason: str | None = None

    @property
    def net(self) -> int:
        return self.charged - self.refunded

    def data(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, data: str) -> UsageRecord:
        record: UsageRecord = _from(cls, json.loads(data))
        return record


class TranscriptStore(Protocol):
    async def add_transcript(self, entries: list[TranscriptEntry]) -> None:
        """Append, in order; sets each entry's ``id``."""
        ...

    async def transcript(self, room_id: str, *, after: int = 0, limit: int = 1000) -> list[TranscriptEntry]:
        """The room's entries with ``id > after``, oldest first."""
        ...

    async def delete_transcript(self, room_id: str) -> int: ...


class OutboxStore(Protocol):
    async def enqueue(self, delivery: Delivery) -> bool:
        """Durable once it returns; False (and nothing stored) if ``webhook_id`` is already there."""
        ...

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """The oldest pending delivery of each ``order_key``, if it is due: what may be sent now."""
        ...

    async def next_attempt_at(self) -> float | None:
        """When the earliest of those heads is due (None: nothing pending)."""
        ...

    async def update_delivery(self, delivery: Delivery) -> None: ...

    async def deliveries(self, *, tenant: str | None, limit: int, before: int | None = None,
                         status: str | None = None) -> list[Delivery]:
        """Newest first, ``id < before``."""
        ...


class UsageStore(Protocol):
    async def charge(self, record: UsageRecord) -> bool:
        """Record a room's charge once (False: it was already recorded, e.g. a resumed room)."""
        ...

    async def get_usage(self, room_id: str) -> UsageRecord | None: ...

    async def put_usage(self, record: UsageRecord) -> None: ...

    async def usage_records(self, *, tenant: str | None, since: float, until: float) -> list[UsageRecord]:
        """Rooms opened in [since, until), oldest first."""
        ...
