"""Redis trouble under many instances: not ready and no new rooms while it is down, owners keep their
rooms working, and after a restart that lost everything the owners register their rooms again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from bridge.cluster import keys
from bridge.cluster.inbox import Inbox
from tests.cluster.test_forwarding import open_room_ws
from tests.helpers import ACME, Fleet, RedisServer, create_room_sync, poll, poll_sync, recv, send


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def speak_on(fleet: Fleet, name: str, room_id: str, text: str) -> dict[str, object]:
    """A speak over a websocket of instance ``name``: its ack (or error) frame."""
    async with await open_room_ws(fleet, name, room_id) as ws:
        await send(ws, {"type": "speak", "id": "s", "text": text})
        while True:
            frame = await recv(ws, timeout=10)
            if frame.get("id") == "s" and frame["type"] in ("ack", "error"):
                return frame


def test_an_outage_and_a_restart_without_persistence(tmp_path: Path, own_redis: RedisServer) -> None:
    fleet = Fleet(tmp_path, own_redis.url, lease=1.0)
    try:
        fleet.start("a", "b")
        room = create_room_sync(fleet.urls["a"], ACME)
        assert asyncio.run(speak_on(fleet, "b", room["id"], "Before."))["type"] == "ack"

        own_redis.kill()
        for name in ("a", "b"):
            assert httpx.get(f"{fleet.urls[name]}/readyz", timeout=10).status_code == 503
        refused = httpx.post(f"{fleet.urls['b']}/v1/rooms", json={}, headers=ACME, timeout=10)
        assert refused.status_code == 503, refused.text
        # the owner keeps its room working: a client connected to it is answered by A2E
        assert asyncio.run(speak_on(fleet, "a", room["id"], "During."))["type"] == "ack"

        own_redis.start()  # empty: the restart lost every key
        client = redis.Redis.from_url(own_redis.url, decode_responses=True)
        try:
            poll_sync(lambda: client.get(f"a2eb:lease:{room['id']}") == "a"
                      and client.exists(f"a2eb:room:{room['id']}"), timeout=10,
                      what=f"the owner registering its room again\n{fleet.logs()}")
        finally:
            client.close()
        for name in ("a", "b"):
            poll_sync(lambda n=name: httpx.get(f"{fleet.urls[n]}/readyz", timeout=10).status_code == 200,
                      timeout=10, what=f"{name} ready again")
        # every instance serves the room again (b forwards to a), and nothing was left or minted
        assert asyncio.run(speak_on(fleet, "b", room["id"], "After."))["type"] == "ack"
        assert fleet.open_channels() == {room["channel"]} and len(fleet.sim_state()["rooms"]) == 1
        assert fleet.said(room["channel"]) == ["Before.", "During.", "After."]
    finally:
        fleet.stop()


async def test_commands_forwarded_as_redis_comes_back_are_not_lost(own_redis: RedisServer) -> None:
    """After a restart that lost everything, a peer may forward a command before this instance's
    inbox reads again: the inbox goes on from where it was and finds it (it once started over from
    an emptied inbox, deleting it)."""
    client = AsyncRedis.from_url(own_redis.url, decode_responses=True)
    inbox = Inbox(client, None, None, None, "me")  # type: ignore[arg-type]  # only its reading runs here
    done: list[str] = []

    async def execute(fields: dict[str, Any]) -> None:
        done.append(fields["op"])

    inbox.execute = execute  # type: ignore[method-assign]
    async def reading_inbox() -> bool:  # blocked in its XREAD (past its start's cleanup)
        return any(c.get("cmd") == "xread" for c in await client.client_list())

    reading = asyncio.create_task(inbox.run())
    try:
        await poll(reading_inbox, what="the inbox reading")
        await client.xadd(keys.inbox("me"), {"op": "before"})
        await poll(lambda: done == ["before"], what="the command before the outage")
        own_redis.kill()
        await poll(lambda: inbox.outage.down, what="the inbox seeing the outage")
        own_redis.start()  # empty; it blocks this loop until Redis answers: the inbox has not retried yet
        await client.xadd(keys.inbox("me"), {"op": "after"})
        await poll(lambda: done == ["before", "after"], what="the command forwarded as Redis came back")
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await client.aclose()
