"""The bridge on the Redis store (BRIDGE_REDIS_URL): rooms and caps shared by two bridges on one
Redis, a Redis outage seen as 503 with nothing lost, and a bridge killed with rooms open whose rooms
the next bridge on the same Redis gives back or resumes (no BRIDGE_DB anywhere)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bridge.rooms.caps import day_start
from bridge.store import RedisRoomStore
from tests.helpers import Child, RedisServer, assert_error, create_room, create_room_sync, free_port, poll, poll_sync, wait_http

pytestmark = pytest.mark.in_process

ACME = {"Authorization": "Bearer k1"}
KEYS = {"k1": "acme"}


async def read_store(url: str) -> RedisRoomStore:
    store = RedisRoomStore(url)
    await store.open()
    return store


async def closed_in(store: RedisRoomStore, room_id: str) -> bool:
    room = await store.get(room_id)
    return room is not None and room.state.value == "closed"


async def test_two_bridges_share_rooms_and_the_tenant_cap(bridge_factory, redis_url, tmp_path):
    # no usable BRIDGE_DB: with BRIDGE_REDIS_URL set, the bridges must not need one
    one, two = [await bridge_factory(api_keys=KEYS, redis_url=redis_url, max_rooms_per_tenant=2,
                                     db=str(tmp_path / "missing" / "x" / "never.db")) for _ in range(2)]
    store = await read_store(redis_url)
    try:
        first = await create_room(one, ACME)
        assert (await store.get(first["id"])).state.value == "open"
        for round_ in range(4):  # the last slot, taken by both bridges at once: exactly one wins
            racing = await asyncio.gather(one.http.post("/v1/rooms", json={}, headers=ACME),
                                          two.http.post("/v1/rooms", json={}, headers=ACME))
            statuses = sorted(r.status_code for r in racing)
            assert statuses == [201, 429], (round_, [r.text for r in racing])
            loser = next(r for r in racing if r.status_code == 429)
            assert assert_error(loser, 429, "cap_exceeded")["details"]["cap"] == "concurrent_rooms"
            winner, bridge = next((r.json(), b) for r, b in zip(racing, (one, two)) if r.status_code == 201)
            assert len(await store.list_rooms(tenant="acme", states=["creating", "open", "closing"])) == 2
            closed = await bridge.http.delete(f"/v1/rooms/{winner['id']}", headers=ACME)
            assert closed.status_code == 200, closed.text
            await poll(lambda rid=winner["id"]: closed_in(store, rid), what="room closed")
        # the day's counter behind the room-minutes cap agrees with the rooms' usage once they are closed
        await one.http.delete(f"/v1/rooms/{first['id']}", headers=ACME)
        await poll(lambda: closed_in(store, first["id"]), what="room closed")
        used = await store.usage_seconds("acme", day_start())
        assert 0 < used < 60 and await store.reserved_seconds("acme", day_start()) == pytest.approx(used, abs=0.01)
        assert not (tmp_path / "missing").exists()  # BRIDGE_DB was never opened
    finally:
        await store.close()


async def test_a_browser_keys_rooms_cap_holds_across_bridges(bridge_factory, redis_url):
    """BRIDGE_BROWSER_KEY_MAX_ROOMS counts the key's rooms on every bridge of the fleet, not per process."""
    shop = "https://shop.example"
    pk = {"Authorization": "Bearer pk_acme_one", "Origin": shop}
    one, two = [await bridge_factory(api_keys=KEYS, browser_keys={"pk_acme_one": "acme"}, allowed_origins=[shop],
                                     browser_key_max_rooms=1, redis_url=redis_url) for _ in range(2)]
    first = await create_room(one, pk)
    refused = await two.http.post("/v1/rooms", json={}, headers=pk)
    assert assert_error(refused, 429, "cap_exceeded")["details"]["cap"] == "browser_key_rooms"
    assert (await two.http.post("/v1/rooms", json={}, headers=ACME)).status_code == 201  # the tenant's own key
    assert (await one.http.delete(f"/v1/rooms/{first['id']}", headers=pk)).status_code == 200
    assert (await two.http.post("/v1/rooms", json={}, headers=pk)).status_code == 201  # its slot back


async def test_redis_down_refuses_new_rooms_and_comes_back(bridge_factory, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        bridge = await bridge_factory(api_keys=KEYS, redis_url=server.url)
        before = await create_room(bridge, ACME)
        assert (await bridge.http.get("/readyz")).status_code == 200
        server.kill()
        ready = await bridge.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["store"] is False
        refused = await bridge.http.post("/v1/rooms", json={}, headers=ACME)
        assert_error(refused, 503, "store_unavailable")
        assert refused.headers["retry-after"] == "1"
        server.start()  # empty: a restart without persistence
        # ready once the store answers and the cluster's inbox and subscriptions read Redis again
        async def ready() -> bool:
            answer = await bridge.http.get("/readyz")
            return answer.status_code == 200 and answer.json()["checks"]["cluster"] is True
        await poll(ready, what="ready again")
        after = await create_room(bridge, ACME)
        assert after["id"] != before["id"]
    finally:
        server.stop()


# -- real processes ---------------------------------------------------------------------------------
@pytest.fixture
def children(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(*args: str, env: dict[str, str]) -> Child:
        child = Child(*args, env=env, cwd=tmp_path)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


def serve(children: Callable[..., Child], sim_url: str, redis_url: str, db: Path) -> tuple[Child, str]:
    port = free_port()
    child = children("serve", "--port", str(port), env={
        "BRIDGE_REDIS_URL": redis_url, "BRIDGE_DB": str(db), "A2E_API_KEY": "x",
        "A2E_BASE_URL": sim_url, "BRIDGE_API_KEYS": "acme:k1", "BRIDGE_EVENT_SOURCE": "none",
        "BRIDGE_SWEEP_INTERVAL": "0.2", "BRIDGE_LEAVE_BEFORE_EXPIRY": "10", "BRIDGE_SHUTDOWN_TIMEOUT": "2"})
    url = f"http://127.0.0.1:{port}"
    child.wait_answering(url + "/healthz")
    return child, url


@pytest.mark.real_server
def test_kill_9_then_the_next_bridge_on_the_same_redis_accounts_for_every_room(children, redis_url, tmp_path):
    db = tmp_path / "unused" / "bridge.db"  # set, but with BRIDGE_REDIS_URL never opened
    sim_port = free_port()
    children("simulate", "--port", str(sim_port), env={"BRIDGE_LOG_LEVEL": "WARNING"})
    sim_url = f"http://127.0.0.1:{sim_port}"
    wait_http(sim_url + "/_sim/health")
    upstream = lambda: {r["channel"]: r["status"] for r in httpx.get(sim_url + "/_sim/state").json()["rooms"]}  # noqa: E731

    first, url = serve(children, sim_url, redis_url, db)
    kept = [create_room_sync(url, ACME, expire_seconds=600) for _ in range(2)]
    short = create_room_sync(url, ACME, expire_seconds=11)  # within BRIDGE_LEAVE_BEFORE_EXPIRY at the next start
    ended = create_room_sync(url, ACME, expire_seconds=600)
    assert httpx.delete(f"{url}/v1/rooms/{ended['id']}", headers=ACME, timeout=10).status_code == 200
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert {upstream()[r["channel"]] for r in [*kept, short]} == {"open"}  # the crash left them at A2E

    second, url = serve(children, sim_url, redis_url, db)

    def open_rooms() -> set[str]:
        live = httpx.get(url + "/v1/rooms", params={"state": "live"}, headers=ACME, timeout=5).json()["rooms"]
        return {r["id"] for r in live if r["state"] == "open"}

    # adopted once the dead bridge's leases ran out (BRIDGE_LEASE_SECONDS, 5 s): it could have been alive
    poll_sync(lambda: open_rooms() == {r["id"] for r in kept}, timeout=15, what=f"the rooms adopted\n{second.output}")
    spoke = httpx.post(f"{url}/v1/rooms/{kept[0]['id']}/speak", json={"text": "After the crash."}, headers=ACME,
                       timeout=10)
    assert spoke.status_code == 200, spoke.text
    poll_sync(lambda: upstream()[short["channel"]] == "left", what="the room near its end left at start")
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait(20) == 0, second.output
    assert set(upstream().values()) == {"left"} and len(upstream()) == 4  # nothing left open, nothing re-minted
    assert not db.parent.exists()
