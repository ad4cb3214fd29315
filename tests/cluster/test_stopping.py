"""A stopping instance takes no more rooms and finishes the adoption under way before it leaves or
hands over its rooms: the adopted room is then among them (it was once resumed after the rooms had
been left, its channel watch keeping the shutdown waiting, and its room leaked)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bridge.cluster.ownership import Ownership
from bridge.rooms.models import Room, RoomState
from tests.helpers import poll


class Leases:
    lease = 1.0

    async def take(self, room_id: str) -> bool:
        return True


class Lifecycle:
    """The room lifecycle's side of an adoption, held until ``release`` is set."""

    def __init__(self) -> None:
        self.registry = SimpleNamespace(live={})
        self.rooms = {rid: Room(rid, "acme", "av", 600, 0.0, state=RoomState.OPEN, channel="ch") for rid in ("r1", "r2")}
        self.store = SimpleNamespace(get=self.get)
        self.release = asyncio.Event()
        self.adopted: list[str] = []

    async def get(self, room_id: str) -> Room:
        return self.rooms[room_id]

    async def adopt(self, room: Room, *, first_event_id: int) -> None:
        await self.release.wait()
        self.registry.live[room.id] = room
        self.adopted.append(room.id)


async def first_id(room_id: str) -> int:
    return 1


async def test_stop_adopting_waits_for_the_adoption_under_way_and_refuses_the_next() -> None:
    lifecycle = Lifecycle()
    ownership = Ownership(Leases(), lifecycle, next_event_id=first_id)  # type: ignore[arg-type]
    adopting = asyncio.create_task(ownership.adopt("r1"))
    await poll(lambda: ownership.adopting_now == {"r1"}, what="the adoption under way")
    stopping: asyncio.Task[Any] = asyncio.create_task(ownership.stop_adopting(10.0))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # still waiting for r1
    lifecycle.release.set()
    await asyncio.wait_for(stopping, 5)
    await adopting
    assert lifecycle.adopted == ["r1"] and "r1" in lifecycle.registry.live  # live here before the rooms are left
    await ownership.adopt("r2")  # a scan that took the lease before the stop: it adopts nothing
    assert lifecycle.adopted == ["r1"] and ownership.adopting_now == set()


async def test_stop_adopting_is_bounded() -> None:
    lifecycle = Lifecycle()
    ownership = Ownership(Leases(), lifecycle, next_event_id=first_id)  # type: ignore[arg-type]
    adopting = asyncio.create_task(ownership.adopt("r1"))
    await poll(lambda: ownership.adopting_now == {"r1"}, what="the adoption under way")
    await asyncio.wait_for(ownership.stop_adopting(0.1), 5)  # gives up waiting, does not hang
    lifecycle.release.set()
    await adopting
