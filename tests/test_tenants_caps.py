"""Tenants are isolated by their client keys, and each tenant's spending is capped.

The bridge runs in-process; the test that also opens websockets puts it on a real socket."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from bridge.app import ConfigurationError, create_app
from bridge.settings import Settings
from tests.helpers import add_fault, assert_error, create_room, poll

pytestmark = pytest.mark.in_process

ACME = {"Authorization": "Bearer k1"}
GLOBEX = {"Authorization": "Bearer k2"}
KEYS = {"k1": "acme", "k2": "globex"}


def assert_cap(response: httpx.Response, cap: str) -> None:
    error = assert_error(response, 429, "cap_exceeded")
    assert error["details"]["cap"] == cap, error


# -- tenants ---------------------------------------------------------------------------------------
@pytest.mark.real_server
async def test_tenants_cannot_see_each_others_rooms(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS)
    http = bridge.http
    acme = await create_room(http, ACME)
    globex = await create_room(http, GLOBEX)
    rid = acme["id"]
    calls = dict(bridge.sim.state.counters)
    for method, path, body in [("GET", "", None), ("DELETE", "", None), ("POST", "/speak", {"text": "x"}),
                               ("POST", "/ask", {"text": "x?"}), ("POST", "/flush", None),
                               ("PUT", "/qa-context", {"text": "x"}), ("GET", "/qa-context", None),
                               ("POST", "/tickets", None), ("GET", "/events", None)]:
        r = await http.request(method, f"/v1/rooms/{rid}{path}", json=body, headers=GLOBEX)
        assert_error(r, 404, "not_found")
    assert bridge.sim.state.counters == calls
    assert [r["id"] for r in (await http.get("/v1/rooms", headers=ACME)).json()["rooms"]] == [rid]
    assert [r["id"] for r in (await http.get("/v1/rooms", headers=GLOBEX)).json()["rooms"]] == [globex["id"]]
    # acme's ticket names acme's room: it does not open globex's room, nor does globex's open acme's
    async with websockets.connect(f"{globex['ws_url']}?ticket={acme['ws_ticket']}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401
    # globex's key on acme's websocket: not found
    async with websockets.connect(acme["ws_url"], additional_headers=GLOBEX) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4404
    # acme's room is untouched
    room = (await http.get(f"/v1/rooms/{rid}", headers=ACME)).json()
    assert room["state"] == "open"
    assert bridge.sim.state.rooms[acme["channel"]].status == "open"
    # and after acme closed it, globex still sees nothing
    await http.delete(f"/v1/rooms/{rid}", headers=ACME)
    assert_error(await http.get(f"/v1/rooms/{rid}", headers=GLOBEX), 404, "not_found")
    assert_error(await http.post(f"/v1/rooms/{rid}/speak", json={"text": "x"}, headers=GLOBEX), 404, "not_found")


async def test_client_keys_are_required(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS)
    http = bridge.http
    calls = dict(bridge.sim.state.counters)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "k1"}, {"Authorization": "Basic k1"},
                    {"Authorization": "Bearer"}, {"Authorization": "Bearer k1 k2"}):
        assert_error(await http.get("/v1/rooms", headers=headers), 401, "unauthorized")
        assert_error(await http.post("/v1/rooms", json={}, headers=headers), 401, "unauthorized")
        assert_error(await http.get("/v1/avatars", headers=headers), 401, "unauthorized")
    assert bridge.sim.state.counters == calls  # nothing reached A2E
    assert (await http.get("/healthz")).status_code == 200  # probes stay open
    assert (await http.get("/v1/rooms", headers={"Authorization": "bearer k2"})).status_code == 200


def test_a_real_a2e_key_needs_client_keys(tmp_path):
    settings = Settings(_env_file=None, a2e_api_key="sk-real", db=str(tmp_path / "x.db"))
    assert not settings.uses_simulator and not settings.dev_mode
    with pytest.raises(ConfigurationError):
        create_app(settings)
    create_app(Settings(_env_file=None, a2e_api_key="sk-real", api_keys="acme:k1", db=str(tmp_path / "x.db")))


async def test_dev_mode_without_keys_on_the_simulator(bridge_factory):
    assert Settings(_env_file=None).dev_mode
    bridge = await bridge_factory()
    http = bridge.http
    one = await create_room(http)
    two = await create_room(http, {"Authorization": "Bearer whatever"})
    rooms = (await http.get("/v1/rooms")).json()["rooms"]
    assert {r["id"] for r in rooms} == {one["id"], two["id"]}  # everyone is tenant "dev"
    assert bridge.rooms.registry.live[one["id"]].room.tenant == "dev"


# -- caps ------------------------------------------------------------------------------------------
def test_default_caps_are_generous_enough():
    s = Settings(_env_file=None)
    assert s.max_rooms_per_tenant >= 20
    assert s.queue_size >= 64


async def test_twenty_rooms_for_one_tenant_by_default(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS)
    rooms = await asyncio.gather(*(create_room(bridge, ACME, expire_seconds=60) for _ in range(20)))
    assert len({r["channel"] for r in rooms}) == 20
    assert sum(1 for r in bridge.sim.state.rooms.values() if r.status == "open") == 20
    if Settings(_env_file=None).max_rooms_per_tenant == 20:
        assert_cap(await bridge.http.post("/v1/rooms", json={}, headers=ACME), "concurrent_rooms")


async def test_a_queue_of_64_by_default(bridge_factory):
    bridge = await bridge_factory(a2e_timeout=10)
    rid = (await create_room(bridge.http))["id"]
    size = Settings(_env_file=None).queue_size
    add_fault(bridge.sim, endpoint="speak", kind="timeout", seconds=3, times=1)
    queue = bridge.rooms.relay.queues[rid]
    first = asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "in flight"}))
    await poll(lambda: queue.in_flight is not None)
    # `size` commands wait behind the one in flight; the next one is refused
    texts = [f"Waiting {i}." for i in range(size)]
    waiting = [asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": t})) for t in texts]
    await poll(lambda: queue.pending >= size or any(t.done() for t in waiting))
    assert queue.pending == size
    assert_error(await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "no room"}), 429, "queue_full")
    replies = await asyncio.gather(*waiting)
    assert all(r.status_code == 200 for r in replies)
    assert (await first).status_code == 503


async def test_concurrent_rooms_cap(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS, max_rooms_per_tenant=2)
    http = bridge.http
    # asked for at once, still no more than two
    replies = await asyncio.gather(*(http.post("/v1/rooms", json={}, headers=ACME) for _ in range(4)))
    assert sorted(r.status_code for r in replies) == [201, 201, 429, 429]
    for r in replies:
        if r.status_code == 429:
            assert_cap(r, "concurrent_rooms")
    assert sum(1 for r in bridge.sim.state.rooms.values() if r.status == "open") == 2  # A2E minted only two
    await create_room(http, GLOBEX)  # another tenant has its own cap
    first = next(r.json() for r in replies if r.status_code == 201)
    await http.delete(f"/v1/rooms/{first['id']}", headers=ACME)
    await create_room(http, ACME)  # a closed room frees its slot


async def test_expire_seconds_cap(bridge_factory):
    bridge = await bridge_factory(max_expire_seconds=120, default_expire_seconds=600)
    calls = bridge.sim.state.counters.get("agora_token", 0)
    assert_cap(await bridge.http.post("/v1/rooms", json={"expire_seconds": 121}), "expire_seconds")
    assert bridge.sim.state.counters.get("agora_token", 0) == calls
    assert (await create_room(bridge.http, expire_seconds=120))["expire_seconds"] == 120
    assert (await create_room(bridge.http))["expire_seconds"] == 120  # the default is capped too


async def test_room_minutes_per_day_cap(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS, room_minutes_per_day=2.5)
    http = bridge.http
    first = await create_room(http, ACME, expire_seconds=60)
    await create_room(http, ACME, expire_seconds=60)
    assert_cap(await http.post("/v1/rooms", json={"expire_seconds": 60}, headers=ACME), "room_minutes_per_day")
    await create_room(http, GLOBEX, expire_seconds=120)  # per tenant
    # a room given back early only costs the time it was open
    await http.delete(f"/v1/rooms/{first['id']}", headers=ACME)
    await create_room(http, ACME, expire_seconds=60)
    assert_cap(await http.post("/v1/rooms", json={"expire_seconds": 60}, headers=ACME), "room_minutes_per_day")


async def test_balance_cap(bridge_factory):
    bridge = await bridge_factory()
    bridge.sim.state.coins = 5
    calls = bridge.sim.state.counters.get("agora_token", 0)
    assert_cap(await bridge.http.post("/v1/rooms", json={"expire_seconds": 600}), "balance")
    assert bridge.sim.state.counters.get("agora_token", 0) == calls  # refused before minting
    assert (await create_room(bridge.http, expire_seconds=300))["expire_seconds"] == 300  # 5 coins: enough


async def test_balance_refused_by_a2e_itself(bridge_factory):
    bridge = await bridge_factory(coins_per_minute=0)  # the bridge does not check: A2E refuses
    bridge.sim.state.coins = 5
    assert_cap(await bridge.http.post("/v1/rooms", json={"expire_seconds": 600}), "balance")
    rooms = (await bridge.http.get("/v1/rooms")).json()["rooms"]
    assert [(r["state"], r["close_reason"]) for r in rooms] == [("failed", "error")]
    assert bridge.rooms.registry.live == {}


async def test_per_tenant_limits_override_the_global_caps(bridge_factory) -> None:
    bridge = await bridge_factory(
        api_keys={"k1": "acme", "k2": "globex"}, max_rooms_per_tenant=1,
        tenant_limits={"acme": {"max_rooms_per_tenant": 2, "max_expire_seconds": 120}})
    acme = {"Authorization": "Bearer k1"}
    globex = {"Authorization": "Bearer k2"}
    for _ in range(2):
        assert (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=acme)).status_code == 201
    third = await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=acme)
    assert assert_error(third, 429, "cap_exceeded")["details"]["cap"] == "concurrent_rooms"
    assert (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=globex)).status_code == 201
    second = await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=globex)
    assert assert_error(second, 429, "cap_exceeded")["details"]["cap"] == "concurrent_rooms"
    long_room = await bridge.http.post("/v1/rooms", json={"expire_seconds": 600}, headers=acme)
    assert assert_error(long_room, 429, "cap_exceeded")["details"]["cap"] == "expire_seconds"


def test_tenant_limits_come_from_json_in_the_environment(monkeypatch) -> None:
    from pydantic import ValidationError

    from bridge.settings import Settings

    monkeypatch.setenv("BRIDGE_TENANT_LIMITS", '{"acme": {"room_minutes_per_day": 90}}')
    s = Settings(_env_file=None)
    assert s.limits_for("acme").room_minutes_per_day == 90
    assert s.limits_for("acme").max_rooms_per_tenant == s.max_rooms_per_tenant
    monkeypatch.setenv("BRIDGE_TENANT_LIMITS", '{"acme": {"max_rooms": 3}}')  # a typo is refused, not ignored
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
