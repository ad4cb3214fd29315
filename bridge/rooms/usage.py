"""Usage and spend: the bridge's own ledger of what A2E charged for each room.

It mirrors A2E's (and the simulator's, ``bridge/simulator/state.py``) bookkeeping: a room's whole
``expire_seconds`` is charged at mint, ceil(seconds × coins per minute / 60) coins; when A2E confirms
the leave, the unused seconds are refunded, floor(unused × coins per minute / 60), never more than
was charged. Figures are reported per UTC day (of the room's opening) or per room, and reconciled
with A2E's balance (``remaining_coins``): what the account lost since this process started, against
what the ledger says this process spent. A per-tenant daily threshold (``spend_alert_coins``) fires
the ``on_spend_threshold`` hooks.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Literal

from bridge import metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError
from bridge.settings import Settings

from .journal import UsageRecord
from .models import Room
from .registry import Clock, LiveRoom
from .store import RoomStore
from .writer import SerialWriter

log = logging.getLogger("bridge.usage")

Group = Literal["day", "room"]
DAY = 86_400


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def day_start(ts: float) -> float:
    return math.floor(ts / DAY) * DAY


class UsageLedger:
    def __init__(self, settings: Settings, store: RoomStore, writer: SerialWriter, a2e: A2EClient, *,
                 clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.a2e = a2e
        self.clock = clock
        self.on_spend_threshold: list[Callable[[str, str, int, int], Awaitable[None]]] = []  # tenant, day, net, limit
        self._baseline: float | None = None  # A2E's balance when this process started
        self._spent = 0  # net coins this process's ledger booked since then

    # -- hooks --------------------------------------------------------------------------------
    def charged(self, lr: LiveRoom) -> None:
        """A room opened (a hook of the room lifecycle): book its charge, once (a resumed room was)."""
        record = self._charge_of(lr.room)
        self.writer.submit(lambda: self._charge(record))

    def _charge_of(self, room: Room) -> UsageRecord:
        cost = math.ceil(room.expire_seconds * self.settings.coins_per_minute / 60)
        return UsageRecord(room_id=room.id, tenant=room.tenant, opened_at=room.opened_at or room.created_at,
                           expire_seconds=room.expire_seconds, charged=cost)

    async def _charge(self, record: UsageRecord) -> None:
        if not await self.store.charge(record):
            return
        metrics.COINS_CHARGED.inc(record.charged)
        self._spent += record.charged
        limit = self.settings.limits_for(record.tenant).spend_alert_coins
        if limit is not None:
            day = day_start(record.opened_at)
            net = sum(r.net for r in await self.store.usage_records(tenant=record.tenant, since=day, until=day + DAY))
            if net >= limit:
                for hook in self.on_spend_threshold:
                    await hook(record.tenant, day_of(day), net, limit)

    def refunded(self, lr: LiveRoom) -> Awaitable[None]:
        """A room closed (a hook of the room lifecycle): book the refund of its unused time. Enqueued at
        once, so a reader that saw the room closed and flushed the writer sees the refund."""
        return self.writer.submit(lambda: self._refund(lr))

    async def _refund(self, lr: LiveRoom) -> None:
        room = lr.room
        record = await self.store.get_usage(room.id)
        if record is None and room.channel:
            # minted but closed before it opened (closed while minting, its QA context refused): A2E
            # charged it all the same
            await self._charge(self._charge_of(room))
            record = await self.store.get_usage(room.id)
        if record is None or record.closed_at is not None:
            return  # never minted, or booked already
        ends = record.opened_at + record.expire_seconds
        left = room.left_at if room.left_at is not None else room.closed_at or self.clock()
        record.closed_at, record.close_reason = left, room.close_reason.value if room.close_reason else None
        record.used_seconds = max(0.0, min(left, ends) - record.opened_at)
        if room.left_at is not None:  # A2E gives back only what a confirmed leave left unused
            unused = max(0.0, ends - room.left_at)
            record.refunded = min(record.charged, math.floor(unused * self.settings.coins_per_minute / 60))
        await self.store.put_usage(record)
        metrics.COINS_REFUNDED.inc(record.refunded)
        self._spent -= record.refunded

    async def of_room(self, room_id: str) -> UsageRecord | None:
        await self.writer.flush()
        return await self.store.get_usage(room_id)

    # -- reports ------------------------------------------------------------------------------
    async def report(self, tenant: str | None, since: float, until: float, group: Group) -> list[dict[str, Any]]:
        await self.writer.flush()
        now = self.clock()
        records = await self.store.usage_records(tenant=tenant, since=since, until=until)
        if group == "room":
            return [{"room_id": r.room_id, "tenant": r.tenant, "day": day_of(r.opened_at),
                     "opened_at": r.opened_at, "closed_at": r.closed_at, "close_reason": r.close_reason,
                     **figures([r], now)} for r in records]
        days: dict[str, list[UsageRecord]] = {}
        for r in records:
            days.setdefault(day_of(r.opened_at), []).append(r)
        return [{"day": day, **figures(rs, now)} for day, rs in days.items()]

    async def reconciliation(self) -> dict[str, Any]:
        """A2E's balance against the ledger: ``difference`` 0 means A2E charged this process's rooms
        exactly what the ledger says (and nothing else spent the account meanwhile)."""
        await self.writer.flush()
        try:
            coins = (await self.a2e.remaining_coins()).get("coins")
        except A2EError as exc:
            return {"available": False, "error": type(exc).__name__}
        if not isinstance(coins, (int, float)) or self._baseline is None:
            return {"available": False}
        spent = self._baseline - coins
        return {"available": True, "remaining_coins": coins, "a2e_spent_since_start": spent,
                "ledger_net_since_start": self._spent, "difference": spent - self._spent}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Note A2E's balance at start, the baseline of :meth:`reconciliation`."""
        try:
            coins = (await self.a2e.remaining_coins()).get("coins")
            self._baseline = float(coins) if isinstance(coins, (int, float)) else None
        except A2EError as exc:
            log.warning("usage: A2E's balance is unknown at start, so no reconciliation (%s)", exc)
        yield


def figures(records: list[UsageRecord], now: float) -> dict[str, Any]:
    """Totals of ``records``; a room still open counts its time so far as used and nothing refunded."""
    reserved = sum(r.expire_seconds for r in records)
    used = sum(r.used_seconds if r.used_seconds is not None else max(0.0, min(now, r.opened_at + r.expire_seconds)
                                                                       - r.opened_at) for r in records)
    charged, refunded = sum(r.charged for r in records), sum(r.refunded for r in records)
    return {"rooms": len(records), "open": sum(1 for r in records if r.closed_at is None),
            "room_minutes_reserved": round(reserved / 60, 3), "room_minutes_used": round(used / 60, 3),
            "coins_charged": charged, "coins_refunded": refunded, "coins_net": charged - refunded,
            "coins_saved": refunded}
