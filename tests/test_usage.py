"""Usage and spend from the bridge's ledger: a scripted day, with rooms left by the client, by the
idle timer, before expiry and still open, matches the simulator's books to the coin."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from bridge.rooms.usage import DAY, day_of, day_start
from tests.helpers import ACME, GLOBEX, KEYS, FakeClock, add_fault, assert_error, create_room, poll

pytestmark = pytest.mark.in_process
OPERATOR = {"Authorization": "Bearer operator-key"}


def counter(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_scripted_day_matches_the_simulators_ledger(bridge_factory: Any, sim: Any) -> None:
    clock = FakeClock(day_start(FakeClock().now) - DAY + 8 * 3600 + 0.37)  # yesterday, 08:00 UTC
    sim.state.clock = clock
    sim.state.config.coins_per_stream_minute = 2
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, clock=clock, coins_per_minute=2,
                                  idle_timeout=120, leave_before_expiry=15, operator_key="operator-key")
    metrics_before = (await bridge.http.get("/metrics")).text
    coins_at_start = sim.state.coins

    def state_of(room: dict[str, Any]) -> Any:
        return lambda: bridge.http.get(f"/v1/rooms/{room['id']}")

    async def closed(room: dict[str, Any]) -> None:
        async def done() -> bool:
            return (await state_of(room)()).json()["state"] == "closed"
        await poll(done, what=f"room {room['id']} closed")

    client_left = await create_room(bridge, expire_seconds=600)
    quick = await create_room(bridge, expire_seconds=300)
    expiring = await create_room(bridge, expire_seconds=95)
    idle = await create_room(bridge, expire_seconds=1000)
    clock.advance(17.25)
    await bridge.http.delete(f"/v1/rooms/{quick['id']}")
    still_open = await create_room(bridge, expire_seconds=240, headers=GLOBEX)
    clock.advance(63.25)  # 80.5 s: `expiring` is within 15 s of its end and left by the sweeper
    await closed(expiring)
    assert (await state_of(expiring)()).json()["close_reason"] == "expiry"
    clock.advance(19.9)  # 100.4 s
    await bridge.http.delete(f"/v1/rooms/{client_left['id']}")
    clock.advance(25.25)  # 125.65 s
    await closed(idle)  # no clients nor commands for 120 s
    assert (await state_of(idle)()).json()["close_reason"] == "idle"

    upstream = {r["channel"]: r for r in sim.state.snapshot()["rooms"]}
    rooms = [client_left, quick, expiring, idle, still_open]
    for tenant_headers, tenant_rooms in ((ACME, rooms[:4]), (GLOBEX, rooms[4:])):
        report = (await bridge.http.get("/v1/usage", params={"group": "room"}, headers=tenant_headers)).json()
        by_room = {r["room_id"]: r for r in report["usage"]}
        assert set(by_room) == {r["id"] for r in tenant_rooms}
        for room in tenant_rooms:
            books = upstream[room["channel"]]
            mine = by_room[room["id"]]
            assert (mine["coins_charged"], mine["coins_refunded"]) == (books["charged"], books["refunded"]), (mine, books)
        assert "reconciliation" not in report  # the account's balance is for the operator only
    assert by_room[still_open["id"]]["open"] == 1 and by_room[still_open["id"]]["coins_refunded"] == 0

    day = (await bridge.http.get("/v1/usage", headers=OPERATOR)).json()
    assert [row["day"] for row in day["usage"]] == [day_of(clock.now)]
    row = day["usage"][0]
    assert row["coins_net"] == coins_at_start - sim.state.coins  # to the coin, every tenant together
    assert row["coins_charged"] == sum(u["charged"] for u in upstream.values())
    assert row["coins_refunded"] == sum(u["refunded"] for u in upstream.values()) == row["coins_saved"]
    assert row["rooms"] == 5 and row["open"] == 1
    assert row["room_minutes_reserved"] == pytest.approx((600 + 300 + 95 + 1000 + 240) / 60, abs=0.001)
    assert day["reconciliation"]["difference"] == 0 and day["reconciliation"]["available"] is True
    assert day["totals"]["coins_net"] == row["coins_net"]

    metrics_after = (await bridge.http.get("/metrics")).text
    for name, key in (("a2e_bridge_coins_charged_total", "charged"), ("a2e_bridge_coins_refunded_total", "refunded")):
        assert counter(metrics_after, name) - counter(metrics_before, name) == sum(u[key] for u in upstream.values())

    today = day_of(clock.now)
    assert (await bridge.http.get("/v1/usage", params={"from": today, "to": today})).json()["totals"]["rooms"] == 4
    none = (await bridge.http.get("/v1/usage", params={"from": "2020-01-01", "to": "2020-01-02"})).json()
    assert none["usage"] == [] and none["totals"]["coins_net"] == 0
    for bad in ({"group": "week"}, {"from": "yesterday"}, {"from": "2024-13-01"}, {"to": "2024-01-01T12:99:00Z"},
                {"from": "2024-01-01T12:00:00"}):  # a time names its offset (RFC 3339, the schema's date-time)
        assert_error(await bridge.http.get("/v1/usage", params=bad), 422, "invalid_input")
    at = (await bridge.http.get("/v1/usage", params={"from": f"{today}T00:00:00+01:00", "to": f"{today}t23:59:59.5z"}))
    assert at.status_code == 200 and at.json()["from"] == f"{yesterday(today)}T23:00:00Z", at.text
    # every from/to the schema allows is answered: a range that ends before it starts holds nothing,
    # and times past what a date can show are read as its ends
    for odd in ({"from": today, "to": "2020-01-01"}, {"from": "9999-12-31", "to": "9999-12-31"},
                {"from": "0001-01-01T00:00:00+23:59", "to": "0001-01-01"}):
        r = await bridge.http.get("/v1/usage", params=odd)
        assert r.status_code == 200 and r.json()["usage"] == [] and r.json()["totals"]["rooms"] == 0, (odd, r.text)


async def test_a_room_minted_but_never_opened_is_still_booked(bridge_factory: Any, sim: Any) -> None:
    """A2E charged a room whose QA context it then refused: the ledger books the charge and the refund."""
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME)
    add_fault(sim, endpoint="set_qa_context", kind="http_500")
    coins = sim.state.coins
    response = await bridge.http.post("/v1/rooms", json={"qa_context": "We open at ten.", "expire_seconds": 600})
    assert response.status_code >= 500
    await poll(lambda: sim.state.snapshot()["rooms"][0]["status"] == "left", what="the refused room left")
    [upstream] = sim.state.snapshot()["rooms"]

    async def booked() -> Any:
        rows = (await bridge.http.get("/v1/usage", params={"group": "room"})).json()["usage"]
        return rows if rows and rows[0]["closed_at"] is not None else None

    [row] = await poll(booked, what="the refund booked")
    assert (row["coins_charged"], row["coins_refunded"]) == (upstream["charged"], upstream["refunded"])
    assert row["close_reason"] == "error" and row["coins_net"] == coins - sim.state.coins


def yesterday(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()
