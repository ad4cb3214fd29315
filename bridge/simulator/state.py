"""The simulator's world: avatars, rooms, the credits ledger, media tasks and assets.

Pure state plus a clock; the HTTP layer (``app.py``) translates requests into calls here and
:class:`SimError` into A2E-shaped error envelopes.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.a2e.errors import CODE_CAPACITY_BUSY, CODE_INSUFFICIENT_CREDITS
from bridge.rtc.accesstoken import ROLE_PUBLISHER, build_rtc_token

from .records import LIFECYCLES, SimTask, iso

__all__ = ["AVATARS", "LIFECYCLES", "SimConfig", "SimError", "SimRoom", "SimState", "SimTask", "iso", "object_id"]


class SimError(Exception):
    """An A2E-style refusal: body ``code`` and ``msg``, sent with ``http_status``."""

    def __init__(self, code: int, msg: str, http_status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status


@dataclass
class SimConfig:
    """Knobs of the simulator; defaults are generous enough for real use and load tests."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)  # also open /_sim; empty: any key, open /_sim
    coins: int = 20_000  # > 100 one-hour rooms at the default rate
    coins_per_stream_minute: int = 1
    max_channels: int = 200
    default_expire_seconds: int = 300
    max_expire_seconds: int = 86_400
    task_step_seconds: float = 1.0  # time a media task spends in each intermediate state
    seconds_per_char: float = 0.02  # avatar speaking speed, for the room event feed
    app_id: str = "a2e5a2e5000000000000000000000001"  # Agora app ids and certificates are 32 hex digits
    app_certificate: str = "ce27ce27000000000000000000000001"


AVATARS: list[dict[str, Any]] = [
    {"_id": "68af59a86eeedd0042ca7e27", "name": "Alice", "gender": "female", "language": "en-US",
     "preview_url": "https://sim.a2e.invalid/avatars/alice.png"},
    {"_id": "68af59a86eeedd0042ca7e28", "name": "Bruno", "gender": "male", "language": "en-US",
     "preview_url": "https://sim.a2e.invalid/avatars/bruno.png"},
    {"_id": "68af59a86eeedd0042ca7e29", "name": "Chen", "gender": "female", "language": "zh-CN",
     "preview_url": "https://sim.a2e.invalid/avatars/chen.png"},
]


def object_id() -> str:
    """A fresh 24-hex id, the shape of A2E's Mongo ObjectIds."""
    return secrets.token_hex(12)


@dataclass
class SimRoom:
    channel: str
    avatar_id: str
    uid: int
    avatar_uid: int
    created_at: float
    expires_at: float
    charged: int
    status: str = "open"  # open | left | expired
    left_at: float | None = None
    refunded: int = 0
    qa_context: str = ""
    commands: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "channel": self.channel, "status": self.status, "avatar_id": self.avatar_id, "uid": self.uid,
            "created_at": self.created_at, "expires_at": self.expires_at, "left_at": self.left_at,
            "charged": self.charged, "refunded": self.refunded, "commands": len(self.commands),
            "qa_context_chars": len(self.qa_context),
        }


class SimState:
    """Everything the simulator remembers; all methods are synchronous and fast."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.coins = config.coins
        self.diamonds = 10
        self.user_id = object_id()  # the account's id, as A2E's records carry it
        self.rooms: dict[str, SimRoom] = {}
        self.tasks: dict[str, SimTask] = {}
        self.assets: dict[str, dict[str, dict[str, Any]]] = {"background": {}, "face_image": {}, "api_token": {}}
        self.voice_training_busy_until = 0.0
        self.counters: dict[str, int] = {}  # A2E operations called (refused ones too), by name
        self.requests = 0  # every HTTP request and websocket that reached the simulator
        # called with each room when it is found expired, by whichever call notices it first
        self.on_expire: list[Callable[[SimRoom], None]] = []
        for bg in ("office", "studio", "beach"):
            self.assets["background"][object_id()] = {"img_url": f"https://sim.a2e.invalid/bg/{bg}.jpg",
                                                       "type": "default"}

    # -- streaming -----------------------------------------------------------------------------
    def refresh(self) -> list[SimRoom]:
        """Mark rooms past their expiry as expired; return the ones that just expired."""
        now = self.clock()
        expired = []
        for room in self.rooms.values():
            if room.status == "open" and now >= room.expires_at:
                room.status = "expired"
                expired.append(room)
        for room in expired:
            for callback in self.on_expire:
                callback(room)
        return expired

    def open_rooms(self) -> list[SimRoom]:
        self.refresh()
        return [r for r in self.rooms.values() if r.status == "open"]

    def mint(self, avatar_id: str, expire_seconds: Any) -> dict[str, Any]:
        if not any(a["_id"] == avatar_id for a in AVATARS):
            raise SimError(400, f"avatar_id: no such avatar: {avatar_id}")
        if expire_seconds is None:
            expire_seconds = self.config.default_expire_seconds
        if isinstance(expire_seconds, bool) or not isinstance(expire_seconds, int):
            raise SimError(400, "expire_seconds must be an integer")
        if not 1 <= expire_seconds <= self.config.max_expire_seconds:
            raise SimError(400, f"expire_seconds must be between 1 and {self.config.max_expire_seconds}")
        if len(self.open_rooms()) >= self.config.max_channels:
            raise SimError(CODE_CAPACITY_BUSY, "hosts are occupied, please try again later")
        cost = math.ceil(expire_seconds * self.config.coins_per_stream_minute / 60)
        if cost > self.coins:
            raise SimError(CODE_INSUFFICIENT_CREDITS, f"insufficient coins: need {cost}, have {self.coins}")
        now = self.clock()
        channel = "sim_" + secrets.token_hex(6)
        uid = 100_000 + secrets.randbelow(900_000)  # never 0: browser apps refuse a falsy uid
        room = SimRoom(channel=channel, avatar_id=avatar_id, uid=uid, avatar_uid=uid + 1, created_at=now,
                       expires_at=now + expire_seconds, charged=cost)
        self.coins -= cost
        self.rooms[channel] = room
        token = build_rtc_token(self.config.app_id, self.config.app_certificate, channel, uid, ROLE_PUBLISHER,
                                expire_seconds=expire_seconds, issued_at=int(now))
        return {
            "token": token, "appId": self.config.app_id, "channel": channel, "uid": uid,
            "expire_epoch_timestamp": int(room.expires_at), "expire_date_UTC": iso(room.expires_at),
        }

    def room(self, channel: Any, *, must_be_open: bool = True) -> SimRoom:
        self.refresh()
        room = self.rooms.get(channel) if isinstance(channel, str) else None
        if room is None:
            raise SimError(404, f"channel not found: {channel}")
        if must_be_open and room.status != "open":
            raise SimError(404, f"channel is not active ({room.status}): {channel}")
        return room

    def set_qa_context(self, channel: Any, text: str) -> None:
        if len(text) > QA_CONTEXT_LIMIT:
            raise SimError(400, f"text is too long: {len(text)} characters, at most {QA_CONTEXT_LIMIT}")
        self.room(channel).qa_context = text

    def command(self, kind: str, channel: Any, text: str) -> SimRoom:
        if not text.strip():
            raise SimError(400, "text must not be empty")
        room = self.room(channel)
        room.commands.append({"kind": kind, "text": text, "at": self.clock()})
        return room

    def leave(self, channel: Any) -> SimRoom:
        """Leave once; leaving again (or after expiry) changes nothing and succeeds."""
        room = self.room(channel, must_be_open=False)
        if room.status == "open":
            now = self.clock()
            unused = max(0.0, room.expires_at - now)
            room.refunded = min(room.charged, math.floor(unused * self.config.coins_per_stream_minute / 60))
            self.coins += room.refunded
            room.status, room.left_at = "left", now
        return room

    # -- media tasks ---------------------------------------------------------------------------
    def create_task(self, kind: str, fields: dict[str, Any], cost: int = 0) -> dict[str, Any]:
        if cost > self.coins:
            raise SimError(CODE_INSUFFICIENT_CREDITS, f"insufficient coins: need {cost}, have {self.coins}")
        self.coins -= cost
        fails = any(isinstance(v, str) and "fail" in v.lower() for v in fields.values())
        task = SimTask(kind, object_id(), self.clock(), dict(fields), fails, user_id=self.user_id, coins=cost)
        self.tasks[task.task_id] = task
        return self.task_record(task)

    def task_record(self, task: SimTask) -> dict[str, Any]:
        return task.record(self.clock(), self.config.task_step_seconds)

    def task(self, kind: str, task_id: Any) -> SimTask:
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.kind != kind or task.deleted:
            if not isinstance(task_id, str) or len(task_id) != 24:
                raise SimError(400, f"invalid _id: {task_id!r}", http_status=400)
            raise SimError(404, f"task not found: {task_id}", http_status=404)
        return task

    def tasks_of(self, kind: str, *, running_only: bool = False) -> list[dict[str, Any]]:
        """The records of ``kind``'s tasks, newest first (only those still running, if asked)."""
        now, step = self.clock(), self.config.task_step_seconds
        tasks = [t for t in self.tasks.values() if t.kind == kind and not t.deleted]
        if running_only:
            tasks = [t for t in tasks if t.state(now, step)[0] not in ("completed", "success", "failed", "fail")]
        return [t.record(now, step) for t in sorted(tasks, key=lambda t: t.created_at, reverse=True)]

    def delete_task(self, kind: str, task_id: Any, *, only_settled: bool = False) -> None:
        task = self.task(kind, task_id)
        status, _ = task.state(self.clock(), self.config.task_step_seconds)
        if only_settled and status not in LIFECYCLES[kind][:1] + ("completed", "failed"):
            raise SimError(400, f"task {task_id} is {status}; only initialized or finished tasks can be deleted",
                           http_status=400)
        task.deleted = True

    # -- assets (backgrounds, face images) ---------------------------------------------------
    def add_asset(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        asset_id = object_id()
        now = iso(self.clock())
        self.assets[kind][asset_id] = {**record, "createdAt": now, "updatedAt": now}
        return {"_id": asset_id, **self.assets[kind][asset_id]}

    def list_assets(self, kind: str) -> list[dict[str, Any]]:
        return [{"_id": k, **v} for k, v in self.assets[kind].items()]

    def delete_asset(self, kind: str, asset_id: Any) -> None:
        if not isinstance(asset_id, str) or len(asset_id) != 24:
            raise SimError(400, f"invalid _id: {asset_id!r}", http_status=400)
        if asset_id not in self.assets[kind]:
            raise SimError(404, f"_id not found: {asset_id}", http_status=404)
        if self.assets[kind][asset_id].get("type") == "default":
            raise SimError(400, "system backgrounds cannot be deleted", http_status=400)
        del self.assets[kind][asset_id]

    def snapshot(self) -> dict[str, Any]:
        self.refresh()
        return {
            "coins": self.coins,
            "diamonds": self.diamonds,
            "rooms": [r.public() for r in self.rooms.values()],
            "open_rooms": sum(1 for r in self.rooms.values() if r.status == "open"),
            "tasks": len(self.tasks),
            "calls": dict(self.counters),
            "requests": self.requests,
        }
