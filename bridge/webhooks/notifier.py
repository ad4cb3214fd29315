"""Room events as webhook events: what each one says and when it is written to the outbox.

| event | when | ``data`` |
|---|---|---|
| ``room.opened`` | a room opened | ``room`` |
| ``room.expiring`` | ``BRIDGE_WEBHOOK_EXPIRING_SECONDS`` before it is left for expiry | ``room``, ``leaves_at``, ``seconds_left`` |
| ``reply.final`` | the avatar finished an answer | ``room_id``, ``reply_id``, ``text``, ``source`` |
| ``room.closed`` | A2E confirmed the leave | ``room`` (with ``close_reason``), ``usage`` |
| ``transcript.ready`` | after ``room.closed`` | ``room_id``, ``entries``, ``transcript_path`` |
| ``spend.threshold`` | a tenant's net coins of a day reach ``spend_alert_coins`` (once) | ``day``, ``coins_net``, ``threshold`` |

Everything goes through the rooms' :class:`~bridge.rooms.writer.SerialWriter`, so a room's events
enter the outbox in the order they happened. Events that happen once per room (or per day) have a
``webhook-id`` made from the room (or day): a resumed room or a restart never sends them twice.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from bridge import frames
from bridge.rooms.journal import Delivery
from bridge.rooms.models import Room
from bridge.rooms.registry import LiveRoom
from bridge.rooms.store import RoomStore
from bridge.rooms.writer import SerialWriter
from bridge.settings import Settings, WebhookEvent

EVENTS: tuple[WebhookEvent, ...] = ("room.opened", "room.expiring", "room.closed", "reply.final",
                                    "transcript.ready", "spend.threshold")


def room_data(room: Room) -> dict[str, Any]:
    """The room as webhooks show it: without its Agora token, which is for the viewer only."""
    public = room.to_public()
    return {k: public[k] for k in ("id", "state", "channel", "avatar_id", "expire_seconds", "created_at",
                                   "expires_at", "close_reason", "closed_at")} | {"tenant": room.tenant}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class Notifier:
    def __init__(self, settings: Settings, store: RoomStore, writer: SerialWriter, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.clock = clock  # real time: receivers check webhook-timestamp against their own clock
        self.on_enqueued: list[Callable[[], None]] = []  # the deliverer's wake-up

    def wants(self, tenant: str, event: WebhookEvent) -> bool:
        target = self.settings.webhooks.get(tenant)
        return target is not None and (target.events is None or event in target.events)

    # -- hooks --------------------------------------------------------------------------------
    def opened(self, lr: LiveRoom) -> None:
        """A room opened or was resumed (a lifecycle hook): ``room.opened`` once, and its replies watched."""
        room = lr.room
        lr.events.listeners.append(lambda frame: self._frame(lr, frame))
        self.emit(room.tenant, "room.opened", {"room": room_data(room)}, room_id=room.id,
                  webhook_id=f"msg_{room.id}_opened")

    def _frame(self, lr: LiveRoom, frame: frames.ServerFrame) -> None:
        if isinstance(frame, frames.Reply) and frame.final:
            self.emit(lr.room.tenant, "reply.final", {"room_id": lr.room.id, "reply_id": frame.reply_id,
                                                      "text": frame.text, "source": frame.source},
                      room_id=lr.room.id)

    def expiring(self, lr: LiveRoom, now: float, leaves_at: float) -> None:
        """The sweeper's warning (a hook), ``BRIDGE_WEBHOOK_EXPIRING_SECONDS`` before it leaves for
        expiry; ``now`` and ``leaves_at`` are on the rooms' clock."""
        room = lr.room
        self.emit(room.tenant, "room.expiring", {"room": room_data(room), "leaves_at": _iso(leaves_at),
                                                  "seconds_left": max(0.0, round(leaves_at - now, 3))},
                  room_id=room.id, webhook_id=f"msg_{room.id}_expiring")

    def closed(self, lr: LiveRoom) -> Awaitable[None] | None:
        """A room closed (a lifecycle hook, enqueued behind the ledger's refund): ``room.closed`` with
        its usage, then ``transcript.ready``."""
        room = lr.room
        if not self.wants(room.tenant, "room.closed") and not self.wants(room.tenant, "transcript.ready"):
            return None
        return self.writer.submit(lambda: self._closed(room))

    async def _closed(self, room: Room) -> None:
        usage = await self.store.get_usage(room.id)
        figures = None if usage is None else {
            "coins_charged": usage.charged, "coins_refunded": usage.refunded, "coins_net": usage.net,
            "room_minutes_reserved": round(usage.expire_seconds / 60, 3),
            "room_minutes_used": round((usage.used_seconds or 0) / 60, 3)}
        await self.enqueue(room.tenant, "room.closed", {"room": room_data(room), "usage": figures},
                           room_id=room.id, webhook_id=f"msg_{room.id}_closed")
        entries, after = 0, 0
        while batch := await self.store.transcript(room.id, after=after, limit=1000):
            entries, after = entries + len(batch), batch[-1].id
        await self.enqueue(room.tenant, "transcript.ready",
                           {"room_id": room.id, "entries": entries, "transcript_path": f"/v1/rooms/{room.id}/transcript"},
                           room_id=room.id, webhook_id=f"msg_{room.id}_transcript")

    async def spend(self, tenant: str, day: str, net: int, limit: int) -> None:
        """The ledger's hook (it runs inside the writer, so this writes at once)."""
        tag = base64.urlsafe_b64encode(tenant.encode()).decode().rstrip("=")
        await self.enqueue(tenant, "spend.threshold", {"tenant": tenant, "day": day, "coins_net": net,
                                                       "threshold": limit},
                           webhook_id=f"msg_spend_{tag}_{day}")

    # -- the outbox ---------------------------------------------------------------------------
    def emit(self, tenant: str, event: WebhookEvent, data: dict[str, Any], *, room_id: str | None = None,
             webhook_id: str | None = None) -> None:
        """Write an event to the outbox in the background, after everything recorded before it."""
        if self.wants(tenant, event):
            self.writer.submit(lambda: self.enqueue(tenant, event, data, room_id=room_id, webhook_id=webhook_id))

    async def enqueue(self, tenant: str, event: WebhookEvent, data: dict[str, Any], *, room_id: str | None = None,
                      webhook_id: str | None = None) -> bool:
        """Into the outbox now (durable when this returns); False if this event was there already."""
        if not self.wants(tenant, event):
            return False
        now = self.clock()
        body = json.dumps({"type": event, "timestamp": _iso(now), "data": data}, separators=(",", ":"))
        delivery = Delivery(webhook_id=webhook_id or f"msg_{secrets.token_urlsafe(18)}", tenant=tenant, event=event,
                            payload=body, created_at=now, order_key=room_id or f"tenant:{tenant}", room_id=room_id,
                            next_attempt_at=now)
        added = await self.store.enqueue(delivery)
        if added:
            for wake in self.on_enqueued:
                wake()
        return added

