"""Timers: rooms left when idle or near expiry, and old records purged, on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from bridge.aio import cancel_and_wait
from bridge.settings import Settings

from .lifecycle import RoomLifecycle
from .models import CloseReason, RoomState
from .observing import expire_partial_replies
from .registry import Clock, LiveRoom, RoomRegistry
from .store import RoomStore

log = logging.getLogger("bridge.rooms")

PURGE_INTERVAL = 3600  # seconds between purges of old room records


class Sweeper:
    """Every ``BRIDGE_SWEEP_INTERVAL`` seconds: leave idle and expiring rooms; hourly, purge."""

    def __init__(self, settings: Settings, registry: RoomRegistry, lifecycle: RoomLifecycle, store: RoomStore, *,
                 clock: Clock) -> None:
        self.settings = settings
        self.registry = registry
        self.lifecycle = lifecycle
        self.store = store
        self.clock = clock
        # wired by the app: (room, now, when it will be left) once, BRIDGE_WEBHOOK_EXPIRING_SECONDS before
        self.on_expiring: list[Callable[[LiveRoom, float, float], None]] = []
        self._warned: set[str] = set()

    async def sweep(self) -> None:
        """Close rooms that are idle or near expiry; one pass."""
        now = self.clock()
        self._warned &= set(self.registry.live)
        for lr in list(self.registry.live.values()):
            room = lr.room
            if room.state is not RoomState.OPEN:
                continue
            expire_partial_replies(lr)
            leaves_at = (room.expires_at or room.reserved_until) - self.settings.leave_before_expiry
            if now >= leaves_at:
                await self.lifecycle.close(lr, CloseReason.EXPIRY, wait=False)
                continue
            if now >= leaves_at - self.settings.webhook_expiring_seconds and room.id not in self._warned:
                self._warned.add(room.id)
                for hook in self.on_expiring:
                    hook(lr, now, leaves_at)
            if lr.clients == 0 and lr.warm_for is None and now - room.last_activity >= self.settings.idle_timeout:
                await self.lifecycle.close(lr, CloseReason.IDLE, wait=False)

    async def purge(self, now: float | None = None) -> int:
        """Forget ended rooms older than ``BRIDGE_RETENTION_DAYS`` so the registry stays small."""
        now = self.clock() if now is None else now
        removed = await self.store.delete_closed_before(now - self.settings.retention_days * 86_400)
        if removed:
            log.info("purged %d ended room record(s) older than %g days", removed, self.settings.retention_days)
        return removed

    async def run(self) -> None:
        next_purge = 0.0
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
                if self.clock() >= next_purge:
                    await self.purge()
                    next_purge = self.clock() + PURGE_INTERVAL
            except Exception:  # the sweeper must outlive any one bad room
                log.exception("room sweep failed")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run(), name="room-sweeper")
        try:
            yield
        finally:
            await cancel_and_wait(task)
