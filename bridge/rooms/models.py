"""Room model and its state machine.

A2E charges a room's whole ``expire_seconds`` when its token is minted and
refunds only on ``leave``. Every room the bridge might still be paying for is
therefore *live* (creating/open/closing) and must survive a crash so that
recovery can give it back.

State machine (``TRANSITIONS`` is the only place it is defined)::

    creating ──► open ──► closing ──► closed
        │                    ▲
        ├────────────────────┘   (minted, but the bridge must give it back)
        └──► failed              (mint failed: A2E never charged for it)

There is deliberately no ``closing → failed``: a leave that A2E never confirms
keeps the room CLOSING so that it stays live and the leave is retried (also
after a restart). FAILED is terminal and not live, so using it for a failed
leave would silently stop the retries and burn the reservation.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class RoomState(str, Enum):
    CREATING = "creating"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class CloseReason(str, Enum):
    CLIENT = "client"
    IDLE = "idle"
    EXPIRY = "expiry"
    SHUTDOWN = "shutdown"
    UPSTREAM_GONE = "upstream_gone"
    ERROR = "error"
    RECOVERY = "recovery"  # expired while the bridge was down, left at start-up


TRANSITIONS: dict[RoomState, frozenset[RoomState]] = {
    RoomState.CREATING: frozenset({RoomState.OPEN, RoomState.FAILED, RoomState.CLOSING}),
    RoomState.OPEN: frozenset({RoomState.CLOSING}),
    RoomState.CLOSING: frozenset({RoomState.CLOSED}),
    RoomState.CLOSED: frozenset(),
    RoomState.FAILED: frozenset(),
}

LIVE_STATES: frozenset[RoomState] = frozenset(
    {RoomState.CREATING, RoomState.OPEN, RoomState.CLOSING}
)
"""States in which A2E may still be charging for the room."""

TERMINAL_STATES: frozenset[RoomState] = frozenset({RoomState.CLOSED, RoomState.FAILED})

# States whose transition may carry a close reason.
_REASON_STATES = frozenset({RoomState.CLOSING, RoomState.CLOSED, RoomState.FAILED})


class RoomError(Exception):
    """Base class for room errors."""


class InvalidTransition(RoomError):
    def __init__(self, from_state: RoomState, to_state: RoomState, room_id: str | None = None):
        self.from_state = from_state
        self.to_state = to_state
        self.room_id = room_id
        where = f" (room {room_id})" if room_id else ""
        super().__init__(f"invalid room transition {from_state.value} -> {to_state.value}{where}")


def new_room_id() -> str:
    return "rm_" + secrets.token_urlsafe(12)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Room:
    id: str
    tenant: str
    avatar_id: str
    expire_seconds: int
    created_at: float
    state: RoomState = RoomState.CREATING
    channel: str | None = None
    app_id: str | None = None
    token: str | None = None
    uid: int | None = None
    expires_at: float | None = None
    close_reason: CloseReason | None = None
    closed_at: float | None = None
    qa_context: str | None = None
    last_activity: float = 0.0  # 0 means "not set": defaults to created_at
    error: str | None = None
    opened_by: str | None = None  # the browser key (its id) that opened the room; None: a secret key
    opened_at: float | None = None  # when it became open: A2E had minted (and charged) it
    left_at: float | None = None  # when A2E confirmed the leave (and refunded the unused time)
    brain: str | None = None  # who answers ask: None is A2E's own, else a name from BRIDGE_BRAINS
    version: int = 0  # bumped by the store on every put (optimistic check)

    def __post_init__(self) -> None:
        self.state = RoomState(self.state)
        if self.close_reason is not None:
            self.close_reason = CloseReason(self.close_reason)
        if not self.last_activity:
            self.last_activity = self.created_at

    @classmethod
    def new(
        cls,
        *,
        tenant: str,
        avatar_id: str,
        expire_seconds: int,
        now: float,
        qa_context: str | None = None,
        opened_by: str | None = None,
        brain: str | None = None,
    ) -> Room:
        return cls(
            id=new_room_id(),
            tenant=tenant,
            avatar_id=avatar_id,
            expire_seconds=expire_seconds,
            created_at=now,
            qa_context=qa_context,
            opened_by=opened_by,
            brain=brain,
        )

    # -- state machine ----------------------------------------------------

    def transition(
        self, to: RoomState, *, reason: CloseReason | None = None, now: float
    ) -> None:
        """Move to ``to`` or raise InvalidTransition; the first close reason wins."""
        to = RoomState(to)
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(self.state, to, self.id)
        if reason is not None and to not in _REASON_STATES:
            raise ValueError(f"a close reason makes no sense for a transition to {to.value}")
        self.state = to
        if to is RoomState.OPEN:
            self.opened_at = now
        if reason is not None and self.close_reason is None:
            self.close_reason = CloseReason(reason)
        if to in TERMINAL_STATES:
            self.closed_at = now

    @property
    def is_live(self) -> bool:
        """A2E may still be charging for this room (recovery must handle it)."""
        return self.state in LIVE_STATES

    @property
    def reserved_until(self) -> float:
        """When A2E stops charging even without a leave."""
        if self.expires_at is not None:
            return self.expires_at
        return self.created_at + self.expire_seconds

    def usage_seconds(self, since: float) -> float:
        """Room-seconds charged after ``since``.

        Closed rooms cost until their leave (capped at the reservation's end:
        a late leave refunds nothing); live rooms cost their whole reservation
        because that is what A2E has taken. Failed rooms were never minted.
        """
        start = max(self.created_at, since)
        if self.state == RoomState.CLOSED:
            end = min(self.closed_at if self.closed_at is not None else start, self.reserved_until)
        elif self.is_live:
            end = self.reserved_until
        else:
            return 0.0
        return max(0.0, end - start)

    def log_fields(self) -> dict[str, Any]:
        """What a log line about this room is searchable by (``bridge.logs.bind`` or ``extra=``)."""
        return {"tenant": self.tenant, "room_id": self.id, "channel": self.channel}

    # -- serialisation ----------------------------------------------------

    def to_public(self) -> dict[str, Any]:
        """JSON for clients. The Agora token is the only secret in it, on purpose."""
        return {
            "id": self.id,
            "state": self.state.value,
            "channel": self.channel,
            "app_id": self.app_id,
            "token": self.token,
            "uid": self.uid,
            "avatar_id": self.avatar_id,
            "expire_seconds": self.expire_seconds,
            "created_at": _iso(self.created_at),
            "created_at_epoch": self.created_at,
            "expires_at": _iso(self.expires_at),
            "expires_at_epoch": self.expires_at,
            "close_reason": self.close_reason.value if self.close_reason else None,
            "closed_at": _iso(self.closed_at),
            "closed_at_epoch": self.closed_at,
            "qa_context_chars": len(self.qa_context or ""),
            "brain": self.brain or "a2e",
        }

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-typed dict of every field, for stores."""
        rec = asdict(self)
        rec["state"] = self.state.value
        rec["close_reason"] = self.close_reason.value if self.close_reason else None
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Room:
        """Inverse of to_record; ignores unknown keys so a newer writer does not break us."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in rec.items() if k in known})
