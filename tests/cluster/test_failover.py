"""Failover: the owner of rooms dies (kill -9) and the other instances take its rooms over."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis

from tests.helpers import ACME, Fleet, create_room_sync, poll_sync


def owners(client: redis.Redis, room_ids: list[str]) -> list[str | None]:
    return list(client.mget([f"a2eb:lease:{r}" for r in room_ids]))


def test_kill_9_of_the_owner_of_30_rooms(fleet: Fleet, shared_redis: redis.Redis) -> None:
    """Every room is owned again within lease + 1 s, by the instances alive, and still open at
    A2E: resumed, none left and none leaked."""
    fleet.start("a", "b", "c")
    with ThreadPoolExecutor(6) as pool:
        rooms = list(pool.map(lambda _: create_room_sync(fleet.urls["a"], ACME), range(30)))
    ids = [r["id"] for r in rooms]
    assert owners(shared_redis, ids) == ["a"] * 30
    assert fleet.open_channels() == {r["channel"] for r in rooms}

    fleet.kill("a")
    killed = time.monotonic()
    poll_sync(lambda: all(o in ("b", "c") for o in owners(shared_redis, ids)), timeout=10, interval=0.02,
              what=f"every room owned again\n{fleet.logs()}")
    took = time.monotonic() - killed
    assert took <= fleet.lease + 1, f"rooms owned again after {took:.2f}s"

    # resumed, not left or re-minted: A2E holds exactly the rooms the bridge has, each open
    assert fleet.open_channels() == {r["channel"] for r in rooms}
    for room in rooms[:5]:
        got = httpx.get(f"{fleet.urls['b']}/v1/rooms/{room['id']}", headers=ACME, timeout=10)
        assert got.status_code == 200 and got.json()["state"] == "open", got.text
    assert len(fleet.sim_state()["rooms"]) == 30  # nothing minted again

    # the new owners run the rooms: a speak through either survivor, whichever owns the room
    for room, via in zip(rooms[:6], "bcbcbc", strict=True):
        r = httpx.post(f"{fleet.urls[via]}/v1/rooms/{room['id']}/speak", json={"text": "Still here."},
                       headers=ACME, timeout=10)
        assert r.status_code == 200, r.text
