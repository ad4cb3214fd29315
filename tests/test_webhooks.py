"""Signed webhooks, received by a real backend on loopback that verifies every signature with the
``standardwebhooks`` library: a session's events in order, a receiver that was down gets everything
once back (at-least-once, de-duplicable by ``webhook-id``), retries and their record, the once-only
events (``room.expiring``, ``spend.threshold``), and a room that never waits for its webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.simulator.feed import answer_for
from bridge.store import MemoryRoomStore
from bridge.webhooks import Deliverer
from tests.helpers import (
    ACME,
    GLOBEX,
    KEYS,
    WEBHOOK_SECRET,
    FakeClock,
    Receiver,
    assert_error,
    bridge_settings,
    create_room,
    poll,
    wait_observed,
)

pytestmark = pytest.mark.in_process
CONTEXT = "The museum opens at ten. Tickets cost twelve euros."
OPERATOR = {"Authorization": "Bearer operator-key"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    yield receiver
    await receiver.stop()


def hooks(receiver: Receiver, **target: Any) -> dict[str, Any]:
    return {"acme": {"url": receiver.url, "secret": WEBHOOK_SECRET, **target}}


async def test_a_session_arrives_signed_and_in_order(bridge_factory: Any, receiver: Receiver) -> None:
    await receiver.start()
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, webhooks=hooks(receiver))
    room = await create_room(bridge, qa_context=CONTEXT)
    await wait_observed(bridge, room)
    assert (await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "When do you open?"})).status_code == 200
    await poll(lambda: "reply.final" in receiver.types(), what="reply.final delivered")
    await bridge.http.delete(f"/v1/rooms/{room['id']}")
    await poll(lambda: len(receiver.events()) == 4, what="four events delivered")
    assert receiver.rejected == []
    assert receiver.types() == ["room.opened", "reply.final", "room.closed", "transcript.ready"]
    opened, reply, closed, ready = receiver.events()
    assert opened["data"]["room"]["id"] == room["id"] and "token" not in opened["data"]["room"]
    assert reply["data"]["text"] == answer_for("When do you open?", CONTEXT)
    assert closed["data"]["room"]["close_reason"] == "client" and closed["data"]["room"]["state"] == "closed"
    usage = closed["data"]["usage"]
    upstream = next(r for r in bridge.sim.state.snapshot()["rooms"] if r["channel"] == room["channel"])
    assert (usage["coins_charged"], usage["coins_refunded"]) == (upstream["charged"], upstream["refunded"])
    assert ready["data"] == {"room_id": room["id"], "entries": 2, "transcript_path": f"/v1/rooms/{room['id']}/transcript"}
    listed = (await bridge.http.get("/v1/webhooks/deliveries")).json()["deliveries"]
    assert [(d["event"], d["status"], d["attempts"]) for d in reversed(listed)] == [
        ("room.opened", "delivered", 1), ("reply.final", "delivered", 1), ("room.closed", "delivered", 1),
        ("transcript.ready", "delivered", 1)]
    assert {d["webhook_id"] for d in listed} == {e["id"] for e in receiver.events()}


async def test_a_receiver_down_gets_everything_once_back(bridge_factory: Any, receiver: Receiver) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, webhooks=hooks(receiver),
                                  webhook_backoff_max=0.3, operator_key="operator-key")
    rooms = [await create_room(bridge) for _ in range(3)]
    for room in rooms:
        assert (await bridge.http.delete(f"/v1/rooms/{room['id']}")).json()["state"] == "closed"

    async def retried() -> bool:
        pending = (await bridge.http.get("/v1/webhooks/deliveries", params={"status": "pending"})).json()["deliveries"]
        return len(pending) == 9 and all(d["attempts"] >= 2 for d in pending if d["event"] == "room.opened")

    await poll(retried, what="every event pending, the heads retried")
    pending = (await bridge.http.get("/v1/webhooks/deliveries", params={"status": "pending"})).json()["deliveries"]
    head = next(d for d in pending if d["event"] == "room.opened")
    assert head["last_error"] == "ConnectError" and head["history"][0]["status"] is None
    assert all(d["attempts"] == 0 for d in pending if d["event"] != "room.opened")  # each waits for its room's first

    receiver.status = 503  # back, but failing: the same events come again, with the same ids
    await receiver.start()
    await poll(lambda: len({e["id"] for e in receiver.received}) >= 3, what="503s answered")
    receiver.status = 204
    await poll(lambda: len(receiver.events()) == 9, what="all nine events delivered")
    assert receiver.rejected == []
    for room in rooms:
        assert receiver.types(room["id"]) == ["room.opened", "room.closed", "transcript.ready"]
    refused = [e for e in receiver.received if e["answered"] == 503]
    assert {e["id"] for e in refused} <= {e["id"] for e in receiver.events()}  # retried under the same webhook-id
    delivered = (await bridge.http.get("/v1/webhooks/deliveries", params={"status": "delivered"})).json()
    assert len(delivered["deliveries"]) == 9
    assert {d["webhook_id"] for d in delivered["deliveries"]} == {e["id"] for e in receiver.events()}
    assert all(d["history"][-1]["status"] == 204 for d in delivered["deliveries"])
    assert (await bridge.http.get("/v1/webhooks/deliveries", headers=GLOBEX)).json()["deliveries"] == []
    operator = (await bridge.http.get("/v1/webhooks/deliveries", headers=OPERATOR, params={"limit": 4})).json()
    assert len(operator["deliveries"]) == 4 and operator["deliveries"][0]["tenant"] == "acme"
    more = (await bridge.http.get("/v1/webhooks/deliveries", headers=OPERATOR,
                                  params={"before": operator["next_before"], "limit": 200})).json()
    assert len(more["deliveries"]) == 5 and more["next_before"] is None
    for bad in ({"status": "lost"}, {"limit": "0"}, {"before": "x"}):
        assert_error(await bridge.http.get("/v1/webhooks/deliveries", params=bad), 422, "invalid_input")


async def test_expiring_and_spend_threshold_fire_once(bridge_factory: Any, receiver: Receiver) -> None:
    await receiver.start()
    clock = FakeClock()
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, clock=clock, leave_before_expiry=15, idle_timeout=3600,
                                  webhook_expiring_seconds=30, webhooks=hooks(receiver),
                                  tenant_limits={"acme": {"spend_alert_coins": 15}})
    first = await create_room(bridge, expire_seconds=600)  # 10 coins: under the threshold
    await create_room(bridge, expire_seconds=600)  # 20: over it
    await create_room(bridge, expire_seconds=600)  # 30: still over, no second alert today
    await poll(lambda: receiver.types().count("room.opened") == 3, what="three rooms opened")
    clock.advance(600 - 15 - 30 + 1)  # within 30 s of the bridge leaving for expiry
    await poll(lambda: receiver.types().count("room.expiring") == 3, what="expiring warnings")
    warned_at = clock.now
    clock.advance(1)
    for _ in range(3):  # more whole sweeps: none warns again
        await bridge.rooms.sweeper.sweep()
    await bridge.rooms.transcripts.writer.flush()
    assert receiver.types().count("room.expiring") == 3 and receiver.types().count("spend.threshold") == 1
    spend = next(e for e in receiver.events() if e["type"] == "spend.threshold")
    assert spend["data"] == {"tenant": "acme", "day": spend["data"]["day"], "coins_net": 20, "threshold": 15}
    warning = next(e for e in receiver.events(first["id"]) if e["type"] == "room.expiring")
    # warned by the sweep at warned_at (or a second later): the room leaves 15 s before A2E's expiry
    leaves_at = first["expires_at_epoch"] - 15
    assert leaves_at - warned_at - 1.001 <= warning["data"]["seconds_left"] <= leaves_at - warned_at + 0.001  # ms rounding
    assert receiver.types(first["id"]) == ["room.opened", "room.expiring"]


async def test_a_slow_receiver_never_slows_a_room(bridge_factory: Any, receiver: Receiver) -> None:
    receiver.hold()  # the receiver answers nothing: a room that waited for it would hang
    await receiver.start()
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, webhook_timeout=0.5, webhook_backoff_max=0.2,
                                  webhooks=hooks(receiver, events=["room.opened", "room.closed"]))
    room = await create_room(bridge)
    for text in ("One.", "Two.", "Three."):
        assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": text})).status_code == 200
    assert (await bridge.http.delete(f"/v1/rooms/{room['id']}")).json()["state"] == "closed"
    assert receiver.received == []  # the room was opened, spoken in and closed with no delivery answered

    async def timed_out() -> bool:
        listed = (await bridge.http.get("/v1/webhooks/deliveries")).json()["deliveries"]
        return any(d["last_error"] == "ReadTimeout" for d in listed)

    await poll(timed_out, what="an attempt timed out")
    listed = (await bridge.http.get("/v1/webhooks/deliveries")).json()["deliveries"]
    assert {d["event"] for d in listed} == {"room.opened", "room.closed"}  # only the events it asked for


async def test_the_deliverer_stops_when_woken_as_it_is_cancelled(tmp_path: Any) -> None:
    """A wake-up (a room closing enqueues its webhook) that lands as the app shuts down must not keep
    the deliverer looping: on Python 3.11 ``asyncio.wait_for`` swallowed that cancel and a shutdown
    hung for good (seen in CI)."""
    settings = bridge_settings(tmp_path, webhooks={"acme": {"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}})
    deliverer = Deliverer(settings, MemoryRoomStore())
    async with asyncio.timeout(10):  # a hang fails here instead of at the suite's timeout
        for _ in range(20):
            async with deliverer.running():
                for _ in range(3):
                    await asyncio.sleep(0)  # the deliverer reads the outbox, then waits for a wake-up
                deliverer.wake()  # then running() cancels it before it has run again
