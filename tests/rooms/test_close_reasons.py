"""Every way a room ends, each recorded with its close reason, and each one leaving A2E."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.a2e.client import A2EClient
from bridge.app import create_app
from bridge.rooms.models import CloseReason, Room, RoomState
from bridge.serving import EmbeddedServer
from bridge.simulator.faults import FaultSpec
from bridge.simulator.state import AVATARS
from bridge.store.sqlite import SqliteRoomStore
from tests.helpers import FakeClock, bridge_settings, poll
from tests.helpers import create_room as create

AVATAR = AVATARS[0]["_id"]


async def closed(http: httpx.AsyncClient, rid: str) -> dict[str, Any] | None:
    room = (await http.get(f"/v1/rooms/{rid}")).json()
    return room if room["state"] == "closed" else None


async def stored_rooms(path) -> list[Room]:
    store = SqliteRoomStore(path)
    await store.open()
    try:
        return await store.list_rooms()
    finally:
        await store.close()


async def test_client_close(bridge_factory):
    bridge = await bridge_factory()
    room = await create(bridge.http)
    r = await bridge.http.delete(f"/v1/rooms/{room['id']}")
    assert r.json()["state"] == "closed" and r.json()["close_reason"] == "client"
    assert bridge.sim.state.rooms[room["channel"]].status == "left"


async def test_idle_close_only_without_clients(bridge_factory):
    clock = FakeClock()
    bridge = await bridge_factory(idle_timeout=60, clock=clock)
    idle = await create(bridge.http)
    watched = await create(bridge.http)
    url = f"{watched['ws_url']}?ticket={watched['ws_ticket']}"
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "room"
        clock.advance(120)  # twice the idle timeout
        room = await poll(lambda: closed(bridge.http, idle["id"]))
        assert room["close_reason"] == "idle"
        assert bridge.sim.state.rooms[idle["channel"]].status == "left"
        await bridge.rooms.sweeper.sweep()  # one more whole pass at this time: a room with a client is not idle
        assert (await bridge.http.get(f"/v1/rooms/{watched['id']}")).json()["state"] == "open"
    await poll(lambda: bridge.rooms.registry.live[watched["id"]].clients == 0, what="the websocket detached")
    clock.advance(60)
    room = await poll(lambda: closed(bridge.http, watched["id"]))
    assert room["close_reason"] == "idle"
    assert bridge.sim.state.rooms[watched["channel"]].status == "left"


async def test_activity_keeps_a_room_from_idling(bridge_factory):
    clock = FakeClock()
    bridge = await bridge_factory(idle_timeout=60, clock=clock)
    room = await create(bridge.http)
    for i in range(6):  # 90 s of activity, more than the idle timeout
        r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": f"still talking {i}"})
        assert r.status_code == 200, r.text
        clock.advance(15)
        await bridge.rooms.sweeper.sweep()  # a whole pass 15 s after the last command
    clock.advance(45)
    closed_room = await poll(lambda: closed(bridge.http, room["id"]))
    assert closed_room["close_reason"] == "idle"


async def test_expiry_close(bridge_factory):
    clock = FakeClock()
    bridge = await bridge_factory(leave_before_expiry=9, clock=clock)
    room = await create(bridge.http, expire_seconds=10)
    clock.advance(2)  # within leave_before_expiry of the end, well before A2E's own expiry
    closed_room = await poll(lambda: closed(bridge.http, room["id"]))
    assert closed_room["close_reason"] == "expiry"
    upstream = bridge.sim.state.rooms[room["channel"]]
    assert upstream.status == "left"  # left before A2E expired it
    assert upstream.left_at < upstream.expires_at


async def test_a_room_that_would_expire_at_once_is_refused(bridge_factory):
    bridge = await bridge_factory(leave_before_expiry=15)
    r = await bridge.http.post("/v1/rooms", json={"expire_seconds": 15})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", r.text
    # the schema says so (expire_seconds minimum 16), and the body is refused by it, naming the field
    [problem] = r.json()["error"]["details"]
    assert problem["loc"] == ["expire_seconds"] and "16" in problem["msg"]
    assert bridge.sim.state.rooms == {} and "agora_token" not in bridge.sim.state.counters
    assert (await create(bridge.http, expire_seconds=16))["state"] == "open"


async def test_upstream_gone(bridge_factory):
    bridge = await bridge_factory()
    room = await create(bridge.http)
    bridge.sim.state.leave(room["channel"])  # A2E forgets the channel behind the bridge's back
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "anyone there?"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "room_not_open", r.text
    closed_room = await poll(lambda: closed(bridge.http, room["id"]))
    assert closed_room["close_reason"] == "upstream_gone"
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "again?"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "room_not_open"


async def test_upstream_gone_on_qa_context(bridge_factory):
    bridge = await bridge_factory()
    room = await create(bridge.http)
    bridge.sim.state.leave(room["channel"])
    r = await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", json={"text": "context"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "room_not_open", r.text
    closed_room = await poll(lambda: closed(bridge.http, room["id"]))
    assert closed_room["close_reason"] == "upstream_gone"


async def test_error_when_qa_context_fails_at_create(bridge_factory):
    bridge = await bridge_factory()
    r = await bridge.http.post(bridge.sim.url + "/_sim/faults", json={"endpoint": "set_qa_context",
                                                                       "kind": "http_500"})
    assert r.status_code == 201
    r = await bridge.http.post("/v1/rooms", json={"qa_context": "the facts"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable", r.text
    assert "Retry-After" in r.headers

    async def the_room() -> dict[str, Any] | None:
        rooms = (await bridge.http.get("/v1/rooms")).json()["rooms"]
        return rooms[0] if rooms and rooms[0]["state"] == "closed" else None

    room = await poll(the_room)
    assert room["close_reason"] == "error"
    assert bridge.sim.state.rooms[room["channel"]].status == "left"  # minted, so given back


async def test_shutdown_leaves_every_room(tmp_path, sim):
    settings = bridge_settings(tmp_path)
    client = A2EClient("test-key", sim.url, timeout=2.0, backoff_max=0.05)
    server = EmbeddedServer.for_app(create_app(settings, a2e=client))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            rooms = [await create(http) for _ in range(3)]
            await http.delete(f"/v1/rooms/{rooms[0]['id']}")
    finally:
        await server.stop()
        await client.aclose()
    assert all(sim.state.rooms[r["channel"]].status == "left" for r in rooms)
    stored = {r.id: r for r in await stored_rooms(settings.db)}
    assert stored[rooms[0]["id"]].close_reason is CloseReason.CLIENT
    for r in rooms[1:]:
        assert stored[r["id"]].state is RoomState.CLOSED
        assert stored[r["id"]].close_reason is CloseReason.SHUTDOWN


async def test_recovery_at_start(tmp_path, sim, bridge_factory):
    """Records a crashed bridge left behind: each is resumed, given back, or marked failed."""
    settings = bridge_settings(tmp_path)
    now = time.time()

    def minted(expire: int, state: RoomState, **fields: Any) -> Room:
        token = sim.state.mint(AVATAR, expire)
        room = Room.new(tenant="dev", avatar_id=AVATAR, expire_seconds=expire, now=now)
        room.channel, room.token, room.uid = token["channel"], token["token"], token["uid"]
        room.expires_at = float(token["expire_epoch_timestamp"])
        room.state = state
        for k, v in fields.items():
            setattr(room, k, v)
        return room

    resumed = minted(600, RoomState.OPEN)
    near_expiry = minted(8, RoomState.OPEN)  # within leave_before_expiry of its end: left at once
    closing = minted(600, RoomState.CLOSING, close_reason=CloseReason.CLIENT)  # the leave never finished
    creating = minted(600, RoomState.CREATING)  # A2E answered, the bridge died before saving 'open'
    unminted = Room.new(tenant="dev", avatar_id=AVATAR, expire_seconds=600, now=now)  # died while minting
    unminted_closing = Room.new(tenant="dev", avatar_id=AVATAR, expire_seconds=600, now=now)
    unminted_closing.transition(RoomState.CLOSING, reason=CloseReason.CLIENT, now=now)  # deleted while minting
    store = SqliteRoomStore(settings.db)
    await store.open()
    for room in (resumed, near_expiry, closing, creating, unminted, unminted_closing):
        await store.put(room)
    await store.close()

    bridge = await bridge_factory(leave_before_expiry=10)
    http = bridge.http
    live = {r["id"] for r in (await http.get("/v1/rooms", params={"state": "live"})).json()["rooms"]}
    assert resumed.id in live and creating.id in live

    async def settled() -> dict[str, dict[str, Any]] | None:
        rooms = {r["id"]: r for r in (await http.get("/v1/rooms")).json()["rooms"]}
        busy = [r for r in rooms.values() if r["state"] == "closing"]
        return None if busy else rooms

    rooms = await poll(settled)
    assert rooms[resumed.id]["state"] == "open"
    assert rooms[creating.id]["state"] == "open"  # it was minted: resumed, its channel is known
    assert (rooms[near_expiry.id]["state"], rooms[near_expiry.id]["close_reason"]) == ("closed", "recovery")
    assert (rooms[closing.id]["state"], rooms[closing.id]["close_reason"]) == ("closed", "client")
    assert (rooms[unminted.id]["state"], rooms[unminted.id]["close_reason"]) == ("failed", "recovery")
    assert (rooms[unminted_closing.id]["state"], rooms[unminted_closing.id]["close_reason"]) == ("closed", "client")
    assert set(bridge.rooms.registry.live) == {resumed.id, creating.id}  # nothing stuck in memory
    assert sim.state.rooms[near_expiry.channel].status == "left"
    assert sim.state.rooms[closing.channel].status == "left"
    assert sim.state.rooms[resumed.channel].status == "open"
    # a resumed room works as before
    r = await http.post(f"/v1/rooms/{resumed.id}/speak", json={"text": "back again"})
    assert r.status_code == 200, r.text
    r = await http.delete(f"/v1/rooms/{resumed.id}")
    assert r.json()["state"] == "closed" and sim.state.rooms[resumed.channel].status == "left"


class SlowMintProxy:
    """A2E as seen through a slow network: agora-token requests wait for ``release`` before they are
    forwarded to the simulator. Everything else passes straight through."""

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.mint_arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.upstream = httpx.AsyncClient(base_url=sim_url, timeout=10)

        async def forward(request: Request) -> Response:
            if request.url.path.endswith("/agora-token"):
                self.mint_arrived.set()
                await self.release.wait()
            reply = await self.upstream.request(request.method, request.url.path, params=request.query_params,
                                                content=await request.body(),
                                                headers={k: v for k, v in request.headers.items()
                                                         if k.lower() in ("authorization", "content-type")})
            return Response(reply.content, status_code=reply.status_code,
                            media_type=reply.headers.get("content-type"))

        self.app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])
        self.server = EmbeddedServer.for_app(self.app)

    async def __aenter__(self) -> str:
        return await self.server.start()

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.server.stop()
        await self.upstream.aclose()


async def start_bridge_via(url: str, tmp_path, **overrides: Any):
    settings = bridge_settings(tmp_path, **overrides)
    client = A2EClient("test-key", url, timeout=10, backoff_max=0.05)
    server = EmbeddedServer.for_app(create_app(settings, a2e=client))
    base = await server.start()

    async def stop() -> None:
        await server.stop()
        await client.aclose()

    return base, stop


async def test_closed_while_minting(tmp_path, sim):
    """DELETE of a room A2E is still minting: once the channel is known, it is given back."""
    proxy = SlowMintProxy(sim.url)
    async with proxy as proxy_url:
        base, stop = await start_bridge_via(proxy_url, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                creating = asyncio.create_task(http.post("/v1/rooms", json={"expire_seconds": 600}))
                await asyncio.wait_for(proxy.mint_arrived.wait(), 10)
                [room] = (await http.get("/v1/rooms")).json()["rooms"]
                assert room["state"] == "creating"
                r = await http.delete(f"/v1/rooms/{room['id']}")
                assert r.status_code == 200 and r.json()["state"] == "closing", r.text
                proxy.release.set()
                r = await creating
                assert r.status_code == 409 and r.json()["error"]["code"] == "room_not_open", r.text
                final = await poll(lambda: closed(http, room["id"]))
                assert final["close_reason"] == "client" and final["channel"]
                assert sim.state.rooms[final["channel"]].status == "left"
        finally:
            await stop()


async def test_closed_while_a_failing_mint_is_in_flight(tmp_path, sim):
    """DELETE while A2E is minting, and then the mint fails: nothing to leave, the room just ends."""
    sim.app.state.sim_faults.add(FaultSpec(endpoint="agora_token", kind="code_1001"))
    proxy = SlowMintProxy(sim.url)
    async with proxy as proxy_url:
        base, stop = await start_bridge_via(proxy_url, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                creating = asyncio.create_task(http.post("/v1/rooms", json={}))
                await asyncio.wait_for(proxy.mint_arrived.wait(), 10)
                [room] = (await http.get("/v1/rooms")).json()["rooms"]
                r = await http.delete(f"/v1/rooms/{room['id']}")
                assert r.status_code == 200, r.text
                proxy.release.set()
                r = await creating
                assert r.status_code == 503 and r.json()["error"]["code"] == "no_avatar_host", r.text
                final = await poll(lambda: closed(http, room["id"]))
                assert final["close_reason"] == "client" and not final["channel"]
                assert (await http.get("/v1/rooms", params={"state": "live"})).json()["rooms"] == []
                assert sim.state.rooms == {}
        finally:
            await stop()
