"""Real processes: SIGTERM gives every room back, and after ``kill -9`` the next start accounts for
every room the dead bridge held (resumed, or left at once), so A2E is charged for nothing forgotten."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.rooms.models import CloseReason, Room, RoomState
from bridge.store.sqlite import SqliteRoomStore
from tests.helpers import Child, create_room_sync, free_port, poll_sync

KEY = {"Authorization": "Bearer k"}
SHUTDOWN_TIMEOUT = 2.0
EXIT_BOUND = SHUTDOWN_TIMEOUT + 5 + 5  # + uvicorn's graceful timeout for open connections + start slack


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(*args: str, env: dict[str, str]) -> Child:
        child = Child(*args, env=env, cwd=tmp_path)  # cwd: no stray .env is read
        started.append(child)
        return child

    yield start
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)


def start_simulator(children: Callable[..., Child]) -> str:
    port = free_port()
    child = children("simulate", "--port", str(port), env={"BRIDGE_LOG_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{port}"
    child.wait_answering(url + "/_sim/health")
    return url


def start_bridge(children: Callable[..., Child], db: Path, sim_url: str | None = None,
                 **env: str) -> tuple[Child, str]:
    port = free_port()
    full = {"BRIDGE_DB": str(db), "BRIDGE_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT), "BRIDGE_LOG_LEVEL": "INFO",
            "BRIDGE_SWEEP_INTERVAL": "0.2", "BRIDGE_EVENT_SOURCE": "none"}
    if sim_url:
        full.update(A2E_API_KEY="x", A2E_BASE_URL=sim_url, BRIDGE_API_KEYS="t:k")
    full.update(env)
    child = children("serve", "--port", str(port), env=full)
    url = f"http://127.0.0.1:{port}"
    child.wait_answering(url + "/healthz")
    return child, url


def sim_rooms(sim_url: str) -> dict[str, dict[str, Any]]:
    return {r["channel"]: r for r in httpx.get(sim_url + "/_sim/state", timeout=5).json()["rooms"]}


def stored(db: Path) -> dict[str, Room]:
    async def read() -> list[Room]:
        store = SqliteRoomStore(db)
        await store.open()
        try:
            return await store.list_rooms()
        finally:
            await store.close()

    return {r.id: r for r in asyncio.run(read())}


def assert_clean_exit(code: int, child: Child) -> None:
    """SIGTERM must end in exit status 0 once every room was given back (checked last, after the rooms)."""
    assert code == 0, child.output


def test_sigterm_with_the_embedded_simulator(children, tmp_path):
    db = tmp_path / "bridge.db"
    bridge, url = start_bridge(children, db)
    rooms = [create_room_sync(url, KEY, expire_seconds=600) for _ in range(3)]
    sim_url = url + "/_a2e"  # the embedded simulator, for as long as the process lives
    assert all(s["status"] == "open" for s in sim_rooms(sim_url).values())
    bridge.signal(signal.SIGTERM)
    code = bridge.wait(EXIT_BOUND)
    records = stored(db)
    assert len(records) == 3
    for room in rooms:
        record = records[room["id"]]
        assert (record.state, record.close_reason) == (RoomState.CLOSED, CloseReason.SHUTDOWN), record
        assert record.error is None  # the leave was confirmed, not given up on
    assert "closed (shutdown)" in bridge.output
    assert_clean_exit(code, bridge)


def test_sigterm_against_a_separate_a2e(children, tmp_path):
    db = tmp_path / "bridge.db"
    sim_url = start_simulator(children)
    coins = httpx.get(sim_url + "/_sim/state").json()["coins"]
    bridge, url = start_bridge(children, db, sim_url)
    rooms = [create_room_sync(url, KEY, expire_seconds=600) for _ in range(3)]
    httpx.post(url + f"/v1/rooms/{rooms[0]['id']}/speak", json={"text": "Goodbye."}, headers=KEY, timeout=10)
    bridge.signal(signal.SIGTERM)
    code = bridge.wait(EXIT_BOUND)
    upstream = sim_rooms(sim_url)
    assert {r["channel"] for r in rooms} == set(upstream)
    assert all(u["status"] == "left" for u in upstream.values()), upstream
    assert httpx.get(sim_url + "/_sim/state").json()["coins"] == coins - sum(
        u["charged"] - u["refunded"] for u in upstream.values())
    assert all(u["refunded"] >= 9 for u in upstream.values())  # 600 s charged, seconds used
    records = stored(db)
    assert {(r.state, r.close_reason) for r in records.values()} == {(RoomState.CLOSED, CloseReason.SHUTDOWN)}
    assert_clean_exit(code, bridge)


def test_sigterm_while_a2e_refuses_leave_is_bounded_and_recovered(children, tmp_path):
    """If A2E will not confirm a leave, shutdown still ends on time; the next start leaves the room."""
    db = tmp_path / "bridge.db"
    sim_url = start_simulator(children)
    bridge, url = start_bridge(children, db, sim_url)
    rooms = [create_room_sync(url, KEY, expire_seconds=600) for _ in range(2)]
    r = httpx.post(sim_url + "/_sim/faults", json={"endpoint": "leave", "kind": "http_500"})
    assert r.status_code == 201
    began = time.monotonic()
    bridge.signal(signal.SIGTERM)
    bridge.wait(EXIT_BOUND)
    assert time.monotonic() - began < EXIT_BOUND
    records = stored(db)
    for room in rooms:  # not confirmed: still live in the store, so the next start retries
        record = records[room["id"]]
        assert (record.state, record.close_reason) == (RoomState.CLOSING, CloseReason.SHUTDOWN), record
    assert all(u["status"] == "open" for u in sim_rooms(sim_url).values())

    httpx.delete(sim_url + "/_sim/faults")
    bridge, url = start_bridge(children, db, sim_url)
    poll_sync(lambda: all(u["status"] == "left" for u in sim_rooms(sim_url).values()), what="rooms left")
    poll_sync(lambda: all(r.state is RoomState.CLOSED for r in stored(db).values()), what="rooms closed")
    assert {r.close_reason for r in stored(db).values()} == {CloseReason.SHUTDOWN}  # the first reason stays
    bridge.signal(signal.SIGTERM)
    bridge.wait(EXIT_BOUND)


def test_kill_9_then_restart_accounts_for_every_room(children, tmp_path):
    db = tmp_path / "bridge.db"
    sim_url = start_simulator(children)
    coins_at_start = httpx.get(sim_url + "/_sim/state").json()["coins"]
    # first life: nothing idles or expires on its own before the kill
    bridge, url = start_bridge(children, db, sim_url, BRIDGE_IDLE_TIMEOUT="60", BRIDGE_LEAVE_BEFORE_EXPIRY="2")
    long_rooms = [create_room_sync(url, KEY, expire_seconds=600) for _ in range(3)]
    short_rooms = [create_room_sync(url, KEY, expire_seconds=12) for _ in range(2)]
    r = httpx.post(url + f"/v1/rooms/{long_rooms[0]['id']}/speak", json={"text": "Before the crash."},
                   headers=KEY, timeout=10)
    assert r.status_code == 200
    # one room is being closed when the bridge dies: A2E will not confirm its leave
    closing = create_room_sync(url, KEY, expire_seconds=600)
    httpx.post(sim_url + "/_sim/faults", json={"endpoint": "leave", "kind": "http_500"})
    with pytest.raises(httpx.ReadTimeout):
        httpx.delete(url + f"/v1/rooms/{closing['id']}", headers=KEY, timeout=0.5)
    poll_sync(lambda: stored(db)[closing["id"]].state is RoomState.CLOSING, what="closing stored")
    bridge.signal(signal.SIGKILL)
    assert bridge.wait(10) == -signal.SIGKILL
    httpx.delete(sim_url + "/_sim/faults")

    everything = long_rooms + short_rooms + [closing]
    upstream = sim_rooms(sim_url)
    assert all(upstream[r["channel"]]["status"] == "open" for r in everything)  # the crash left them all
    records = stored(db)
    assert {records[r["id"]].state for r in long_rooms + short_rooms} == {RoomState.OPEN}

    # while the bridge is down the short rooms come within 10 s of their end
    poll_sync(lambda: time.time() > max(r["expires_at_epoch"] for r in short_rooms) - 10 + 0.5, what="short rooms near end")
    bridge, url = start_bridge(children, db, sim_url, BRIDGE_IDLE_TIMEOUT="3", BRIDGE_LEAVE_BEFORE_EXPIRY="10")
    live = httpx.get(url + "/v1/rooms", params={"state": "live"}, headers=KEY, timeout=5).json()["rooms"]
    open_now = {r["id"] for r in live if r["state"] == "open"}
    assert open_now == {r["id"] for r in long_rooms}, bridge.output  # resumed, usable
    r = httpx.post(url + f"/v1/rooms/{long_rooms[1]['id']}/speak", json={"text": "After the crash."},
                   headers=KEY, timeout=10)
    assert r.status_code == 200, r.text

    # eventually A2E holds no open room: the resumed ones idled out, the others were left at once
    poll_sync(lambda: not any(u["status"] == "open" for u in sim_rooms(sim_url).values()), timeout=20,
         what="no open room upstream")
    rooms = {r["id"]: r for r in httpx.get(url + "/v1/rooms", headers=KEY, timeout=5).json()["rooms"]}
    assert set(rooms) == {r["id"] for r in everything}
    reasons = {rid: (r["state"], r["close_reason"]) for rid, r in rooms.items()}
    for room in long_rooms:
        assert reasons[room["id"]] == ("closed", "idle"), reasons
    for room in short_rooms:
        assert reasons[room["id"]] == ("closed", "recovery"), reasons
    assert reasons[closing["id"]] == ("closed", "client"), reasons
    upstream = sim_rooms(sim_url)
    assert set(upstream) == {r["channel"] for r in everything}  # nothing minted that the bridge forgot
    assert all(u["status"] == "left" for u in upstream.values()), upstream
    for room in long_rooms + [closing]:
        assert upstream[room["channel"]]["refunded"] >= 9, upstream[room["channel"]]
    assert httpx.get(sim_url + "/_sim/state").json()["coins"] == coins_at_start - sum(
        u["charged"] - u["refunded"] for u in upstream.values())
    bridge.signal(signal.SIGTERM)
    bridge.wait(EXIT_BOUND)


def test_a_real_key_without_client_keys_does_not_start(children, tmp_path):
    child = children("serve", "--port", str(free_port()),
                     env={"A2E_API_KEY": "sk-real", "BRIDGE_DB": str(tmp_path / "b.db")})
    code = child.wait(20)
    assert code != 0
    assert "BRIDGE_API_KEYS" in child.output
    assert "sk-real" not in child.output
