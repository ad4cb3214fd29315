"""Warm rooms: each kiosk profile's ``warm_rooms`` rooms kept open ahead of visitors.

A kiosk page takes one (:meth:`WarmPool.take`) instead of waiting for A2E to mint a room, and the
pool opens a replacement. A waiting room is exempt from the idle rule (``LiveRoom.warm_for``) but
still ends before its expiry like any room, and is then replaced. A room once taken is an ordinary
room, left when idle by the normal rules. Rooms are opened through the lifecycle, so the tenant's
caps apply: the pool never opens past the tenant's concurrent-room cap (checked first, so that it
costs nothing), and a refused opening is logged and retried later with a growing delay, so that a
pool that cannot fill does not use up the tenant's creation rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from bridge import metrics
from bridge.aio import cancel_and_wait
from bridge.errors import BridgeError, CapExceeded
from bridge.settings import Settings
from bridge.settings.kiosk import KioskProfile

from .lifecycle import RoomLifecycle
from .models import RoomState
from .registry import Clock, LiveRoom, RoomRegistry

log = logging.getLogger("bridge.rooms")

RETRY_FIRST, RETRY_MOST = 2.0, 60.0  # seconds before a refused refill is tried again, doubling
BrainCheck = Callable[[str | None, str], str | None]
"""(brain, tenant) -> the brain a room gets, or ValidationFailed (``Answering.check``)."""


class WarmPool:
    """The waiting rooms of every profile with ``warm_rooms``; ``default_tenant`` owns the rooms of
    profiles that name no tenant (development mode's single tenant)."""

    def __init__(self, settings: Settings, lifecycle: RoomLifecycle, registry: RoomRegistry, *,
                 default_tenant: str | None, clock: Clock, check_brain: BrainCheck = lambda name, tenant: None) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self.registry = registry
        self.clock = clock
        self.check_brain = check_brain
        self.profiles = {name: p for name, p in settings.kiosk_profiles.items() if p.warm_rooms}
        self.tenants = {name: p.tenant or default_tenant for name, p in self.profiles.items()}
        self.waiting: dict[str, list[LiveRoom]] = {name: [] for name in self.profiles}
        self._retry: dict[str, tuple[float, float]] = {}  # profile -> (not before, next delay)
        self._wake = asyncio.Event()
        metrics.WARM_ROOMS.set_function(lambda: sum(len(rooms) for rooms in self.waiting.values()))

    def take(self, profile: str, tenant: str) -> LiveRoom | None:
        """A waiting room of ``profile`` for ``tenant`` (the youngest), now the caller's; None if
        there is none. The pool opens its replacement in the background."""
        if self.tenants.get(profile) != tenant:
            return None
        rooms = self.waiting[profile]
        while rooms:
            lr = rooms.pop()
            lr.warm_for = None
            if lr.room.state is RoomState.OPEN:
                self.registry.touch(lr)  # the idle rule counts from now
                self._wake.set()
                return lr
        return None

    async def fill(self) -> None:
        """One pass: forget rooms that ended, open what is missing (within the caps)."""
        for name, profile in self.profiles.items():
            rooms = self.waiting[name]
            rooms[:] = [lr for lr in rooms if lr.room.state is RoomState.OPEN]
            tenant = self.tenants[name]
            not_before, delay = self._retry.get(name, (0.0, RETRY_FIRST))
            if tenant is None or len(rooms) >= profile.warm_rooms or self.clock() < not_before:
                continue
            try:
                while len(rooms) < profile.warm_rooms and self._room_allowed(tenant):
                    rooms.append(await self._open(name, profile, tenant))
                self._retry.pop(name, None)
            except BridgeError as exc:
                code = f"{exc.code}: {exc.cap}" if isinstance(exc, CapExceeded) else exc.code
                log.warning("kiosk profile %s: could not open a warm room (%s: %s); retrying in %g s",
                            name, code, exc.message, delay)
                self._retry[name] = (self.clock() + delay, min(RETRY_MOST, delay * 2))

    def _room_allowed(self, tenant: str) -> bool:
        """Below the tenant's concurrent-room cap (a warm room counts like any other)."""
        cap = self.settings.limits_for(tenant).max_rooms_per_tenant
        return cap is None or len(self.registry.of_tenant(tenant)) < cap

    async def _open(self, name: str, profile: KioskProfile, tenant: str) -> LiveRoom:
        lr = await self.lifecycle.create(tenant, avatar_id=profile.avatar_id, expire_seconds=profile.expire_seconds,
                                         qa_context=profile.qa_context, brain=self.check_brain(profile.brain, tenant))
        lr.warm_for = name
        log.info("kiosk profile %s: warm room %s open", name, lr.room.id)
        return lr

    async def run(self) -> None:
        while True:
            try:
                await self.fill()
            except Exception:  # the pool must outlive any one bad pass
                log.exception("warm room pass failed")
            with contextlib.suppress(TimeoutError):  # not wait_for: see bridge/webhooks/deliverer.py
                async with asyncio.timeout(self.settings.sweep_interval):
                    await self._wake.wait()
            self._wake.clear()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if not self.profiles:
            yield
            return
        task = asyncio.create_task(self.run(), name="warm-rooms")
        try:
            yield
        finally:
            await cancel_and_wait(task)
