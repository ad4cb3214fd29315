"""The HTTP surface: health, avatars, room views, tickets, SSE, and one error shape for everything.

The bridge runs in-process; the websocket and SSE tests put it on a real socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.helpers import add_fault, assert_error, clear_faults, create_room, poll

pytestmark = pytest.mark.in_process


async def test_health_and_readiness(bridge_factory):
    bridge = await bridge_factory(ready_cache_seconds=0)  # every probe asks A2E (the cache: test_security_api)
    r = await bridge.http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await bridge.http.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["checks"]["store"] is True and r.json()["checks"]["a2e"] is True
    add_fault(bridge.sim, endpoint="remaining_coins", kind="http_500")
    r = await bridge.http.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    assert r.json()["checks"]["a2e"] is False
    clear_faults(bridge.sim)
    assert (await bridge.http.get("/readyz")).status_code == 200


async def test_avatars(bridge_factory):
    bridge = await bridge_factory()
    r = await bridge.http.get("/v1/avatars")
    assert r.status_code == 200
    ids = [a["_id"] for a in r.json()["avatars"]]
    assert len(ids) == 3 and all(isinstance(i, str) for i in ids)
    add_fault(bridge.sim, endpoint="streaming_avatars", kind="http_500")
    r = assert_error(await bridge.http.get("/v1/avatars"), 503, "upstream_unavailable")
    assert "test-key" not in json.dumps(r)  # the A2E key never reaches a client


async def test_room_view_and_listing_order(bridge_factory):
    bridge = await bridge_factory()
    first = await create_room(bridge, expire_seconds=60)
    second = await create_room(bridge, expire_seconds=60)
    netloc = bridge.url.split("://", 1)[1]
    assert second["ws_url"] == f"ws://{netloc}/v1/rooms/{second['id']}/ws"
    assert second["events_url"] == f"http://{netloc}/v1/rooms/{second['id']}/events"
    assert second["ws_ticket_expires_in"] > 0
    assert second["expires_at"].endswith("Z") and second["created_at"].endswith("Z")
    assert isinstance(second["uid"], int) and second["uid"] > 0
    assert second["expires_at_epoch"] > second["created_at_epoch"]
    listed = (await bridge.http.get("/v1/rooms")).json()["rooms"]
    assert [r["id"] for r in listed] == [second["id"], first["id"]]  # newest first
    await bridge.http.delete(f"/v1/rooms/{first['id']}")
    live = (await bridge.http.get("/v1/rooms?state=live")).json()["rooms"]
    assert [r["id"] for r in live] == [second["id"]]


@pytest.mark.real_server
async def test_tickets_open_the_websocket(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/tickets")
    assert r.status_code == 201
    ticket = r.json()
    assert set(ticket) == {"ws_ticket", "ws_ticket_expires_in", "ws_url"}
    async with websockets.connect(f"{ticket['ws_url']}?ticket={ticket['ws_ticket']}") as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "room" and hello["room"]["id"] == room["id"]
        await ws.send(json.dumps({"type": "speak", "id": "a", "text": "From the websocket."}))
        while (frame := json.loads(await ws.recv()))["type"] != "ack":
            pass
        assert frame["id"] == "a" and frame["position"] == 1
    # a ticket for one room does not open another
    other = await create_room(bridge)
    async with websockets.connect(f"{other['ws_url']}?ticket={ticket['ws_ticket']}") as ws:
        with_close = None
        try:
            await ws.recv()
        except websockets.ConnectionClosed as exc:
            with_close = exc.rcvd.code if exc.rcvd else None
        assert with_close == 4401


@pytest.mark.real_server  # httpx's ASGITransport buffers whole responses: no streaming
async def test_server_sent_events(bridge_factory):
    bridge = await bridge_factory()
    room = await create_room(bridge)
    rid = room["id"]
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async with bridge.http.stream("GET", f"/v1/rooms/{rid}/events?last_event_id=0") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    if seen[-1]["type"] == "room_closed":
                        return

    reader = asyncio.create_task(read())
    await poll(lambda: seen, what="the first event")
    assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Streamed."})).status_code == 200
    await bridge.http.delete(f"/v1/rooms/{rid}")
    await asyncio.wait_for(reader, 10)
    types = [e["type"] for e in seen]
    assert types[0] == "room" and types[-1] == "room_closed"
    assert [{k: e[k] for k in ("kind", "seq", "text")} for e in seen if e["type"] == "command"] == [
        {"kind": "speak", "seq": 1, "text": "Streamed."}]
    assert seen[-1]["reason"] == "client"


async def test_error_bodies_share_one_shape(bridge_factory):
    bridge = await bridge_factory(api_keys={"k1": "acme"}, queue_size=1, a2e_timeout=10)
    http = bridge.http
    auth = {"Authorization": "Bearer k1"}
    assert_error(await http.get("/v1/rooms"), 401, "unauthorized")
    assert_error(await http.post("/v1/rooms", content=b"[", headers={**auth, "content-type": "application/json"}),
                 400, "bad_request")
    assert_error(await http.post("/v1/rooms", json={"expire_seconds": 1}, headers=auth), 422, "invalid_input")
    assert_error(await http.get("/v1/rooms/rm_x", headers=auth), 404, "not_found")
    assert_error(await http.put("/v1/rooms", headers=auth), 405, "method_not_allowed")
    assert_error(await http.post("/v1/rooms", json={"expire_seconds": 99_999}, headers=auth), 422, "invalid_input")
    rid = (await create_room(bridge, auth))["id"]

    add_fault(bridge.sim, endpoint="speak", kind="timeout", seconds=2, times=1)
    stalled = asyncio.create_task(http.post(f"/v1/rooms/{rid}/speak", json={"text": "a"}, headers=auth))
    queue = bridge.rooms.relay.queues[rid]
    await poll(lambda: queue.in_flight is not None)
    waiting = asyncio.create_task(http.post(f"/v1/rooms/{rid}/speak", json={"text": "b"}, headers=auth))
    await poll(lambda: queue.pending >= 1)
    assert_error(await http.post(f"/v1/rooms/{rid}/speak", json={"text": "c"}, headers=auth), 429, "queue_full")
    await http.post(f"/v1/rooms/{rid}/flush", headers=auth)
    assert_error(await waiting, 409, "flushed")
    r = assert_error(await stalled, 503, "upstream_unavailable")
    assert r["details"]["a2e_code"] == 504

    add_fault(bridge.sim, endpoint="agora_token", kind="code_1001", times=1)
    r = await http.post("/v1/rooms", json={}, headers=auth)
    assert_error(r, 503, "no_avatar_host")
    assert int(r.headers["retry-after"]) > 0
    # an avatar A2E does not offer: the caller's mistake, named, before anything is minted
    error = assert_error(await http.post("/v1/rooms", json={"avatar_id": "unknown"}, headers=auth), 404, "not_found")
    assert error["details"][0]["loc"] == ["avatar_id"]
    await http.delete(f"/v1/rooms/{rid}", headers=auth)
    assert_error(await http.post(f"/v1/rooms/{rid}/ask", json={"text": "?"}, headers=auth), 409, "room_not_open")
