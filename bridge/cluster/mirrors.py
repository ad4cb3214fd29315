"""Room events across instances.

The owner hands every event of its rooms (id, type, encoded frame) to the ordered publisher: PUBLISH
on the room's channel, and XADD to the room's bounded event log. An instance with clients of a room
it does not own holds a mirror of it (a :class:`LiveRoom` marked ``mirror``): subscribed to the
room's channel, backfilled from the log when it is made, its events delivered to the local clients
with the owner's ids. A new owner goes on after the log's last id, so ``Last-Event-ID`` resumes on
any instance. The mirror ends with the room (``room_closed``); one nobody uses is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bridge.rooms.events import Event, RoomEvents
from bridge.rooms.models import Room
from bridge.rooms.registry import LiveRoom
from bridge.settings import Settings

from . import keys
from .wire import Listener, Publisher

log = logging.getLogger("bridge.cluster")


class EventsOut:
    """The owner's side: every event of its rooms to the other instances (a tap of the rooms' hubs)."""

    def __init__(self, publisher: Publisher, history: int) -> None:
        self.publisher, self.history = publisher, history

    def __call__(self, room_id: str, event: Event) -> None:
        self.publisher.publish(keys.events(room_id), json.dumps([event.id, event.type, event.data]))
        self.publisher.append(keys.event_log(room_id), {"id": event.id, "type": event.type, "data": event.data},
                              self.history)


class Mirrors:
    """The mirrors of this instance: rooms other instances own, seen here for local clients."""

    def __init__(self, redis: Redis, listener: Listener, settings: Settings) -> None:
        self.redis, self.listener, self.settings = redis, listener, settings
        self.rooms: dict[str, LiveRoom] = {}
        self._unused: set[str] = set()  # seen without clients at the last sweep

    async def of(self, room: Room) -> LiveRoom:
        """The mirror of ``room`` (a live room another instance owns), made on first use (the
        registry's lookup calls this)."""
        lr = self.rooms.get(room.id)
        if lr is not None:
            lr.room = room  # the stored copy just read: the freshest this instance has
            return lr
        events = RoomEvents(history=self.settings.event_buffer, subscriber_buffer=self.settings.ws_send_buffer)
        lr = LiveRoom(room, events, mirror=True)
        self.rooms[room.id] = lr
        early: list[Event] = []
        backfilled = False

        def received(data: str) -> None:
            event = Event(*json.loads(data))
            if not backfilled:
                early.append(event)
            else:
                self._replay(lr, event)

        try:
            await self.listener.subscribe(keys.events(room.id), received)
            logged: Any = await self.redis.xrange(keys.event_log(room.id))
        except RedisError as exc:
            self.listener.outage.failed(exc)
            logged = []
        for _, fields in logged:
            self._replay(lr, Event(int(fields["id"]), str(fields["type"]), str(fields["data"])))
        backfilled = True
        for event in early:
            self._replay(lr, event)
        return lr

    def _replay(self, lr: LiveRoom, event: Event) -> None:
        lr.events.replay(event)
        if event.type == "room_closed":
            self.drop(lr)

    def drop(self, lr: LiveRoom) -> None:
        if self.rooms.get(lr.room.id) is lr:
            del self.rooms[lr.room.id]
            lr.events.end()
            task = asyncio.ensure_future(self.listener.unsubscribe(keys.events(lr.room.id)))
            task.add_done_callback(lambda t: t.exception())

    def sweep(self) -> list[str]:
        """Drop the mirrors nobody used since the last sweep; the ids of those with local clients."""
        used = []
        for room_id, lr in list(self.rooms.items()):
            if lr.clients or lr.events.subscriber_count:
                used.append(room_id)
                self._unused.discard(room_id)
            elif room_id in self._unused:
                self._unused.discard(room_id)
                self.drop(lr)
            else:
                self._unused.add(room_id)
        return used

    def moved_all(self) -> None:
        """This instance stops: its mirrors' clients reconnect elsewhere."""
        for lr in list(self.rooms.values()):
            lr.moved = True
            self.drop(lr)
