"""Many instances on one Redis (``BRIDGE_REDIS_URL``): room ownership, commands and events across instances.

Each live room has one owner, the instance holding its lease (:mod:`.leases`, :mod:`.ownership`); the
owner alone runs the room's queue, timers and observer. Other instances serve the room's clients
through a mirror (:mod:`.mirrors`): commands are forwarded to the owner and acknowledged end to end
(:mod:`.forwarding`, :mod:`.inbox`), the owner's events reach every instance. SIGTERM with peers alive
hands the rooms over instead of leaving them.

Built on the room domain (``bridge.rooms``), which never imports it; wired by the app only when
``BRIDGE_REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bridge.errors import RoomMoved
from bridge.rooms import Rooms
from bridge.settings import Settings

from . import keys
from .forwarding import Forwarder
from .inbox import Inbox
from .leases import Leases
from .mirrors import EventsOut, Mirrors
from .ownership import Ownership
from .wire import Listener, Publisher

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
        # blocking reads (the inbox) and the subscriber get connections without a read timeout
        self.blocking = Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=timeout)
        self.leases = Leases(self.redis, self.me, settings.lease_seconds)
        self.ownership = Ownership(self.leases, rooms.lifecycle, next_event_id=self.next_event_id)
        self.publisher = Publisher(self.redis)
        self.listener = Listener(self.blocking)
        self.forwarder = Forwarder(self.redis, self.leases, self.listener, self.me)
        self.inbox = Inbox(self.blocking, rooms.registry, rooms.handles.local, self.publisher, self.me)
        self.mirrors = Mirrors(self.redis, self.listener, settings)
        rooms.lifecycle.claim = self.ownership.claim
        rooms.lifecycle.tap = EventsOut(self.publisher, settings.event_buffer)
        rooms.registry.mirror_of = self.mirrors.of
        rooms.handles.remote = self.forwarder
        self.handed_over = False
        self._tasks: list[asyncio.Task[None]] = []
        self._touched = 0.0
        self.stop_within = min(settings.shutdown_timeout, 10.0)  # seconds each step of a stop may wait

    @property
    def connected(self) -> bool:
        """Its subscriptions and its inbox read Redis (else since the outage they last saw)."""
        return not (self.listener.outage.down or self.inbox.outage.down)

    async def next_event_id(self, room_id: str) -> int:
        """Where a new owner goes on with the room's event ids: after the last one its owners logged."""
        last = await self.redis.xrevrange(keys.event_log(room_id), count=1)
        fields = last[0][1] if last else None
        return int(fields["id"]) + 1 if fields else 1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Cluster]:
        self.publisher.start()
        self.listener.start()
        self._spawn(self._subscribe, "cluster-subscribe")
        self._spawn(self.ownership.run, "cluster-ownership")
        self._spawn(self.inbox.run, "cluster-inbox")
        self._spawn(self._housekeeping, "cluster-housekeeping")
        log.info("instance %s: many instances on Redis (lease %gs)", self.me, self.settings.lease_seconds)
        try:
            yield self
        finally:
            await self.stop()

    def _spawn(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        async def guarded() -> None:
            try:
                await run()
            except Exception:
                log.exception("cluster: %s stopped", name)

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    async def _subscribe(self) -> None:
        """This instance's channels (replies, hand-over calls); retried while Redis is down."""
        while True:
            try:
                await self.forwarder.start()
                await self.listener.subscribe(keys.ADOPT, lambda _: self.ownership.wake.set())
                await self.leases.heartbeat()
                return
            except RedisError as exc:
                self.listener.outage.failed(exc)
                await asyncio.sleep(0.5)

    async def _housekeeping(self) -> None:
        """Fail what waits on owners that died; keep the owners of rooms with clients here from
        taking them for idle; drop unused mirrors."""
        period = self.settings.lease_seconds / 3
        touch_every = min(self.settings.idle_timeout / 4, 15.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            try:
                if self.forwarder.pending:
                    self.forwarder.owners_gone({self.me, *await self.leases.peers_alive()})
                used = self.mirrors.sweep()
                if used and loop.time() - self._touched >= touch_every:
                    self._touched = loop.time()
                    for room_id in used:
                        with contextlib.suppress(RoomMoved):
                            await self.forwarder.touch(room_id)
            except RedisError as exc:
                self.listener.outage.failed(exc)

    async def stop(self) -> None:
        """Hand the rooms over to the peers alive, or (the last instance) leave them, as one instance does."""
        await self.ownership.stop_adopting(self.stop_within)
        try:
            peers = await self.leases.peers_alive()
        except RedisError:
            peers = []
        if self.handed_over or peers:
            await self.hand_over()
        else:
            await self.rooms.lifecycle.stop()  # while the leases are still renewed
        self.mirrors.moved_all()
        await self.publisher.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.listener.aclose()
        with contextlib.suppress(RedisError):
            await self.leases.depart()
        await self.redis.aclose()
        await self.blocking.aclose()

    async def hand_over_if_peers(self) -> bool:
        """SIGTERM (before the server closes its connections): hand over if another instance is alive."""
        try:
            peers = await self.leases.peers_alive()
        except RedisError:
            return False
        if peers:
            await self.hand_over()
        return bool(peers)

    async def hand_over(self) -> None:
        """Give every room this instance runs to its peers, without leaving A2E: what was accepted
        is carried out first (bounded), then the rooms are released, their clients (and those of this
        instance's mirrors) told to reconnect (4012), and the peers asked to adopt at once."""
        if self.handed_over:
            return
        self.handed_over = True
        await self.ownership.stop_adopting(self.stop_within)
        with contextlib.suppress(TimeoutError):  # not wait_for: see bridge/webhooks/deliverer.py
            async with asyncio.timeout(self.stop_within):
                await self._drained()
        rooms = list(self.rooms.registry.live.values())
        log.info("handing %d room(s) over to the other instances", len(rooms))
        for lr in rooms:
            await self.rooms.lifecycle.release(lr, RoomMoved("the room moved to another instance; retry"))
        self.mirrors.moved_all()
        await self.publisher.flush()  # the last events logged before a new owner reads the last id
        with contextlib.suppress(RedisError):
            for lr in rooms:
                await self.leases.release(lr.room.id)
            self.ownership.held.clear()
            await self.redis.publish(keys.ADOPT, self.me)

    async def _drained(self) -> None:
        """Until the rooms' queues are empty and the commands forwarded from here are answered."""
        queues = self.rooms.relay.queues
        while True:
            if not self.forwarder.pending and all(q.pending == 0 and q.in_flight is None and not q.open_streams()
                                                  for q in queues.values()):
                return
            await asyncio.sleep(0.02)
