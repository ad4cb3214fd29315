"""The origin allowlist (``BRIDGE_ALLOWED_ORIGINS``, per tenant ``allowed_origins``) at every door:
CORS preflights, REST, SSE and the websocket handshake, over real sockets (uvicorn on loopback).

acme uses the deployment's list (shop.example); globex has its own (globex.example), which replaces it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus

from bridge.settings import Settings
from tests.helpers import ACME, GLOBEX, KEYS, WAIT, Bridge, assert_error, create_room, open_ws, recv

SHOP = "https://shop.example"
GLOBEX_SITE = "https://globex.example"
EVIL = "https://evil.example"


async def start(bridge_factory: Any, **overrides: Any) -> Bridge:
    settings = {"api_keys": KEYS, "allowed_origins": [SHOP],
                "tenant_limits": {"globex": {"allowed_origins": [GLOBEX_SITE]}}, **overrides}
    bridge: Bridge = await bridge_factory(**settings)
    return bridge


def mints(bridge: Bridge) -> int:
    return int(bridge.sim.state.snapshot()["calls"].get("agora_token", 0))


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge.origins"]


async def preflight(http: httpx.AsyncClient, origin: str, path: str = "/v1/rooms") -> httpx.Response:
    return await http.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization,content-type"})


async def test_preflights_are_answered_for_listed_origins_only(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory)
    for origin in (SHOP, GLOBEX_SITE):  # every tenant's origins: the preflight carries no key
        ok = await preflight(bridge.http, origin)
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == origin
        allowed = {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        assert "access-control-allow-credentials" not in ok.headers  # never: the bridge uses no cookies
        assert "x-request-id" in ok.headers
    refused = await preflight(bridge.http, EVIL)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_rest_refuses_unlisted_origins_before_any_a2e_call(bridge_factory: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    bridge = await start(bridge_factory)
    before = mints(bridge)
    caplog.set_level(logging.WARNING, "bridge.origins")
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers={**ACME, "Origin": EVIL}),
                 403, "origin_not_allowed")
    # listed, but for acme only: globex's own list replaces the deployment's
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers={**GLOBEX, "Origin": SHOP}),
                 403, "origin_not_allowed")
    # no key at all from an unlisted origin: refused as an origin before the key is looked at
    assert_error(await bridge.http.post("/v1/rooms", content=b"{}", headers={"Origin": EVIL}), 403,
                 "origin_not_allowed")
    assert mints(bridge) == before
    assert len(refusals(caplog)) == 3  # each refusal logged once
    assert {r.origin for r in refusals(caplog)} == {EVIL, SHOP}  # type: ignore[attr-defined]

    ok = await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers={**ACME, "Origin": SHOP})
    assert ok.status_code == 201, ok.text
    assert ok.headers["access-control-allow-origin"] == SHOP
    exposed = {h.strip().lower() for h in ok.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed
    ok = await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers={**GLOBEX, "Origin": GLOBEX_SITE})
    assert ok.status_code == 201, ok.text


async def test_backends_and_the_bridges_own_pages_need_no_listing(bridge_factory: Any) -> None:
    bridge = await start(bridge_factory, allowed_origins=[])
    await create_room(bridge, ACME, expire_seconds=60)  # no Origin: not a web page
    await create_room(bridge, {**ACME, "Origin": bridge.url}, expire_seconds=60)  # the kiosk page's own origin
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers={**ACME, "Origin": SHOP}),
                 403, "origin_not_allowed")  # the default list is empty: cross-origin pages are refused


async def test_sse_refuses_unlisted_origins(bridge_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    bridge = await start(bridge_factory)
    room = await create_room(bridge, ACME, expire_seconds=60)
    caplog.set_level(logging.WARNING, "bridge.origins")
    url = f"/v1/rooms/{room['id']}/events"
    assert_error(await bridge.http.get(url, params={"ticket": room["ws_ticket"]}, headers={"Origin": EVIL}),
                 403, "origin_not_allowed")
    assert_error(await bridge.http.get(url, headers={**ACME, "Origin": GLOBEX_SITE}), 403, "origin_not_allowed")
    assert bridge.rooms.registry.clients.count("clients_per_room", room["id"]) == 0
    assert all(room["ws_ticket"] not in r.getMessage() for r in caplog.records)
    async with bridge.http.stream("GET", url, params={"ticket": room["ws_ticket"]},
                                  headers={"Origin": SHOP}) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == SHOP
        assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Hello."}, headers=ACME)).is_success

        async def first_command() -> dict[str, Any]:
            async for line in stream.aiter_lines():
                if line.startswith("data:") and json.loads(line[5:])["type"] == "command":
                    return dict(json.loads(line[5:]))
            raise AssertionError("the stream ended")

        assert (await asyncio.wait_for(first_command(), WAIT))["text"] == "Hello."


async def test_the_websocket_handshake_refuses_unlisted_origins(bridge_factory: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    bridge = await start(bridge_factory)
    room = await create_room(bridge, ACME, expire_seconds=60)
    theirs = await create_room(bridge, GLOBEX, expire_seconds=60)
    caplog.set_level(logging.WARNING, "bridge.origins")
    for room_, origin in ((room, EVIL), (theirs, SHOP)):  # unlisted; listed for another tenant only
        with pytest.raises(InvalidStatus) as refused:
            await open_ws(bridge, room_["id"], headers=None, ticket=room_["ws_ticket"], origin=origin)
        assert refused.value.response.status_code == 403  # refused before the socket is accepted
    assert len(refusals(caplog)) == 2
    assert all(r["ws_ticket"] not in rec.getMessage() for r in (room, theirs) for rec in caplog.records)

    ws = await open_ws(bridge, room["id"], headers=None, ticket=room["ws_ticket"], origin=SHOP)
    assert (await recv(ws))["type"] == "room"
    assert ws.response is not None and ws.response.headers["x-request-id"]
    await ws.close()
    ws = await open_ws(bridge, room["id"])  # a backend: key, no Origin
    assert (await recv(ws))["type"] == "room"
    await ws.close()


def test_origin_settings_are_checked() -> None:
    s = Settings(_env_file=None, allowed_origins="https://Shop.Example:443/, http://127.0.0.1:5173 http://[::1]:8080")
    assert s.allowed_origins == ["https://shop.example", "http://127.0.0.1:5173", "http://[::1]:8080"]
    for bad in ("*", "https://*.shop.example", "https://shop.example/app", "ftp://shop.example", "null", "shop.example"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, allowed_origins=bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None, tenant_limits={"acme": {"allowed_origins": [bad]}})
    s = Settings(_env_file=None, allowed_origins=[SHOP], tenant_limits={"globex": {"allowed_origins": [GLOBEX_SITE]}})
    assert s.limits_for("acme").allowed_origins == [SHOP]
    assert s.limits_for("globex").allowed_origins == [GLOBEX_SITE]
    assert s.every_allowed_origin() == [SHOP, GLOBEX_SITE]


def test_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_ALLOWED_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("BRIDGE_TENANT_LIMITS", json.dumps({"acme": {"allowed_origins": ["https://c.example"]}}))
    s = Settings(_env_file=None)
    assert s.allowed_origins == ["https://a.example", "https://b.example"]
    assert s.limits_for("acme").allowed_origins == ["https://c.example"]
