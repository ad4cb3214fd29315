"""The life of a room: minting, recovery after a crash, and always leaving.

A2E charges a room's whole ``expire_seconds`` when it is minted and refunds only on ``leave``, so
every path out of a room ends in :meth:`RoomLifecycle.close`, which leaves A2E and retries until A2E
confirms. Rooms are written to the store before their token is handed out, so a crash at any
moment leaves a record that :meth:`RoomLifecycle.recover` reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bridge import frames, logs, metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError
from bridge.errors import BridgeError, RoomNotOpen, from_a2e
from bridge.settings import Settings

from .avatars import AvatarCatalogue
from .caps import SpendCaps, check_browser_qa_context, check_qa_context
from .events import Event, RoomEvents
from .leaving import leave_upstream, reason_of
from .models import CloseReason, Room, RoomState
from .registry import Clock, LiveRoom, RoomRegistry
from .store import RoomStore

log = logging.getLogger("bridge.rooms")


def _epoch_seconds(value: Any, fallback: float) -> float:
    """A2E's ``expire_epoch_timestamp``, whose unit (s or ms) is undocumented."""
    if isinstance(value, (int, float)) and value > 0:
        return value / 1000 if value > 1e12 else float(value)
    return fallback


class RoomLifecycle:
    """Opens, recovers and closes the rooms of this process.

    ``on_open`` hooks run for every room that opens (or is resumed): the relay gives it its
    command queue, the observers start watching its channel; ``on_closing`` hooks run when it starts
    closing: the relay fails its pending commands; ``on_closed`` hooks once A2E confirmed the leave
    (or gave up on it) and the room is closed: the usage ledger, webhooks. They are wired once, by the app.
    """

    def __init__(self, settings: Settings, a2e: A2EClient, store: RoomStore, registry: RoomRegistry, *,
                 clock: Clock) -> None:
        self.settings = settings
        self.a2e = a2e
        self.store = store
        self.registry = registry
        self.clock = clock
        self.caps = SpendCaps(settings, store, a2e, clock=clock)
        self.avatars = AvatarCatalogue(a2e)
        self.on_open: list[Callable[[LiveRoom], None]] = []
        self.on_closing: list[Callable[[LiveRoom, BridgeError], Awaitable[None]]] = []
        # called as the room turns closed; each enqueues its record at once and returns its completion
        self.on_closed: list[Callable[[LiveRoom], Awaitable[None] | None]] = []
        # many instances: take the new room's lease before its record is written (bridge/cluster)
        self.claim: Callable[[Room], Awaitable[None]] | None = None
        self.tap: Callable[[str, Event], None] | None = None  # given (room id, event) for every room here
        self._background: set[asyncio.Task[Any]] = set()  # fire-and-forget closes, kept from the GC

    # -- life of the process -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self, *, recover: bool = True) -> AsyncIterator[None]:
        """Recover what the last process left (not with many instances: their ownership scan adopts
        rooms, see bridge/cluster); on the way out, leave every room (still held)."""
        if recover:
            await self.recover()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Leave every open room, within ``BRIDGE_SHUTDOWN_TIMEOUT`` seconds."""
        tasks = [self.close(lr, CloseReason.SHUTDOWN) for lr in list(self.registry.live.values())]
        if tasks:
            log.info("shutting down: leaving %d room(s)", len(tasks))
            done, pending = await asyncio.wait([asyncio.ensure_future(t) for t in tasks],
                                               timeout=self.settings.shutdown_timeout)
            if pending:
                log.warning("%d room(s) not confirmed left before the shutdown deadline; "
                            "they stay 'closing' in the store and are left at next start", len(pending))
        for lr in list(self.registry.live.values()):
            for task in [lr.leave_task, *lr.tasks]:
                if task and not task.done():
                    task.cancel()

    async def recover(self) -> None:
        """Reconcile what the store says was live when the last process ended."""
        for room in await self.store.list_live():
            await self.adopt(room)

    async def adopt(self, room: Room, *, first_event_id: int = 1) -> LiveRoom | None:
        """Take charge of a room left live by a process that ended (this one's last run, or another
        instance that died): resume it (open, not near its expiry) or leave it. The live room, if
        resumed; ``first_event_id`` continues the room's event ids."""
        now = self.clock()
        lr = LiveRoom(room, self._new_events(room.id, first_event_id))
        if not room.channel:
            # Crashed between writing the record and A2E's answer: no channel to leave.
            room.error = "bridge stopped while minting; A2E channel unknown"
            if room.state is RoomState.CREATING:
                room.transition(RoomState.FAILED, reason=CloseReason.RECOVERY, now=now)
            else:  # closing before the mint answered (CLOSING -> FAILED is not a transition)
                room.transition(RoomState.CLOSED, reason=CloseReason.RECOVERY, now=now)
            await self.store.put(room)
            log.warning("room %s was being minted when the bridge stopped; marked %s", room.id,
                        room.state.value, extra=room.log_fields())
            return None
        self.registry.add(lr)
        if room.state is RoomState.CREATING:
            room.transition(RoomState.OPEN, now=now)
        expires = room.expires_at or room.reserved_until
        if room.state is RoomState.OPEN and expires - self.settings.leave_before_expiry > now:
            room.last_activity = now
            await self._save(lr)
            self._activate(lr)
            log.info("resumed room %s (channel %s)", room.id, room.channel, extra=room.log_fields())
            return lr
        log.info("leaving room %s left over from the last run (%s)", room.id, room.state.value,
                 extra=room.log_fields())
        await self.close(lr, CloseReason.RECOVERY, wait=False)
        return None

    async def release(self, lr: LiveRoom, refusal: BridgeError) -> None:
        """Stop this process's work for a room another instance owns from now on (bridge/cluster: a
        lost lease, a hand-over): nothing is left at A2E; pending commands fail with ``refusal``,
        clients are told to reconnect (the room ``moved``)."""
        lr.moved = True
        for closing in self.on_closing:
            await closing(lr, refusal)
        for task in [lr.leave_task, *lr.tasks]:
            if task is not None:
                task.cancel()
        self.registry.forget(lr)

    # -- rooms ---------------------------------------------------------------------------------
    async def create(self, tenant: str, *, avatar_id: str | None, expire_seconds: int | None,
                     qa_context: str | None, browser_key: str | None = None,
                     brain: str | None = None) -> LiveRoom:
        """Open a room for ``tenant`` (``browser_key``: the id of the browser key asking, whose own
        caps apply too)."""
        s = self.settings
        expire = self.caps.room_lifetime(tenant, expire_seconds, browser_key=browser_key)
        if qa_context is not None:
            check_qa_context(qa_context)
            if browser_key is not None:
                check_browser_qa_context(s, tenant, qa_context)
        # Before any A2E call (the avatar lookup, the balance, the mint): a flood costs nothing upstream.
        self.caps.creation_rate.take(tenant)
        if browser_key is not None:
            self.caps.browser_hourly.take(tenant, browser_key)
        if avatar_id:
            await self.avatars.check(avatar_id)  # 404 naming it, before anything is recorded or charged
        avatar = avatar_id or s.default_avatar_id or await self.avatars.first()
        room = Room.new(tenant=tenant, avatar_id=avatar, expire_seconds=expire, now=self.clock(),
                        qa_context=qa_context, opened_by=browser_key, brain=brain)
        if self.claim is not None:
            await self.claim(room)  # its lease before its record: no other instance adopts it meanwhile
        lr = LiveRoom(room, self._new_events(room.id))
        # the caps are checked and the record written as one step (per tenant here, or atomically in a
        # store shared by many instances)
        await self.caps.reservations.reserve(
            room, browser_key=browser_key, live=lambda: [x.room for x in self.registry.of_tenant(tenant)],
            admit=lambda: self.registry.add(lr), write=lambda: self._save(lr))
        logs.bind(**room.log_fields())
        try:
            minted = await self.a2e.agora_token(avatar, expire)
        except A2EError as exc:
            async with lr.lock:
                room.error = str(exc)
                if room.state is RoomState.CREATING:
                    room.transition(RoomState.FAILED, reason=CloseReason.ERROR, now=self.clock())
                else:  # closed while A2E was minting, and nothing was minted: nothing to leave
                    room.transition(RoomState.CLOSED, now=self.clock())
                await self._save_locked(lr)
            self.registry.forget(lr)
            raise from_a2e(exc) from None
        now = self.clock()
        async with lr.lock:
            room.channel = str(minted.get("channel") or "")
            room.app_id = minted.get("appId") or minted.get("app_id")
            room.token = minted.get("token")
            room.uid = int(minted["uid"]) if str(minted.get("uid", "")).isdigit() else minted.get("uid")
            room.expires_at = _epoch_seconds(minted.get("expire_epoch_timestamp"), now + expire)
            logs.bind(channel=room.channel)
            if room.state is RoomState.CREATING:
                room.transition(RoomState.OPEN, now=now)
                room.last_activity = now
            await self._save_locked(lr)  # durable before the token leaves this process
        if room.state is not RoomState.OPEN:
            # Closed (DELETE, shutdown) while A2E was minting: now that the channel is known, leave it.
            await self.close(lr, room.close_reason or CloseReason.CLIENT, wait=False)
            raise RoomNotOpen(f"room {room.id} was closed while it was being opened")
        if qa_context:
            try:
                await self.a2e.set_qa_context(room.channel, qa_context)
            except A2EError as exc:
                await self.close(lr, CloseReason.ERROR, wait=False)
                raise from_a2e(exc) from None
            if room.state is not RoomState.OPEN:  # closed while its QA context was being set
                raise RoomNotOpen(f"room {room.id} was closed while it was being opened")
        self._activate(lr)
        metrics.ROOMS_OPENED.inc()
        log.info("room %s open for tenant %s (channel %s, %ss)", room.id, tenant, room.channel, expire,
                 extra={"expire_seconds": expire, "browser_key": browser_key})
        return lr

    async def close(self, lr: LiveRoom, reason: CloseReason, *, wait: bool = True) -> None:
        """Move a live room to closing, stop its work and leave A2E (waiting up to a few seconds).

        Idempotent: a room already closing or closed is left as it is."""
        room = lr.room
        async with lr.lock:
            if room.state in (RoomState.OPEN, RoomState.CREATING):
                room.transition(RoomState.CLOSING, reason=reason, now=self.clock())
                await self._save_locked(lr)
                lr.events.publish(frames.RoomInfo(room=room.to_public()))
                log.info("closing room %s: %s", room.id, reason.value,
                         extra={**room.log_fields(), "close_reason": reason.value})
            if lr.leave_task is None and room.channel:
                # No channel yet: A2E is still minting; create() leaves the channel once it has it.
                lr.leave_task = asyncio.create_task(self._leave(lr), name=f"leave-{room.id}")
        refusal = RoomNotOpen(f"the room is closing ({(room.close_reason or reason).value})")
        for closing in self.on_closing:
            await closing(lr, refusal)
        for task in lr.tasks:
            task.cancel()
        if wait and lr.leave_task is not None:
            with contextlib.suppress(TimeoutError):  # not wait_for: see bridge/webhooks/deliverer.py
                async with asyncio.timeout(5):
                    await asyncio.shield(lr.leave_task)

    def upstream_gone(self, lr: LiveRoom) -> None:
        """A2E no longer has the room's channel (a hook of the relay): close it, in the background."""
        task = asyncio.create_task(self.close(lr, CloseReason.UPSTREAM_GONE, wait=False))
        self._background.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._background.discard)

    async def _leave(self, lr: LiveRoom) -> None:
        room = lr.room
        logs.start_context(**room.log_fields())  # this task's own context: its A2E calls name the room
        await leave_upstream(self.a2e, room, self.clock)
        async with lr.lock:
            room.transition(RoomState.CLOSED, now=self.clock())
            # enqueued before anything awaits: whoever sees the room closed finds its records too
            recorded = [hook(lr) for hook in self.on_closed]
            await self._save_locked(lr)
        reason = reason_of(room)
        metrics.ROOMS_CLOSED.labels(reason).inc()
        lr.events.publish(frames.RoomClosed(reason=reason, room=room.to_public()))
        self.registry.forget(lr)
        log.info("room %s closed (%s)", room.id, reason,
                 extra={"close_reason": reason, "duration_s": round((room.closed_at or self.clock()) - room.created_at, 3)})
        for done in recorded:
            if done is not None:
                await done  # the writer logs a failed record; it never raises into the room

    # -- helpers -------------------------------------------------------------------------------
    def _activate(self, lr: LiveRoom) -> None:
        lr.events.publish(frames.RoomInfo(room=lr.room.to_public()))
        # The tasks the hooks start (command worker, observer) log under the room, not the request
        # that happened to open it.
        token = logs.start_context(**lr.room.log_fields())
        try:
            for hook in self.on_open:
                hook(lr)
        finally:
            logs.reset(token)

    def _new_events(self, room_id: str, first_id: int = 1) -> RoomEvents:
        events = RoomEvents(history=self.settings.event_buffer, subscriber_buffer=self.settings.ws_send_buffer,
                            first_id=first_id)
        if self.tap is not None:
            events.tap = functools.partial(self.tap, room_id)
        return events

    async def _save(self, lr: LiveRoom) -> None:
        async with lr.lock:
            await self._save_locked(lr)

    async def _save_locked(self, lr: LiveRoom) -> None:
        await self.store.put(lr.room)
