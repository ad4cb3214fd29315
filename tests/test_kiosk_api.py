"""Kiosk mode's HTTP side: profiles, rooms opened from a profile, warm rooms and watchdog reports.

The bridge runs in-process in front of a simulator on a real socket; the page itself is tested in
``tests/browser/test_kiosk_mode.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge.simulator.state import AVATARS
from tests.helpers import FakeClock, assert_error, create_room, poll

pytestmark = pytest.mark.in_process

AVATAR = AVATARS[2]["_id"]
QA = "The museum opens at 9am. Tickets cost 12 euros."
ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}
KEYS = {"key-acme": "acme", "key-globex": "globex"}


def lobby(**overrides: Any) -> dict[str, Any]:
    return {"lobby": {"avatar_id": AVATAR, "qa_context": QA, "idle_seconds": 20, "language": "fr-FR", **overrides}}


def open_sim_rooms(bridge: Any) -> int:
    return int(bridge.sim.state.snapshot()["open_rooms"])


async def test_a_profile_as_the_page_gets_it(bridge_factory):
    bridge = await bridge_factory(kiosk_profiles=lobby(expire_seconds=300), coins_per_minute=2)
    r = await bridge.http.get("/v1/kiosk/profiles/lobby")
    assert r.status_code == 200
    assert r.json() == {
        "name": "lobby", "avatar_id": AVATAR, "brain": None, "idle_seconds": 20, "prompt_seconds": 10,
        "language": "fr-FR", "warm_rooms": 0, "warm_rooms_ready": 0, "expire_seconds": 300, "watchdog_seconds": 10,
        "qa_context_chars": len(QA), "coins_per_minute": 2, "coins_per_hour": 120, "warm_coins_per_hour": 0,
    }  # no tenant, no QA context text
    assert_error(await bridge.http.get("/v1/kiosk/profiles/nope"), 404, "not_found")
    assert open_sim_rooms(bridge) == 0  # reading a profile opens nothing


async def test_profiles_are_behind_the_keys_and_bound_to_their_tenant(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS, kiosk_profiles=lobby(tenant="acme"))
    assert_error(await bridge.http.get("/v1/kiosk/profiles/lobby"), 401, "unauthorized")
    assert_error(await bridge.http.post("/v1/kiosk/profiles/lobby/rooms"), 401, "unauthorized")
    assert (await bridge.http.get("/v1/kiosk/profiles/lobby", headers=ACME)).status_code == 200
    assert_error(await bridge.http.get("/v1/kiosk/profiles/lobby", headers=GLOBEX), 404, "not_found")
    assert_error(await bridge.http.post("/v1/kiosk/profiles/lobby/rooms", headers=GLOBEX), 404, "not_found")
    assert open_sim_rooms(bridge) == 0


async def test_a_room_from_a_profile(bridge_factory):
    bridge = await bridge_factory(api_keys=KEYS, kiosk_profiles=lobby(expire_seconds=120))
    r = await bridge.http.post("/v1/kiosk/profiles/lobby/rooms", headers=GLOBEX)  # no tenant: any key
    assert r.status_code == 201, r.text
    room = r.json()
    assert room["warm"] is False and room["state"] == "open" and room["expire_seconds"] == 120
    assert room["avatar_id"] == AVATAR and room["qa_context_chars"] == len(QA)
    assert bridge.sim.state.rooms[room["channel"]].qa_context == QA
    caller = bridge.app.state.auth.check_ticket(room["ws_ticket"], room["id"])
    assert caller.tenant == "globex" and caller.forward  # the page forwards channel events
    assert (await bridge.http.get(f"/v1/rooms/{room['id']}", headers=GLOBEX)).json()["state"] == "open"


async def test_warm_rooms_wait_take_and_refill(bridge_factory):
    clock = FakeClock()
    bridge = await bridge_factory(kiosk_profiles=lobby(warm_rooms=2), idle_timeout=30, clock=clock)
    pool = bridge.rooms.warm
    await poll(lambda: len(pool.waiting["lobby"]) == 2, what="two warm rooms")
    assert open_sim_rooms(bridge) == 2
    assert (await bridge.http.get("/v1/kiosk/profiles/lobby")).json()["warm_rooms_ready"] == 2
    waiting = {lr.room.id for lr in pool.waiting["lobby"]}
    assert 'a2e_bridge_warm_rooms 2.0' in (await bridge.http.get("/metrics")).text

    clock.advance(60)  # twice the idle timeout: waiting rooms are not idle
    await bridge.rooms.sweeper.sweep()
    assert {lr.room.id for lr in pool.waiting["lobby"]} == waiting and open_sim_rooms(bridge) == 2

    r = await bridge.http.post("/v1/kiosk/profiles/lobby/rooms")
    assert r.status_code == 201 and r.json()["warm"] is True and r.json()["id"] in waiting
    taken = r.json()
    await poll(lambda: open_sim_rooms(bridge) == 3, what="the pool replacing the taken room")
    await poll(lambda: len(pool.waiting["lobby"]) == 2, what="two rooms waiting again")
    assert taken["id"] not in {lr.room.id for lr in pool.waiting["lobby"]}

    clock.advance(31)  # the taken room is an ordinary room now: left when idle
    closed = await poll(lambda: _state(bridge, taken["id"], "closed"), what="the taken room idling out")
    assert closed["close_reason"] == "idle"
    assert len(pool.waiting["lobby"]) == 2 and open_sim_rooms(bridge) == 2


async def _state(bridge: Any, room_id: str, state: str) -> dict[str, Any] | None:
    room: dict[str, Any] = (await bridge.http.get(f"/v1/rooms/{room_id}")).json()
    return room if room["state"] == state else None


async def test_warm_rooms_are_replaced_when_they_expire(bridge_factory):
    clock = FakeClock()
    bridge = await bridge_factory(kiosk_profiles=lobby(warm_rooms=1, expire_seconds=60), leave_before_expiry=10,
                                  clock=clock)
    bridge.sim.state.clock = clock  # A2E's expiry times on the same clock as the bridge's
    pool = bridge.rooms.warm
    await poll(lambda: len(pool.waiting["lobby"]) == 1, what="a warm room")
    (first,) = pool.waiting["lobby"]
    clock.advance(51)  # within leave_before_expiry of its end
    await poll(lambda: first.room.state.value == "closed", what="the warm room left before expiry")
    assert first.room.close_reason.value == "expiry"
    await poll(lambda: pool.waiting["lobby"] and pool.waiting["lobby"][0] is not first, what="its replacement")
    (second,) = pool.waiting["lobby"]
    await bridge.rooms.sweeper.sweep()  # a whole pass at this time: the replacement has its whole life ahead
    assert second.room.state.value == "open" and open_sim_rooms(bridge) == 1


async def test_warm_rooms_stay_within_the_tenant_caps(bridge_factory, caplog):
    bridge = await bridge_factory(kiosk_profiles=lobby(warm_rooms=3), max_rooms_per_tenant=2)
    pool = bridge.rooms.warm
    await poll(lambda: len(pool.waiting["lobby"]) == 2, what="as many warm rooms as the cap allows")
    for _ in range(3):
        await pool.fill()  # more passes open nothing, and spend nothing of the creation rate
    assert bridge.sim.state.counters["agora_token"] == 2 and open_sim_rooms(bridge) == 2
    assert_error(await bridge.http.post("/v1/rooms", json={}), 429, "cap_exceeded")
    # a visitor still gets a room: a warm one
    assert (await bridge.http.post("/v1/kiosk/profiles/lobby/rooms")).json()["warm"] is True

    # a refusal from the caps (here: the daily room-minutes) is logged and retried later, not hammered
    caplog.set_level(logging.WARNING, logger="bridge.rooms")
    settings = bridge.app.state.settings
    settings.max_rooms_per_tenant, settings.room_minutes_per_day = 10, 1.0
    mints = bridge.sim.state.counters["agora_token"]
    await pool.fill()
    await pool.fill()
    assert bridge.sim.state.counters["agora_token"] == mints and len(pool.waiting["lobby"]) == 1
    refusals = [r.getMessage() for r in caplog.records if "could not open a warm room" in r.getMessage()]
    assert len(refusals) == 1 and "room_minutes_per_day" in refusals[0]


async def test_watchdog_reports(bridge_factory, caplog):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    url = f"/v1/rooms/{room['id']}/watchdog"
    caplog.set_level(logging.WARNING, logger="bridge.kiosk")
    r = await bridge.http.post(url, json={"kind": "speak", "waited_seconds": 10.5})
    assert r.status_code == 202 and r.json() == {"reported": True}
    assert (await bridge.http.post(url, json={"kind": "speak", "waited_seconds": 11})).json() == {"reported": False}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bridge.kiosk"]
    assert room["id"] in line and "speak accepted 10.5 s ago" in line
    assert 'a2e_bridge_kiosk_watchdog_total{kind="speak"}' in (await bridge.http.get("/metrics")).text

    for body in ({"kind": "dance", "waited_seconds": 1}, {"kind": "ask"}, {"kind": "ask", "waited_seconds": -1},
                 {"kind": "ask", "waited_seconds": 1, "extra": 1}):
        assert_error(await bridge.http.post(url, json=body), 422, "invalid_input")
    assert_error(await bridge.http.post("/v1/rooms/rm_nope/watchdog", json={"kind": "ask", "waited_seconds": 1}),
                 404, "not_found")
    await bridge.http.delete(f"/v1/rooms/{room['id']}")
    assert_error(await bridge.http.post(url, json={"kind": "ask", "waited_seconds": 1}), 409, "room_not_open")


async def test_a_profile_brain_answers_in_its_rooms_warm_or_not(bridge_factory, monkeypatch):
    monkeypatch.setenv("KIOSK_TEST_BRAIN_SECRET", "s3cret")
    brains = {"bot": {"kind": "webhook", "url": "http://127.0.0.1:9/answer", "secret_env": "KIOSK_TEST_BRAIN_SECRET"},
              "theirs": {"kind": "webhook", "url": "http://127.0.0.1:9/answer", "secret_env": "KIOSK_TEST_BRAIN_SECRET",
                         "tenants": ["globex"]}}
    profiles = {**lobby(brain="bot", warm_rooms=1), "other": {"avatar_id": AVATAR, "brain": "theirs"}}
    bridge = await bridge_factory(kiosk_profiles=profiles, brains=brains)
    pool = bridge.rooms.warm
    await poll(lambda: len(pool.waiting["lobby"]) == 1, what="a warm room")
    assert pool.waiting["lobby"][0].room.brain == "bot"
    assert (await bridge.http.get("/v1/kiosk/profiles/lobby")).json()["brain"] == "bot"
    warm = (await bridge.http.post("/v1/kiosk/profiles/lobby/rooms")).json()
    assert warm["warm"] is True and warm["brain"] == "bot"
    # a brain the caller's tenant may not use: refused before anything is minted
    mints = bridge.sim.state.counters.get("agora_token", 0)
    assert_error(await bridge.http.post("/v1/kiosk/profiles/other/rooms"), 422, "invalid_input")
    assert bridge.sim.state.counters.get("agora_token", 0) == mints
