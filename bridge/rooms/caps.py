"""Spend caps: what a tenant may reserve before A2E is asked to mint (and charge for) a room, and the
stricter caps of each browser key (rooms at once, longest room, rooms per hour, QA context length).

A new room takes its place under the caps through :class:`Reservations`: checked and written as one
step. One process does that with a lock per tenant (:class:`LocalReservations`); a store shared by many
instances (Redis) does it in one atomic call (:class:`AtomicCaps`, :class:`StoreReservations`), so two
instances racing for a tenant's last slot cannot both win.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.a2e.errors import A2EError
from bridge.errors import CapExceeded, Forbidden, ValidationFailed
from bridge.rooms.models import Room
from bridge.rooms.store import RoomStore
from bridge.settings import Settings, TenantLimits

log = logging.getLogger("bridge.rooms")


class CreationRate:
    """Room creations per tenant per minute: a token bucket of ``room_create_burst`` refilled at
    ``room_create_rate`` per minute (``Settings.limits_for``).

    Hand-written (a dozen lines) because it needs an injectable clock, so tests move time instead of
    sleeping, and the wait until the next token for ``Retry-After``; the limiter libraries (limits,
    aiolimiter) read the system clock. One bucket per tenant: tenants come from the configured keys,
    so the table stays small.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, when counted)

    def take(self, tenant: str) -> None:
        """Count one creation attempt of ``tenant``, or refuse it (429 ``creation_rate``, Retry-After)."""
        limits = self.settings.limits_for(tenant)
        assert limits.room_create_rate is not None and limits.room_create_burst is not None
        per_second, burst = limits.room_create_rate / 60, float(limits.room_create_burst)
        now = self.clock()
        tokens, stamp = self._buckets.get(tenant, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - stamp) * per_second)
        if tokens < 1:
            self._buckets[tenant] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / per_second))
            exc = CapExceeded("creation_rate", f"tenant may open at most {limits.room_create_rate:g} rooms per "
                                               f"minute (burst {limits.room_create_burst}); retry in {wait} s")
            exc.headers["Retry-After"] = str(wait)
            raise exc
        self._buckets[tenant] = (tokens - 1, now)


class BrowserKeyHourly:
    """Rooms each browser key opened in the last hour: a sliding window of creation times per key
    (at most ``browser_key_rooms_per_hour`` entries each, so it stays small). Per process: a restart
    forgets it, the other caps still hold. Hand-written for the injected clock, as CreationRate."""

    WINDOW = 3600.0

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._opened: dict[str, deque[float]] = {}

    def take(self, tenant: str, key: str) -> None:
        """Count one room opened by ``key``, or refuse it (429 ``browser_key_rooms_per_hour``, Retry-After)."""
        most = self.settings.limits_for(tenant).browser_key_rooms_per_hour
        assert most is not None
        now = self.clock()
        opened = self._opened.setdefault(key, deque())
        while opened and opened[0] <= now - self.WINDOW:
            opened.popleft()
        if len(opened) >= most:
            wait = max(1, math.ceil(opened[0] + self.WINDOW - now))
            exc = CapExceeded("browser_key_rooms_per_hour",
                              f"this browser key may open at most {most} rooms per hour; retry in {wait} s")
            exc.headers["Retry-After"] = str(wait)
            raise exc
        opened.append(now)


def check_qa_context(text: object) -> None:
    if not isinstance(text, str):
        raise ValidationFailed("qa_context must be a string")
    if len(text) > QA_CONTEXT_LIMIT:
        raise ValidationFailed(f"QA context is {len(text)} characters; A2E accepts at most {QA_CONTEXT_LIMIT}",
                               details={"limit": QA_CONTEXT_LIMIT, "length": len(text)})


def check_browser_qa_context(settings: Settings, tenant: str, text: str | None) -> None:
    """A browser key (or its room's ticket) may set at most the tenant's QA context length (403)."""
    most = settings.limits_for(tenant).browser_key_qa_context_chars
    assert most is not None
    if text and len(text) > most:
        raise Forbidden(f"a browser key may set at most {most} characters of QA context "
                        "(BRIDGE_BROWSER_KEY_QA_CONTEXT_CHARS)", details={"limit": most, "length": len(text)})


class SpendCaps:
    """Per-tenant caps (``Settings.limits_for``), per-browser-key caps and the A2E balance check."""

    def __init__(self, settings: Settings, store: RoomStore, a2e: A2EClient, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.a2e = a2e
        self.creation_rate = CreationRate(settings)
        self.browser_hourly = BrowserKeyHourly(settings, clock=clock)
        self.reservations: Reservations = (StoreReservations(self, store) if isinstance(store, AtomicCaps)
                                           else LocalReservations(self))

    def room_lifetime(self, tenant: str, requested: int | None, *, browser_key: str | None = None) -> int:
        """The ``expire_seconds`` a new room gets: the request or the default, within the caps (a
        browser key's own longest room, too)."""
        s = self.settings
        limits = s.limits_for(tenant)
        most = limits.max_expire_seconds
        assert most is not None and limits.browser_key_max_expire_seconds is not None
        if browser_key is not None:
            most = min(most, limits.browser_key_max_expire_seconds)
        expire = requested if requested is not None else min(s.default_expire_seconds, most)
        if expire > most:
            raise CapExceeded("expire_seconds", f"expire_seconds may be at most {most}")
        if expire <= s.leave_before_expiry:
            # The sweeper leaves a room leave_before_expiry seconds before its end: such a room would
            # be paid for and closed at once.
            minimum = math.floor(s.leave_before_expiry) + 1
            raise ValidationFailed(f"expire_seconds must be at least {minimum}: rooms are left "
                                   f"{s.leave_before_expiry:g} s before they expire", details={"min": minimum})
        return expire

    def limits(self, tenant: str) -> TenantLimits:
        caps = self.settings.limits_for(tenant)
        assert caps.max_rooms_per_tenant is not None and caps.room_minutes_per_day is not None
        assert caps.browser_key_max_rooms is not None
        return caps

    def check_key_rooms(self, tenant: str, key_rooms: int | None) -> None:
        """``key_rooms``: the live rooms of the browser key asking, if one is."""
        most = self.limits(tenant).browser_key_max_rooms
        if key_rooms is not None and most is not None and key_rooms >= most:
            raise CapExceeded("browser_key_rooms", f"this browser key has {key_rooms} live rooms; the cap is {most}")

    async def check(self, tenant: str, expire: int, *, live_rooms: int, key_rooms: int | None = None) -> None:
        """Refuse (429, naming the cap) a room ``tenant`` may not open now; ``key_rooms``: the live
        rooms of the browser key asking, if one is."""
        caps = self.limits(tenant)
        assert caps.max_rooms_per_tenant is not None and caps.room_minutes_per_day is not None
        self.check_key_rooms(tenant, key_rooms)
        if live_rooms >= caps.max_rooms_per_tenant:
            raise CapExceeded("concurrent_rooms",
                              f"tenant has {live_rooms} live rooms; the cap is {caps.max_rooms_per_tenant}")
        used = await self.store.usage_seconds(tenant, day_start())
        if (used + expire) / 60 > caps.room_minutes_per_day:
            raise CapExceeded("room_minutes_per_day",
                              f"tenant used {used / 60:.1f} of {caps.room_minutes_per_day:g} room-minutes today; "
                              f"this room would reserve {expire / 60:.1f} more")
        await self.check_balance(expire)

    async def check_balance(self, expire: int) -> None:
        """Refuse a room the A2E account cannot pay for (when ``coins_per_minute`` is known)."""
        s = self.settings
        if s.coins_per_minute > 0:
            needed = math.ceil(expire * s.coins_per_minute / 60)
            try:
                coins = (await self.a2e.remaining_coins()).get("coins")
            except A2EError as exc:  # the mint itself will tell if A2E is really down
                log.warning("balance check skipped: %s", exc)
                return
            if isinstance(coins, (int, float)) and coins < needed:
                raise CapExceeded("balance", f"the A2E account has {coins} coins; this room needs about {needed}")


def day_start() -> float:
    """Today's UTC midnight: the room-minutes cap counts from there."""
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@runtime_checkable
class AtomicCaps(Protocol):
    """A store shared by many instances that checks a tenant's caps and inserts its room in one step."""

    async def insert_within_caps(self, room: Room, *, max_rooms: int, max_room_seconds_today: float,
                                 day_start: float, max_key_rooms: int | None = None) -> str | None:
        """Insert ``room`` (new, live) unless that passes a cap (``max_key_rooms``: of the browser key
        that opens it); then write nothing and name the cap."""
        ...


class Reservations(Protocol):
    async def reserve(self, room: Room, *, browser_key: str | None, live: Callable[[], list[Room]],
                      admit: Callable[[], None], write: Callable[[], Awaitable[None]]) -> None:
        """Write the new ``room`` under its tenant's caps, or refuse it (429 naming the cap) with
        nothing written. ``live``: the tenant's live rooms in this process; ``admit``: makes the
        room known to this process; ``write``: puts it in the store."""
        ...


class LocalReservations:
    """One process: a lock per tenant makes the count of its live rooms, the check and the write one step."""

    def __init__(self, caps: SpendCaps) -> None:
        self.caps = caps
        self._locks: dict[str, asyncio.Lock] = {}

    async def reserve(self, room: Room, *, browser_key: str | None, live: Callable[[], list[Room]],
                      admit: Callable[[], None], write: Callable[[], Awaitable[None]]) -> None:
        async with self._locks.setdefault(room.tenant, asyncio.Lock()):
            rooms = live()
            key_rooms = None if browser_key is None else sum(r.opened_by == browser_key for r in rooms)
            await self.caps.check(room.tenant, room.expire_seconds, live_rooms=len(rooms), key_rooms=key_rooms)
            admit()  # counted by the next creation as soon as the lock is released
            await write()


class StoreReservations:
    """Many instances: the store counts the browser key's and the tenant's live rooms and the day's
    reserved seconds, and inserts the room, in one atomic call. The balance is asked of A2E before
    that call (it cannot be made atomic with it)."""

    def __init__(self, caps: SpendCaps, store: AtomicCaps) -> None:
        self.caps = caps
        self.store = store

    async def reserve(self, room: Room, *, browser_key: str | None, live: Callable[[], list[Room]],
                      admit: Callable[[], None], write: Callable[[], Awaitable[None]]) -> None:
        limits = self.caps.limits(room.tenant)
        assert limits.max_rooms_per_tenant is not None and limits.room_minutes_per_day is not None
        await self.caps.check_balance(room.expire_seconds)
        refused = await self.store.insert_within_caps(
            room, max_rooms=limits.max_rooms_per_tenant, max_room_seconds_today=limits.room_minutes_per_day * 60,
            day_start=day_start(), max_key_rooms=limits.browser_key_max_rooms if browser_key is not None else None)
        if refused == "browser_key_rooms":
            raise CapExceeded(refused, f"this browser key has {limits.browser_key_max_rooms} live rooms across the "
                                       f"fleet; the cap is {limits.browser_key_max_rooms}")
        if refused == "concurrent_rooms":
            raise CapExceeded(refused, f"tenant has {limits.max_rooms_per_tenant} live rooms across the fleet; "
                                       f"the cap is {limits.max_rooms_per_tenant}")
        if refused is not None:
            raise CapExceeded(refused, f"tenant's room-minutes today would pass {limits.room_minutes_per_day:g} "
                                       f"with this room's {room.expire_seconds / 60:.1f} more")
        admit()
