"""Publishable browser keys (``BRIDGE_BROWSER_KEYS``, ``pk_…``): open a room, use it, end it; never list
rooms, use the pass-through, touch another key's rooms, or go past their own caps. In-process (httpx)
unless the websocket is what is tested."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.app import create_app
from bridge.http.auth import Authenticator
from bridge.settings import Settings
from tests.helpers import ACME, KEYS, Bridge, FakeClock, assert_error, create_room, open_ws, recv, send, until

pytestmark = pytest.mark.in_process

SHOP = "https://shop.example"
PK1 = {"Authorization": "Bearer pk_acme_one", "Origin": SHOP}
PK2 = {"Authorization": "Bearer pk_acme_two", "Origin": SHOP}
BROWSER_KEYS = {"pk_acme_one": "acme", "pk_acme_two": "acme"}


async def start(bridge_factory: Any, **overrides: Any) -> Bridge:
    settings: dict[str, Any] = {"api_keys": KEYS, "browser_keys": BROWSER_KEYS, "allowed_origins": [SHOP],
                                "browser_key_max_rooms": 2, "browser_key_max_expire_seconds": 120,
                                "browser_key_rooms_per_hour": 5, "browser_key_qa_context_chars": 50, **overrides}
    bridge: Bridge = await bridge_factory(**settings)
    return bridge


def mints(bridge: Bridge) -> int:
    return int(bridge.sim.state.snapshot()["calls"].get("agora_token", 0))


async def test_a_browser_key_opens_uses_and_ends_its_room(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    room = await create_room(bridge, PK1, qa_context="We open at 9am.")
    assert room["expire_seconds"] == 120  # its own longest room is the default's cap
    rid = room["id"]
    assert (await bridge.http.get(f"/v1/rooms/{rid}", headers=PK1)).status_code == 200
    speak = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Welcome!"}, headers=PK1)
    assert speak.status_code == 200, speak.text
    assert (await bridge.http.put(f"/v1/rooms/{rid}/qa-context", json={"text": "Closed on Mondays."},
                                  headers=PK1)).status_code == 200
    ticket = await bridge.http.post(f"/v1/rooms/{rid}/tickets", headers=PK1)
    assert ticket.status_code == 201 and ticket.json()["ws_ticket"]
    ended = await bridge.http.delete(f"/v1/rooms/{rid}", headers=PK1)
    assert ended.status_code == 200 and ended.json()["state"] in ("closing", "closed")
    # the tenant's backend, with its secret key, may act on the rooms its browser keys opened
    assert (await bridge.http.get(f"/v1/rooms/{rid}", headers=ACME)).status_code == 200


async def test_a_browser_key_cannot_list_rooms_nor_use_the_pass_through(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory, passthrough_tenants=["acme"])
    await create_room(bridge, PK1)
    assert_error(await bridge.http.get("/v1/rooms", headers=PK1), 403, "forbidden")
    assert_error(await bridge.http.get("/v1/rooms?state=live", headers=PK1), 403, "forbidden")
    assert_error(await bridge.http.get("/v1/a2e", headers=PK1), 403, "forbidden")
    calls = dict(bridge.sim.state.snapshot()["calls"])
    assert_error(await bridge.http.post("/v1/a2e/voice_list", json={}, headers=PK1), 403, "forbidden")
    assert dict(bridge.sim.state.snapshot()["calls"]) == calls
    # the same tenant's secret key may do both
    assert (await bridge.http.get("/v1/rooms", headers=ACME)).status_code == 200
    assert (await bridge.http.get("/v1/a2e", headers=ACME)).status_code == 200


async def test_a_browser_key_cannot_read_the_tenants_records(bridge_factory: Any) -> None:
    """Transcripts, usage, webhook deliveries and the operator's room list are the tenant's, even of the
    key's own room: a key that sits in a page reads none of them."""
    bridge = await start(bridge_factory)
    own = await create_room(bridge, PK1)
    backend_room = await create_room(bridge, ACME)
    for path in (f"/v1/rooms/{own['id']}/transcript", f"/v1/rooms/{backend_room['id']}/transcript", "/v1/usage",
                 "/v1/webhooks/deliveries", "/v1/operator/rooms"):
        assert_error(await bridge.http.get(path, headers=PK1), 403, "forbidden")
        assert (await bridge.http.get(path, headers=ACME)).status_code == 200, path
    assert_error(await bridge.http.delete(f"/v1/rooms/{backend_room['id']}/transcript", headers=PK1), 403, "forbidden")


async def test_a_browser_key_only_reaches_the_rooms_it_opened(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    backend_room = await create_room(bridge, ACME)
    other_key_room = await create_room(bridge, PK2)
    for room in (backend_room, other_key_room):
        rid = room["id"]
        assert_error(await bridge.http.get(f"/v1/rooms/{rid}", headers=PK1), 404, "not_found")
        assert_error(await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Hi."}, headers=PK1),
                     404, "not_found")
        assert_error(await bridge.http.post(f"/v1/rooms/{rid}/tickets", headers=PK1), 404, "not_found")
        assert_error(await bridge.http.delete(f"/v1/rooms/{rid}", headers=PK1), 404, "not_found")
        assert (await bridge.http.get(f"/v1/rooms/{rid}", headers=ACME)).json()["state"] == "open"


async def test_a_browser_key_is_bound_to_its_tenants_origins(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory, tenant_limits={"globex": {"allowed_origins": ["https://globex.example"]}})
    before = mints(bridge)
    key = {"Authorization": PK1["Authorization"]}
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers=key), 403, "origin_not_allowed")  # no Origin
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers={**key, "Origin": "https://evil.example"}),
                 403, "origin_not_allowed")
    # listed, but for another tenant
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers={**key, "Origin": "https://globex.example"}),
                 403, "origin_not_allowed")
    assert mints(bridge) == before
    # a page on the bridge's own origin: same-origin GETs carry no Origin, but say so in Sec-Fetch-Site
    room = await create_room(bridge, {**key, "Origin": bridge.url})
    own = await bridge.http.get(f"/v1/rooms/{room['id']}", headers={**key, "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200


async def test_rooms_at_once_and_longest_room_per_key(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    first = await create_room(bridge, PK1)
    await create_room(bridge, PK1)
    before = mints(bridge)
    error = assert_error(await bridge.http.post("/v1/rooms", json={}, headers=PK1), 429, "cap_exceeded")
    assert error["details"] == {"cap": "browser_key_rooms"}
    error = assert_error(await bridge.http.post("/v1/rooms", json={"expire_seconds": 121}, headers=PK2),
                         429, "cap_exceeded")
    assert error["details"] == {"cap": "expire_seconds"}
    assert mints(bridge) == before  # refused before A2E was asked
    await create_room(bridge, PK2)  # caps are per key: the other key has its own
    await create_room(bridge, ACME, expire_seconds=600)  # and the tenant's secret key is not bound by them
    await bridge.http.delete(f"/v1/rooms/{first['id']}", headers=PK1)
    await create_room(bridge, PK1)  # a room ended gives its slot back


async def test_rooms_per_hour_per_key(bridge_factory: Any) -> None:
    clock = FakeClock()
    bridge = await start(bridge_factory, clock=clock, browser_key_max_rooms=10, browser_key_rooms_per_hour=3)
    for _ in range(3):
        room = await create_room(bridge, PK1, expire_seconds=60)
        await bridge.http.delete(f"/v1/rooms/{room['id']}", headers=PK1)
        clock.advance(100)
    refused = await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=PK1)
    error = assert_error(refused, 429, "cap_exceeded")
    assert error["details"] == {"cap": "browser_key_rooms_per_hour"}
    assert int(refused.headers["Retry-After"]) == 3600 - 300
    await create_room(bridge, PK2, expire_seconds=60)  # per key
    clock.advance(3600 - 300 + 1)  # the first of the three is an hour old
    await create_room(bridge, PK1, expire_seconds=60)


async def test_qa_context_beyond_the_tenants_length(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    long = "x" * 51
    error = assert_error(await bridge.http.post("/v1/rooms", json={"qa_context": long}, headers=PK1), 403, "forbidden")
    assert error["details"] == {"limit": 50, "length": 51}
    room = await create_room(bridge, PK1, qa_context="y" * 50)
    assert_error(await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", json={"text": long}, headers=PK1),
                 403, "forbidden")
    assert (await bridge.http.get(f"/v1/rooms/{room['id']}/qa-context", headers=PK1)).json()["chars"] == 50
    # the tenant's backend is not bound by it
    assert (await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", json={"text": long},
                                  headers=ACME)).status_code == 200
    # per tenant: 0 forbids QA context to the tenant's browser keys
    bridge = await start(bridge_factory, tenant_limits={"acme": {"browser_key_qa_context_chars": 0}})
    assert_error(await bridge.http.post("/v1/rooms", json={"qa_context": "a"}, headers=PK1), 403, "forbidden")


@pytest.mark.real_server
async def test_a_browser_keys_ticket_keeps_its_limits_on_the_websocket(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    room = await create_room(bridge, PK1, forward_events=True)
    ws = await open_ws(bridge, room["id"], headers=None, ticket=room["ws_ticket"], origin=SHOP)
    assert (await recv(ws))["type"] == "room"
    await send(ws, {"type": "set_qa_context", "id": "long", "text": "z" * 51})
    error = await until(ws, lambda f: f.get("id") == "long")
    assert error["type"] == "error" and error["code"] == "forbidden"
    await send(ws, {"type": "set_qa_context", "id": "short", "text": "z" * 50})
    assert (await until(ws, lambda f: f.get("id") == "short"))["type"] == "ack"
    await ws.close()
    # a key from a page sends no headers on a websocket: a browser key there goes through tickets only
    theirs = await create_room(bridge, ACME)
    ticket = (await bridge.http.post(f"/v1/rooms/{theirs['id']}/tickets", headers=ACME)).json()["ws_ticket"]
    ws = await open_ws(bridge, theirs["id"], headers=None, ticket=ticket, origin=SHOP)
    await send(ws, {"type": "set_qa_context", "id": "long", "text": "z" * 51})
    assert (await until(ws, lambda f: f.get("id") == "long"))["type"] == "ack"  # a backend's ticket: no such limit
    await ws.close()


def test_browser_tickets_keep_their_scope_when_renewed() -> None:
    auth = Authenticator({"k": "acme"}, dev_mode=False, ticket_ttl=60, browser_keys={"pk_x": "acme"})
    for forward in (False, True):
        ticket = auth.issue_ticket("rm_1", "acme", now=1000, forward=forward, browser=True)
        caller = auth.check_ticket(ticket, "rm_1", now=1001)
        assert caller.browser and caller.forward is forward
        renewed = auth.renew_ticket(caller, "rm_1", now=1030)
        assert renewed is not None
        again = auth.check_ticket(renewed[0], "rm_1", now=1031)
        assert again.browser and again.forward is forward
    assert not auth.check_ticket(auth.issue_ticket("rm_1", "acme", now=1000), "rm_1", now=1001).browser


def test_browser_key_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_BROWSER_KEYS", "acme:pk_live_1, globex:pk_live_2")
    monkeypatch.setenv("BRIDGE_TENANT_LIMITS", json.dumps({"acme": {"browser_key_max_rooms": 1,
                                                                    "browser_key_rooms_per_hour": 4}}))
    s = Settings(_env_file=None)
    assert s.browser_keys == {"pk_live_1": "acme", "pk_live_2": "globex"}
    assert s.limits_for("acme").browser_key_max_rooms == 1 and s.limits_for("acme").browser_key_rooms_per_hour == 4
    assert s.limits_for("globex").browser_key_max_rooms == s.browser_key_max_rooms
    assert not s.dev_mode  # browser keys alone end development mode
    with pytest.raises(ValidationError, match="pk_"):
        Settings(_env_file=None, browser_keys="acme:sk_secret")
    with pytest.raises(ValidationError, match="both"):
        Settings(_env_file=None, api_keys="acme:pk_same", browser_keys="acme:pk_same")
    # a real A2E key with browser keys only (a frontend-only deployment) is a safe service
    create_app(Settings(_env_file=None, a2e_api_key="sk_real", browser_keys="acme:pk_1", allowed_origins=SHOP))
