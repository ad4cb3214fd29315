"""Many instances on one Redis (``BRIDGE_REDIS_URL``): room ownership, commands and events across instances.

Each live room has one owner, the instance holding its lease (:mod:`.leases`, :mod:`.ownership`); the
owner alone runs the room's queue, timers and observer. Other instances serve the room's clients
through a mirror: commands are forwarded to the owner and acknowledged end to end, the owner's events
reach every instance. SIGTERM with peers alive hands the rooms over instead of leaving them.

Built on the room domain (``bridge.rooms``), which never imports it; wired by the app only when
``BRIDGE_REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bridge.errors import RoomMoved
from bridge.rooms import Rooms
from bridge.settings import Settings

from . import keys
from .leases import Leases
from .ownership import Ownership

__all__ = ["Cluster"]

log = logging.getLogger("bridge.cluster")


class Cluster:
    """This instance among the others: wired into the room domain's hooks at construction."""

    def __init__(self, settings: Settings, rooms: Rooms) -> None:
        assert settings.redis_url is not None
        self.settings, self.rooms, self.me = settings, rooms, settings.instance_id
        timeout = max(1.0, settings.lease_seconds)
        self.redis = Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=timeout,
                                    socket_connect_timeout=timeout)
        self.leases = Leases(self.redis, self.me, settings.lease_seconds)
        self.ownership = Ownership(self.leases, rooms.lifecycle, next_event_id=self.next_event_id)
        rooms.lifecycle.claim = self.ownership.claim
        self.handed_over = False
        self._tasks: list[asyncio.Task[None]] = []

    async def next_event_id(self, room_id: str) -> int:
        """Where a new owner goes on with the room's event ids: after the last one its owners logged."""
        last = await self.redis.xrevrange(keys.event_log(room_id), count=1)
        fields = last[0][1] if last else None
        return int(fields["id"]) + 1 if fields else 1

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Cluster]:
        try:
            await self.leases.heartbeat()
        except RedisError as exc:
            self.ownership.renewals.failed(exc)
        self._tasks.append(asyncio.create_task(self.ownership.run(), name="cluster-ownership"))
        log.info("instance %s: many instances on Redis (lease %gs)", self.me, self.settings.lease_seconds)
        try:
            yield self
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Hand the rooms over to the peers alive, or (the last instance) leave them, as one instance does."""
        try:
            peers = await self.leases.peers_alive()
        except RedisError:
            peers = []
        if peers:
            await self.hand_over()
        else:
            await self.rooms.lifecycle.stop()  # while the leases are still renewed
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError):
            await self.leases.depart()
        await self.redis.aclose()

    async def hand_over(self) -> None:
        """Give every room this instance runs to its peers: no leave, clients told to reconnect."""
        if self.handed_over:
            return
        self.handed_over = True
        self.ownership.adopting = False
        rooms = list(self.rooms.registry.live.values())
        log.info("handing %d room(s) over to the other instances", len(rooms))
        for lr in rooms:
            await self.rooms.lifecycle.release(lr, RoomMoved("the room moved to another instance; retry"))
        with contextlib.suppress(RedisError):
            for lr in rooms:
                await self.leases.release(lr.room.id)
            self.ownership.held.clear()
            await self.redis.publish(keys.ADOPT, self.me)
