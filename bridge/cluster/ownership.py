"""Room ownership across instances: heartbeat, lease renewal, fencing, and adopting orphaned rooms.

Every ``lease/3`` seconds the instance renews its heartbeat and the leases of the rooms it runs; a
lease another instance holds now (this one was cut off longer than a lease) is fenced: the room is
dropped here without leaving A2E, its clients told to reconnect. Every ``min(0.5, lease/5)`` seconds
it scans the live rooms for one without a lease (its owner died, or handed it over) and adopts it:
resumed or left, as a restart recovers its own rooms. Redis trouble is logged once per outage;
owners keep their rooms meanwhile, and re-register them when Redis is back (after a restart that
lost everything, their records too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from bridge.errors import RoomMoved, StoreUnavailable, UpstreamBusy
from bridge.rooms.lifecycle import RoomLifecycle
from bridge.rooms.models import LIVE_STATES, Room
from bridge.store.redis import RedisRoomStore

from .leases import Leases

log = logging.getLogger("bridge.cluster")

CLAIM_SECONDS = 120.0  # longer than any creation takes (its A2E calls time out before)


class Outage:
    """Redis trouble, told once per outage (not once per failed call)."""

    def __init__(self, what: str) -> None:
        self.what, self.down = what, False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            log.error("Redis unreachable (%s): %s; retrying", self.what, exc)

    def ok(self) -> bool:
        """True once, when Redis answers again after an outage."""
        if self.down:
            self.down = False
            log.warning("Redis reachable again (%s)", self.what)
            return True
        return False


class Ownership:
    """Which live rooms this instance runs (``registry.live``) and the leases that say so."""

    def __init__(self, leases: Leases, lifecycle: RoomLifecycle, *,
                 next_event_id: Callable[[str], Awaitable[int]]) -> None:
        self.leases = leases
        self.lifecycle = lifecycle
        self.registry = lifecycle.registry
        self.store = lifecycle.store
        self.next_event_id = next_event_id
        self.held: set[str] = set()  # rooms whose lease this instance holds
        self.adopting_now: set[str] = set()  # held, not yet in the registry
        # rooms being created here (lease taken, record not yet written or refused): renewed meanwhile
        self.claiming: dict[str, float] = {}
        self.adopting = True  # False once handing over: a departing instance takes no rooms
        self.settled = asyncio.Event()  # no adoption under way
        self.settled.set()
        self.renewals = Outage("leases")
        self.scans = Outage("ownership scan")
        self.wake = asyncio.Event()  # a scan now (a peer handing over its rooms asks for one)
        lease = leases.lease
        self.renew_every, self.scan_every = lease / 3, min(0.5, lease / 5)

    async def claim(self, room: Room) -> None:
        """Take a new room's lease before its record is written (a hook of the lifecycle)."""
        if not self.adopting:
            raise UpstreamBusy("this instance is handing its rooms over (stopping): retry", headers={"Retry-After": "1"})
        try:
            taken = await self.leases.take(room.id)
        except RedisError as exc:
            self.renewals.failed(exc)
            raise StoreUnavailable("the bridge's shared registry (Redis) cannot be reached: no new rooms for now; "
                                   "retry shortly") from None
        if not taken:  # ids are random: only a bug gets here
            raise UpstreamBusy(f"room id {room.id} is taken; retry")
        self.held.add(room.id)
        self.claiming[room.id] = time.monotonic()

    # -- the loops -----------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(self.renew_every, self.renew_once, self.renewals))
            group.create_task(self._every(self.scan_every, self.scan_once, self.scans, wake=self.wake))

    async def _every(self, period: float, step: Callable[[], Awaitable[None]], outage: Outage,
                     wake: asyncio.Event | None = None) -> None:
        while True:
            try:
                await step()
            except (RedisError, StoreUnavailable) as exc:
                outage.failed(exc)
            except Exception:  # a bug costs one round, not the instance's ownership
                log.exception("cluster: %s failed", outage.what)
            if wake is None:
                await asyncio.sleep(period)
            else:
                # not wait_for: on 3.11 it swallows a cancel that lands as the event is set (gh-86296):
                # a peer's "adopt now" at this instance's shutdown left this loop running for ever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(period):
                        await wake.wait()
                wake.clear()

    async def renew_once(self) -> None:
        """Heartbeat, renew what this instance runs, fence what another instance took, and give
        back the leases of rooms that ended here."""
        await self.leases.heartbeat()
        now = time.monotonic()
        for room_id, since in list(self.claiming.items()):  # created (now live here), or refused long ago
            if room_id in self.registry.live or now - since > CLAIM_SECONDS:
                del self.claiming[room_id]
        owned = [*self.registry.live, *self.claiming]
        lost = await self.leases.renew(owned)
        if self.renewals.ok():
            await self.reregister(owned)
        self.held = (self.held | set(owned)) - set(lost)
        for room_id in self.held - set(self.registry.live) - self.adopting_now - set(self.claiming):
            self.held.discard(room_id)
            await self.leases.release(room_id)
        for room_id in lost:
            lr = self.registry.live.get(room_id)
            if lr is not None:
                log.error("room %s: another instance holds its lease now; dropped here without leaving A2E",
                          room_id, extra=lr.room.log_fields())
                await self.lifecycle.release(lr, RoomMoved("the room moved to another instance; retry"))

    async def reregister(self, owned: list[str]) -> None:
        """After an outage: a record Redis lost (a restart without persistence) is written again."""
        for room_id in owned:
            lr = self.registry.live.get(room_id)
            if lr is not None and await self.store.get(room_id) is None:
                await self.store.put(lr.room)
                log.warning("room %s: its record was gone from the store; written again", room_id)

    async def scan_once(self) -> None:
        """Adopt every live room that has no owner."""
        if not self.adopting:
            return
        orphans = [i for i in await self.live_ids() if i not in self.registry.live]
        self.scans.ok()
        for room_id, owner in zip(orphans, await self.leases.owners(orphans), strict=True):
            if owner is None and self.adopting and await self.leases.take(room_id):
                await self.adopt(room_id)

    async def live_ids(self) -> list[str]:
        """The ids of every live room: the Redis store's live set (ids only, one call), else the store's list."""
        if isinstance(self.store, RedisRoomStore):
            return [str(i) for i in await self.leases.redis.smembers(self.store.keys.live)]
        return [r.id for r in await self.store.list_live()]

    async def stop_adopting(self, within: float) -> None:
        """Take no more rooms, and wait (at most ``within`` seconds) for an adoption under way: its
        room is then live here, left or handed over with the others. (A room adopted while the
        instance stopped was resumed after its rooms were left: its channel watch kept the stop waiting.)"""
        self.adopting = False
        with contextlib.suppress(TimeoutError):  # not wait_for (see _every)
            async with asyncio.timeout(within):
                await self.settled.wait()

    async def adopt(self, room_id: str) -> None:
        self.held.add(room_id)
        if not self.adopting:
            return  # stopping since the scan took the lease: the renewal gives it back
        self.adopting_now.add(room_id)
        self.settled.clear()
        try:
            room = await self.store.get(room_id)  # read again under the lease: the scan's copy may be old
            if room is None or room.state not in LIVE_STATES or room_id in self.registry.live:
                return  # the renewal gives the lease back
            log.info("adopting room %s (%s, no owner)", room_id, room.state.value, extra=room.log_fields())
            await self.lifecycle.adopt(room, first_event_id=await self.next_event_id(room_id))
        finally:
            self.adopting_now.discard(room_id)
            if not self.adopting_now:
                self.settled.set()
