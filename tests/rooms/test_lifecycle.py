"""A room's whole life over HTTP (bridge in-process), against the simulator on a real socket."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.helpers import assert_error

pytestmark = pytest.mark.in_process


async def sim_room(bridge, channel: str) -> dict[str, Any]:
    state = (await bridge.http.get(bridge.sim.url + "/_sim/state")).json()
    return next(r for r in state["rooms"] if r["channel"] == channel)


async def test_whole_lifecycle(bridge_factory):
    bridge = await bridge_factory()
    http = bridge.http
    coins_before = bridge.sim.state.coins

    r = await http.post("/v1/rooms", json={"expire_seconds": 600})
    assert r.status_code == 201, r.text
    room = r.json()
    for key in ("id", "channel", "app_id", "token", "uid", "expires_at", "ws_ticket"):
        assert room[key], key
    assert room["state"] == "open"
    assert room["expire_seconds"] == 600
    rid, channel = room["id"], room["channel"]
    assert (await sim_room(bridge, channel))["status"] == "open"
    assert bridge.sim.state.coins == coins_before - 10  # 600 s at one coin a minute, charged up front

    # list (only this caller's rooms) and get
    listed = (await http.get("/v1/rooms")).json()["rooms"]
    assert [x["id"] for x in listed] == [rid]
    assert "ws_ticket" not in listed[0] and "token" in listed[0]
    got = await http.get(f"/v1/rooms/{rid}")
    assert got.status_code == 200 and got.json()["state"] == "open" and got.json()["channel"] == channel
    live = (await http.get("/v1/rooms", params={"state": "live"})).json()["rooms"]
    assert [x["id"] for x in live] == [rid]

    # QA context: 5000 characters are fine, 5001 never reach A2E
    text = "q" * 5000
    r = await http.put(f"/v1/rooms/{rid}/qa-context", json={"text": text})
    assert r.status_code == 200 and r.json() == {"text": text, "chars": 5000}
    assert bridge.sim.state.rooms[channel].qa_context == text
    qa_calls = bridge.sim.state.counters.get("set_qa_context", 0)
    assert_error(await http.put(f"/v1/rooms/{rid}/qa-context", json={"text": "x" * 5001}), 422, "invalid_input")
    assert bridge.sim.state.counters.get("set_qa_context", 0) == qa_calls
    r = await http.get(f"/v1/rooms/{rid}/qa-context")
    assert r.status_code == 200 and r.json() == {"text": text, "chars": 5000}
    assert (await http.get(f"/v1/rooms/{rid}")).json()["qa_context_chars"] == 5000

    # commands
    r = await http.post(f"/v1/rooms/{rid}/speak", json={"text": "Hello there."})
    assert r.status_code == 200, r.text
    assert r.json()["position"] == 1 and r.json()["positions"] == [1] and r.json()["kind"] == "speak"
    r = await http.post(f"/v1/rooms/{rid}/ask", json={"text": "What is this?"})
    assert r.status_code == 200 and r.json()["position"] == 2 and r.json()["kind"] == "ask"
    sent = bridge.sim.state.rooms[channel].commands
    assert [(c["kind"], c["text"]) for c in sent] == [("speak", "Hello there."), ("ask", "What is this?")]
    r = await http.post(f"/v1/rooms/{rid}/flush")
    assert r.status_code == 200 and r.json() == {"flushed": 0, "dropped": []}
    r = await http.post(f"/v1/rooms/{rid}/tickets")
    assert r.status_code == 201 and r.json()["ws_ticket"].startswith(rid + ".")

    # delete: closed, left upstream, unused time refunded; a second delete changes nothing
    r = await http.delete(f"/v1/rooms/{rid}")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed" and r.json()["close_reason"] == "client"
    upstream = await sim_room(bridge, channel)
    assert upstream["status"] == "left"
    assert upstream["refunded"] == 9 and upstream["charged"] == 10
    assert bridge.sim.state.coins == coins_before - 1
    leaves = bridge.sim.state.counters["leave"]
    assert leaves == 1
    r = await http.delete(f"/v1/rooms/{rid}")
    assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["close_reason"] == "client"
    assert bridge.sim.state.counters["leave"] == leaves
    got = (await http.get(f"/v1/rooms/{rid}")).json()
    assert got["state"] == "closed" and got["close_reason"] == "client" and got["closed_at"]
    assert [x["state"] for x in (await http.get("/v1/rooms")).json()["rooms"]] == ["closed"]
    assert (await http.get("/v1/rooms", params={"state": "live"})).json()["rooms"] == []

    # a closed room refuses commands with 409, and A2E hears nothing of them
    calls = dict(bridge.sim.state.counters)
    for method, path, body in [("POST", "speak", {"text": "hi"}), ("POST", "ask", {"text": "hi?"}),
                               ("POST", "flush", None), ("PUT", "qa-context", {"text": "ctx"}),
                               ("POST", "tickets", None)]:
        r = await http.request(method, f"/v1/rooms/{rid}/{path}", json=body)
        assert_error(r, 409, "room_not_open")
    assert bridge.sim.state.counters == calls
    # the QA context stays readable after the close
    assert (await http.get(f"/v1/rooms/{rid}/qa-context")).json()["chars"] == 5000


async def test_concurrent_deletes_leave_once(bridge_factory):
    bridge = await bridge_factory()
    room = (await bridge.http.post("/v1/rooms", json={})).json()
    replies = await asyncio.gather(*(bridge.http.delete(f"/v1/rooms/{room['id']}") for _ in range(5)))
    assert [(r.status_code, r.json()["state"], r.json()["close_reason"]) for r in replies] == \
        [(200, "closed", "client")] * 5
    assert bridge.sim.state.counters["leave"] == 1
    assert bridge.sim.state.rooms[room["channel"]].status == "left"


async def test_unknown_room_is_404_everywhere(bridge_factory):
    bridge = await bridge_factory()
    http = bridge.http
    for method, path, body in [("GET", "", None), ("DELETE", "", None), ("POST", "/speak", {"text": "x"}),
                               ("POST", "/ask", {"text": "x"}), ("POST", "/flush", None),
                               ("PUT", "/qa-context", {"text": "x"}), ("GET", "/qa-context", None),
                               ("POST", "/tickets", None)]:
        assert_error(await http.request(method, f"/v1/rooms/rm_nope{path}", json=body), 404, "not_found")
    assert_error(await http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await http.patch("/v1/rooms"), 405, "method_not_allowed")


async def test_bad_bodies(bridge_factory):
    bridge = await bridge_factory()
    http = bridge.http
    headers = {"content-type": "application/json"}
    calls = dict(bridge.sim.state.counters)
    assert_error(await http.post("/v1/rooms", content=b"{not json", headers=headers), 400, "bad_request")
    for body in ({"expire_seconds": "abc"}, {"expire_seconds": 5}, {"expire_seconds": 1.5},
                 {"expire_seconds": "600"}, {"avatar_id": 7}, {"surprise": 1}, [], "text"):
        error = assert_error(await http.post("/v1/rooms", json=body), 422, "invalid_input")
        assert isinstance(error["details"], list) and error["details"], body
    assert_error(await http.post("/v1/rooms", json={"qa_context": "x" * 5001}), 422, "invalid_input")
    assert bridge.sim.state.counters == calls  # nothing reached A2E

    rid = (await http.post("/v1/rooms", json={})).json()["id"]
    assert_error(await http.post(f"/v1/rooms/{rid}/speak", content=b'{"text": ', headers=headers),
                 400, "bad_request")
    for body in ({"text": 5}, {"text": None}, {}, {"text": "hi", "extra": True}, {"text": ["a"]}):
        assert_error(await http.post(f"/v1/rooms/{rid}/speak", json=body), 422, "invalid_input")
        assert_error(await http.post(f"/v1/rooms/{rid}/ask", json=body), 422, "invalid_input")
        assert_error(await http.put(f"/v1/rooms/{rid}/qa-context", json=body), 422, "invalid_input")
    assert_error(await http.post(f"/v1/rooms/{rid}/speak", json={"text": "   "}), 422, "invalid_input")
    assert_error(await http.post(f"/v1/rooms/{rid}/ask", json={"text": "x" * 501}), 422, "invalid_input")
    assert_error(await http.post(f"/v1/rooms/{rid}/speak", json={"text": "x" * 2001}), 422, "invalid_input")
    assert bridge.sim.state.rooms[(await http.get(f"/v1/rooms/{rid}")).json()["channel"]].commands == []
    # the room is unharmed
    assert (await http.post(f"/v1/rooms/{rid}/speak", json={"text": "still here"})).status_code == 200


async def test_default_expire_and_avatar(bridge_factory):
    bridge = await bridge_factory(default_expire_seconds=120)
    r = await bridge.http.post("/v1/rooms")  # no body at all
    assert r.status_code == 201, r.text
    room = r.json()
    assert room["expire_seconds"] == 120
    upstream = bridge.sim.state.rooms[room["channel"]]
    assert upstream.avatar_id == room["avatar_id"]
    assert abs(upstream.expires_at - room["expires_at_epoch"]) < 1.5
    r = await bridge.http.post("/v1/rooms", json={"avatar_id": "68af59a86eeedd0042ca7e28"})
    assert r.status_code == 201 and r.json()["avatar_id"] == "68af59a86eeedd0042ca7e28"
    # an avatar A2E does not offer: refused by name before any record or charge
    r = await bridge.http.post("/v1/rooms", json={"avatar_id": "nope"})
    assert assert_error(r, 404, "not_found")["details"][0]["loc"] == ["avatar_id"]
    states = sorted(x["state"] for x in (await bridge.http.get("/v1/rooms")).json()["rooms"])
    assert states == ["open", "open"]
    assert bridge.sim.state.counters.get("agora_token") == 2


async def test_ended_rooms_are_purged_after_the_retention_period(bridge_factory):
    bridge = await bridge_factory(retention_days=1)
    old = (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60})).json()
    await bridge.http.delete(f"/v1/rooms/{old['id']}")
    live = (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60})).json()
    assert await bridge.rooms.sweeper.purge() == 0  # ended just now: kept
    assert await bridge.rooms.sweeper.purge(now=time.time() + 86_400 + 60) == 1  # a day later: gone
    assert (await bridge.http.get(f"/v1/rooms/{old['id']}")).status_code == 404
    assert (await bridge.http.get(f"/v1/rooms/{live['id']}")).json()["state"] == "open"  # live rooms stay
