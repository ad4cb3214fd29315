"""The room manager: minting, commands, and always leaving.

A2E charges a room's whole ``expire_seconds`` when it is minted and refunds only on ``leave``, so
every path out of a room ends in :meth:`RoomManager.close`, which leaves A2E and retries until A2E
confirms. Rooms are written to the store before their token is handed out, so a crash at any
moment leaves a record that :meth:`RoomManager.start` reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from bridge import frames, metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import QA_CONTEXT_LIMIT
from bridge.a2e.errors import A2EError, A2ENotFound
from bridge.errors import (
    BadRequest,
    BridgeError,
    NotFound,
    RoomNotOpen,
    ValidationFailed,
    from_a2e,
)
from bridge.rtc.events import Reply, RoomEvent, SpeakingStarted
from bridge.rtc.reassembler import Reassembler
from bridge.rtc.wire import frame_to_event
from bridge.settings import Settings

from .caps import SpendCaps
from .events import RoomEvents
from .models import CloseReason, Room, RoomState
from .relay import Command, CommandKind, CommandQueue
from .store import RoomStore
from .text import split_sentences

log = logging.getLogger("bridge.rooms")

PURGE_INTERVAL = 3600  # seconds between purges of old room records
CHUNK_CHARS = 500  # longest text sent to A2E in one speak; longer text is split at sentences


@dataclass(eq=False)
class LiveRoom:
    """What the bridge holds in memory for a room A2E may be charging for."""

    room: Room
    events: RoomEvents
    queue: CommandQueue | None = None
    clients: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reassembler: Reassembler = field(default_factory=Reassembler)
    leave_task: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def room_frame(event: RoomEvent) -> frames.ServerFrame:
    """The frame clients get for what the reassembler made of the channel's events."""
    if isinstance(event, Reply):
        return frames.Reply(text=event.text, final=event.final, reply_id=event.reply_id)
    return frames.SpeakingStarted() if isinstance(event, SpeakingStarted) else frames.SpeakingStopped()


def _epoch_seconds(value: Any, fallback: float) -> float:
    """A2E's ``expire_epoch_timestamp``, whose unit (s or ms) is undocumented."""
    if isinstance(value, (int, float)) and value > 0:
        return value / 1000 if value > 1e12 else float(value)
    return fallback


class RoomManager:
    """Owns every live room of this process."""

    def __init__(self, settings: Settings, a2e: A2EClient, store: RoomStore, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.a2e = a2e
        self.store = store
        self.clock = clock
        self.caps = SpendCaps(settings, store, a2e)
        self.live: dict[str, LiveRoom] = {}
        self._tenant_locks: dict[str, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()  # fire-and-forget closes, kept from the GC
        self.room_hooks: list[Callable[[LiveRoom], Any]] = []  # called when a room opens (event sources)
        metrics.ROOMS_LIVE.set_function(lambda: len(self.live))

    # -- life of the manager -----------------------------------------------------------------
    async def start(self) -> None:
        await self.recover()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="room-sweeper")

    async def stop(self) -> None:
        """Leave every open room, within ``BRIDGE_SHUTDOWN_TIMEOUT`` seconds."""
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = [self.close_live(lr, CloseReason.SHUTDOWN) for lr in list(self.live.values())]
        if tasks:
            log.info("shutting down: leaving %d room(s)", len(tasks))
            done, pending = await asyncio.wait([asyncio.ensure_future(t) for t in tasks],
                                               timeout=self.settings.shutdown_timeout)
            if pending:
                log.warning("%d room(s) not confirmed left before the shutdown deadline; "
                            "they stay 'closing' in the store and are left at next start", len(pending))
        for lr in list(self.live.values()):
            for task in [lr.leave_task, *lr.tasks]:
                if task and not task.done():
                    task.cancel()

    async def recover(self) -> None:
        """Reconcile what the store says was live when the last process ended."""
        now = self.clock()
        for room in await self.store.list_live():
            lr = LiveRoom(room, self._new_events())
            if not room.channel:
                # Crashed between writing the record and A2E's answer: no channel to leave.
                room.error = "bridge stopped while minting; A2E channel unknown"
                if room.state is RoomState.CREATING:
                    room.transition(RoomState.FAILED, reason=CloseReason.RECOVERY, now=now)
                else:  # closing before the mint answered (CLOSING -> FAILED is not a transition)
                    room.transition(RoomState.CLOSED, reason=CloseReason.RECOVERY, now=now)
                await self.store.put(room)
                log.warning("room %s was being minted when the bridge stopped; marked %s", room.id,
                            room.state.value)
                continue
            self.live[room.id] = lr
            if room.state is RoomState.CREATING:
                room.transition(RoomState.OPEN, now=now)
            expires = room.expires_at or room.reserved_until
            if room.state is RoomState.OPEN and expires - self.settings.leave_before_expiry > now:
                room.last_activity = now
                await self._save(lr)
                self._activate(lr)
                log.info("resumed room %s (channel %s)", room.id, room.channel)
            else:
                log.info("leaving room %s left over from the last run (%s)", room.id, room.state.value)
                await self.close_live(lr, CloseReason.RECOVERY, wait=False)

    # -- rooms ---------------------------------------------------------------------------------
    async def create(self, tenant: str, *, avatar_id: str | None, expire_seconds: int | None,
                     qa_context: str | None) -> LiveRoom:
        s = self.settings
        expire = self.caps.room_lifetime(tenant, expire_seconds)
        if qa_context is not None:
            self._check_qa(qa_context)
        avatar = avatar_id or s.default_avatar_id or await self._first_avatar()
        lock = self._tenant_locks.setdefault(tenant, asyncio.Lock())
        async with lock:  # caps are checked and the record written as one step per tenant
            live = sum(1 for lr in self.live.values() if lr.room.tenant == tenant)
            await self.caps.check(tenant, expire, live_rooms=live)
            room = Room.new(tenant=tenant, avatar_id=avatar, expire_seconds=expire, now=self.clock(),
                            qa_context=qa_context)
            lr = LiveRoom(room, self._new_events())
            self.live[room.id] = lr
            await self._save(lr)
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
            self._forget(lr)
            raise from_a2e(exc) from None
        now = self.clock()
        async with lr.lock:
            room.channel = str(minted.get("channel") or "")
            room.app_id = minted.get("appId") or minted.get("app_id")
            room.token = minted.get("token")
            room.uid = int(minted["uid"]) if str(minted.get("uid", "")).isdigit() else minted.get("uid")
            room.expires_at = _epoch_seconds(minted.get("expire_epoch_timestamp"), now + expire)
            if room.state is RoomState.CREATING:
                room.transition(RoomState.OPEN, now=now)
                room.last_activity = now
            await self._save_locked(lr)  # durable before the token leaves this process
        if room.state is not RoomState.OPEN:
            # Closed (DELETE, shutdown) while A2E was minting: now that the channel is known, leave it.
            await self.close_live(lr, room.close_reason or CloseReason.CLIENT, wait=False)
            raise RoomNotOpen(f"room {room.id} was closed while it was being opened")
        if qa_context:
            try:
                await self.a2e.set_qa_context(room.channel, qa_context)
            except A2EError as exc:
                await self.close_live(lr, CloseReason.ERROR, wait=False)
                raise from_a2e(exc) from None
            if room.state is not RoomState.OPEN:  # closed while its QA context was being set
                raise RoomNotOpen(f"room {room.id} was closed while it was being opened")
        self._activate(lr)
        metrics.ROOMS_OPENED.inc()
        log.info("room %s open for tenant %s (channel %s, %ss)", room.id, tenant, room.channel, expire)
        return lr

    def get(self, tenant: str, room_id: str) -> LiveRoom:
        lr = self.live.get(room_id)
        if lr is None or lr.room.tenant != tenant:
            raise NotFound(f"no live room {room_id}")
        return lr

    async def find(self, tenant: str, room_id: str) -> Room:
        """A room of ``tenant`` in any state (live ones from memory, the rest from the store)."""
        lr = self.live.get(room_id)
        room = lr.room if lr else await self.store.get(room_id)
        if room is None or room.tenant != tenant:
            raise NotFound(f"no room {room_id}")
        return room

    async def list_rooms(self, tenant: str, *, live_only: bool = False) -> list[Room]:
        if live_only:
            rooms = [lr.room for lr in self.live.values() if lr.room.tenant == tenant]
            return sorted(rooms, key=lambda r: r.created_at, reverse=True)
        stored = await self.store.list_rooms(tenant=tenant)
        return [self.live[r.id].room if r.id in self.live else r for r in stored]

    async def close(self, tenant: str, room_id: str, reason: CloseReason = CloseReason.CLIENT) -> Room:
        """Leave a room; idempotent (a closed room is returned as it is)."""
        lr = self.live.get(room_id)
        if lr is None or lr.room.tenant != tenant:
            return await self.find(tenant, room_id)
        await self.close_live(lr, reason)
        return lr.room

    async def close_live(self, lr: LiveRoom, reason: CloseReason, *, wait: bool = True) -> None:
        """Move a live room to closing, stop its work and leave A2E (waiting up to a few seconds)."""
        room = lr.room
        async with lr.lock:
            if room.state in (RoomState.OPEN, RoomState.CREATING):
                room.transition(RoomState.CLOSING, reason=reason, now=self.clock())
                await self._save_locked(lr)
                lr.events.publish(frames.RoomInfo(room=room.to_public()))
                log.info("closing room %s: %s", room.id, reason.value)
            if lr.leave_task is None and room.channel:
                # No channel yet: A2E is still minting; create() leaves the channel once it has it.
                lr.leave_task = asyncio.create_task(self._leave(lr), name=f"leave-{room.id}")
        if lr.queue is not None:
            await lr.queue.close(RoomNotOpen(f"the room is closing ({room.close_reason.value})"))
        for task in lr.tasks:
            task.cancel()
        if wait and lr.leave_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(lr.leave_task), timeout=5)

    async def _leave(self, lr: LiveRoom) -> None:
        room = lr.room
        deadline = (room.expires_at or room.reserved_until) + 60
        try:
            async for attempt in AsyncRetrying(
                wait=wait_random_exponential(multiplier=0.2, max=15),
                retry=retry_if_exception_type(A2EError),
                stop=lambda state: self.clock() > deadline,
                reraise=True,
            ):
                with attempt:
                    try:
                        await self.a2e.leave(room.channel or "")
                    except A2ENotFound:
                        pass  # A2E no longer knows the channel: nothing is being charged
        except A2EError as exc:
            room.error = f"leave never confirmed, room has expired upstream: {exc}"
            metrics.LEAVES_UNCONFIRMED.inc()
            log.error("room %s: %s", room.id, room.error)
        async with lr.lock:
            room.transition(RoomState.CLOSED, now=self.clock())
            await self._save_locked(lr)
        reason = room.close_reason.value if room.close_reason else "client"
        metrics.ROOMS_CLOSED.labels(reason).inc()
        lr.events.publish(frames.RoomClosed(reason=reason, room=room.to_public()))
        self._forget(lr)
        log.info("room %s closed (%s)", room.id, reason)

    def _forget(self, lr: LiveRoom) -> None:
        """The room has ended (closed or failed): end its event stream and drop it from memory."""
        lr.events.end()
        self.live.pop(lr.room.id, None)

    # -- QA context and commands ---------------------------------------------------------------
    def _check_qa(self, text: Any) -> None:
        if not isinstance(text, str):
            raise ValidationFailed("qa_context must be a string")
        if len(text) > QA_CONTEXT_LIMIT:
            raise ValidationFailed(f"QA context is {len(text)} characters; A2E accepts at most {QA_CONTEXT_LIMIT}",
                                   details={"limit": QA_CONTEXT_LIMIT, "length": len(text)})

    async def set_qa_context(self, tenant: str, room_id: str, text: str) -> Room:
        self._check_qa(text)
        lr = await self.open_room(tenant, room_id)
        try:
            await self.a2e.set_qa_context(lr.room.channel or "", text)
        except A2EError as exc:
            raise await self._command_failed(lr, exc) from None
        async with lr.lock:
            lr.room.qa_context = text
            await self._save_locked(lr)
        self.touch(lr)
        return lr.room

    async def submit(self, tenant: str, room_id: str, kind: CommandKind, text: str) -> list[Command]:
        """Queue a command (split into sentences if long); the caller awaits the futures."""
        lr = await self.open_room(tenant, room_id)
        if not isinstance(text, str) or not text.strip():
            raise ValidationFailed("text must be a non-empty string")
        if len(text) > self.settings.max_text_chars:
            raise ValidationFailed(f"text is {len(text)} characters; at most {self.settings.max_text_chars}",
                                   details={"limit": self.settings.max_text_chars})
        if kind == "ask" and len(text) > CHUNK_CHARS:
            raise ValidationFailed(f"a question may be at most {CHUNK_CHARS} characters")
        chunks = split_sentences(text, CHUNK_CHARS) if kind == "speak" else [text.strip()]
        assert lr.queue is not None
        commands = lr.queue.submit(kind, chunks)
        self.touch(lr)
        return commands

    def flush(self, tenant: str, room_id: str) -> int:
        lr = self._open(tenant, room_id)
        self.touch(lr)
        return lr.queue.flush() if lr.queue else 0

    async def _send(self, lr: LiveRoom, command: Command) -> None:
        """The queue's worker: one command to A2E."""
        call = self.a2e.speak if command.kind == "speak" else self.a2e.ask
        try:
            await call(lr.room.channel or "", command.text)
        except A2EError as exc:
            metrics.COMMANDS.labels(command.kind, type(exc).__name__).inc()
            raise await self._command_failed(lr, exc) from None
        metrics.COMMANDS.labels(command.kind, "ok").inc()
        self.touch(lr)
        lr.events.publish(frames.Command(kind=command.kind, seq=command.seq, text=command.text))

    async def _command_failed(self, lr: LiveRoom, exc: A2EError) -> BridgeError:
        if isinstance(exc, A2ENotFound):
            # A2E no longer has the channel: the room is over upstream.
            task = asyncio.create_task(self.close_live(lr, CloseReason.UPSTREAM_GONE, wait=False))
            self._background.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._background.discard)
            return RoomNotOpen("the avatar room ended upstream", details={"a2e_code": exc.code})
        return from_a2e(exc)

    def _open(self, tenant: str, room_id: str) -> LiveRoom:
        """The open live room, from memory only (a room that ended is not live: NotFound)."""
        lr = self.live.get(room_id)
        if lr is None or lr.room.tenant != tenant:
            raise NotFound(f"no room {room_id}")
        if lr.room.state is not RoomState.OPEN:
            raise RoomNotOpen(f"room {room_id} is {lr.room.state.value}")
        return lr

    async def open_room(self, tenant: str, room_id: str) -> LiveRoom:
        """Like ``_open``, but a room of ``tenant`` that has ended is RoomNotOpen (409), not NotFound."""
        try:
            return self._open(tenant, room_id)
        except NotFound:
            room = await self.store.get(room_id)
            if room is not None and room.tenant == tenant:
                raise RoomNotOpen(f"room {room_id} is {room.state.value}") from None
            raise

    # -- channel events ----------------------------------------------------------------------
    def deliver_channel_event(self, lr: LiveRoom, event: Any, source: Any) -> None:
        """Raw channel events (from an observer or a forwarding client) become room events."""
        for room_event in lr.reassembler.feed(event, source=source):
            lr.events.publish(room_frame(room_event))

    def forward_rtc_event(self, lr: LiveRoom, frame: dict[str, Any], *, source: Any) -> None:
        """A raw channel event forwarded by a client (a kiosk's Agora Web SDK)."""
        event = frame_to_event(frame)
        if event is None:
            raise BadRequest("rtc_event.event must be {kind: stream_message|audio_started|audio_stopped, uid, "
                             "data_b64?}")
        self.deliver_channel_event(lr, event, source)

    # -- activity, idle and expiry -----------------------------------------------------------
    def touch(self, lr: LiveRoom) -> None:
        lr.room.last_activity = self.clock()

    def attach(self, lr: LiveRoom) -> None:
        lr.clients += 1
        self.touch(lr)

    def detach(self, lr: LiveRoom) -> None:
        lr.clients = max(0, lr.clients - 1)
        self.touch(lr)

    async def sweep(self) -> None:
        """Close rooms that are idle or near expiry; one pass."""
        now = self.clock()
        for lr in list(self.live.values()):
            room = lr.room
            if room.state is not RoomState.OPEN:
                continue
            for room_event in lr.reassembler.expire():
                lr.events.publish(room_frame(room_event))
            expires = room.expires_at or room.reserved_until
            if now >= expires - self.settings.leave_before_expiry:
                await self.close_live(lr, CloseReason.EXPIRY, wait=False)
            elif lr.clients == 0 and now - room.last_activity >= self.settings.idle_timeout:
                await self.close_live(lr, CloseReason.IDLE, wait=False)

    async def purge(self, now: float | None = None) -> int:
        """Forget ended rooms older than ``BRIDGE_RETENTION_DAYS`` so the registry stays small."""
        now = self.clock() if now is None else now
        removed = await self.store.delete_closed_before(now - self.settings.retention_days * 86_400)
        if removed:
            log.info("purged %d ended room record(s) older than %g days", removed, self.settings.retention_days)
        return removed

    async def _sweep_forever(self) -> None:
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

    # -- helpers -------------------------------------------------------------------------------
    def _activate(self, lr: LiveRoom) -> None:
        lr.queue = CommandQueue(self.settings.queue_size, lambda c: self._send(lr, c))
        lr.events.publish(frames.RoomInfo(room=lr.room.to_public()))
        for hook in self.room_hooks:
            hook(lr)

    def _new_events(self) -> RoomEvents:
        return RoomEvents(history=self.settings.event_buffer, subscriber_buffer=self.settings.ws_send_buffer)

    async def _save(self, lr: LiveRoom) -> None:
        async with lr.lock:
            await self._save_locked(lr)

    async def _save_locked(self, lr: LiveRoom) -> None:
        await self.store.put(lr.room)

    async def _first_avatar(self) -> str:
        try:
            avatars = await self.a2e.streaming_avatars()
        except A2EError as exc:
            raise from_a2e(exc) from None
        if not avatars:
            raise ValidationFailed("avatar_id is required: A2E lists no streaming avatars")
        return str(avatars[0]["_id"])
