"""Abuse of the HTTP surface, reproduced against a real bridge on loopback and shown refused:
probes that would hammer A2E, open metrics, room-creation floods, unbounded listings and JSON
nested deep enough to blow the parser's stack (REST and websocket)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
import subprocess
from typing import Any

import httpx
import pytest

from bridge.settings import Settings
from tests.helpers import (
    ACME,
    GLOBEX,
    KEYS,
    ROOT,
    add_fault,
    assert_error,
    clear_faults,
    create_room,
    fault_hits,
    open_ws,
    ping_pong,
    poll,
    recv,
    send,
    until,
)


async def sim_calls(bridge: Any) -> dict[str, int]:
    """A2E calls the simulator answered, by operation (faulted requests are counted as fault hits)."""
    return (await bridge.http.get(bridge.sim.url + "/_sim/state")).json()["calls"]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


# -- /readyz: cached, one A2E call in flight ------------------------------------------------------
async def test_readyz_flood_shares_one_a2e_call(bridge_factory: Any) -> None:
    bridge = await bridge_factory()
    assert bridge.app.state.settings.ready_cache_seconds == 5  # the default
    before = (await sim_calls(bridge)).get("remaining_coins", 0)
    # A2E is slow (the first answer stalls half a second, then a retry succeeds): every probe of the
    # flood arrives while the one check is in flight.
    add_fault(bridge.sim, endpoint="remaining_coins", kind="timeout", seconds=0.5, times=1)
    answers = await asyncio.gather(*(bridge.http.get("/readyz") for _ in range(50)))
    assert [r.status_code for r in answers] == [200] * 50
    assert {r.json()["status"] for r in answers} == {"ready"}
    assert sum(fault_hits(bridge.sim)) == 1  # only one probe's check reached A2E while it stalled
    assert 1 <= (await sim_calls(bridge)).get("remaining_coins", 0) - before <= 2


async def test_readyz_caches_failures_too(bridge_factory: Any) -> None:
    """A2E failing is when a probe flood must not reach it: the failure is kept like a success."""
    bridge = await bridge_factory(ready_cache_seconds=60)
    add_fault(bridge.sim, endpoint="remaining_coins", kind="http_500")
    first = await bridge.http.get("/readyz")
    assert first.status_code == 503 and first.json()["checks"]["a2e"] is False
    hits = sum(fault_hits(bridge.sim))
    assert hits >= 1  # one check (with the client's retries)
    answers = await asyncio.gather(*(bridge.http.get("/readyz") for _ in range(30)))
    assert [r.status_code for r in answers] == [503] * 30
    assert sum(fault_hits(bridge.sim)) == hits  # none of them asked A2E again


async def test_readyz_reports_a_failure_once_the_cache_expires(bridge_factory: Any) -> None:
    bridge = await bridge_factory(ready_cache_seconds=0.2)
    assert (await bridge.http.get("/readyz")).status_code == 200
    add_fault(bridge.sim, endpoint="remaining_coins", kind="http_500")

    async def not_ready() -> httpx.Response | None:
        r = await bridge.http.get("/readyz")
        return r if r.status_code == 503 else None

    r = await poll(not_ready)
    assert r.json()["status"] == "not_ready"
    assert r.json()["checks"]["a2e"] is False and r.json()["checks"]["a2e_error"]
    assert r.json()["checks"]["store"] is True
    clear_faults(bridge.sim)
    await poll(lambda: _status_is(bridge, "/readyz", 200))


async def _status_is(bridge: Any, path: str, status: int) -> bool:
    return (await bridge.http.get(path)).status_code == status


# -- /metrics: optionally behind a token ----------------------------------------------------------
async def test_metrics_need_the_token_when_one_is_set(bridge_factory: Any) -> None:
    token = "metrics-token-0123456789"
    bridge = await bridge_factory(api_keys={"k1": "acme"}, metrics_token=token)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer k1"},  # a client key is not it
                    {"Authorization": token}, {"Authorization": f"Basic {token}"}):
        r = await bridge.http.get("/metrics", headers=headers)
        error = assert_error(r, 401, "unauthorized")
        assert token not in r.text and "a2e_bridge_" not in r.text
        assert r.headers["www-authenticate"] == "Bearer", error
    r = await bridge.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "a2e_bridge_rooms_live" in r.text
    assert r.headers["content-type"].startswith("text/plain")
    # the other routes are untouched: the client key works, the metrics token is no client key
    assert (await bridge.http.get("/v1/rooms", headers={"Authorization": "Bearer k1"})).status_code == 200
    assert_error(await bridge.http.get("/v1/rooms", headers={"Authorization": f"Bearer {token}"}),
                 401, "unauthorized")


@pytest.mark.parametrize("token", [None, ""])
async def test_metrics_are_open_without_a_token(bridge_factory: Any, token: str | None) -> None:
    bridge = await bridge_factory(api_keys={"k1": "acme"}, metrics_token=token)
    r = await bridge.http.get("/metrics")
    assert r.status_code == 200 and "a2e_bridge_rooms_live" in r.text


# -- room creation rate ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_room_creation_rate_is_capped_per_tenant_before_a2e(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), room_create_rate=6, room_create_burst=2,
                                  tenant_limits={"globex": {"room_create_burst": 3}})
    clock = Clock()
    bridge.rooms.lifecycle.caps.creation_rate.clock = clock
    for _ in range(2):
        await create_room(bridge, ACME)
    calls, coins = await sim_calls(bridge), bridge.sim.state.coins
    r = await bridge.http.post("/v1/rooms", json={}, headers=ACME)
    error = assert_error(r, 429, "cap_exceeded")
    assert error["details"]["cap"] == "creation_rate"
    assert r.headers["retry-after"] == "10"  # 6 per minute: one every 10 s
    assert await sim_calls(bridge) == calls and bridge.sim.state.coins == coins  # A2E never asked
    # another tenant has its own bucket (and its own burst)
    for _ in range(3):
        await create_room(bridge, GLOBEX)
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers=GLOBEX), 429, "cap_exceeded")
    # time refills the bucket: one token after 10 s, not two
    clock.now += 9
    r = await bridge.http.post("/v1/rooms", json={}, headers=ACME)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    clock.now += 1
    await create_room(bridge, ACME)
    assert_error(await bridge.http.post("/v1/rooms", json={}, headers=ACME), 429, "cap_exceeded")
    listed = (await bridge.http.get("/v1/rooms", headers=ACME)).json()["rooms"]
    assert len(listed) == 3  # refused attempts left no record


def test_creation_rate_defaults_and_overrides() -> None:
    s = Settings(_env_file=None, tenant_limits={"kiosk": {"room_create_rate": 120}})
    assert (s.room_create_rate, s.room_create_burst) == (30, 30)
    assert s.limits_for("kiosk").room_create_rate == 120 and s.limits_for("kiosk").room_create_burst == 30
    assert s.limits_for("other").room_create_rate == 30


# -- GET /v1/rooms: pages with an opaque cursor ---------------------------------------------------
async def walk(bridge: Any, query: str, headers: dict[str, str] = ACME) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        url = f"/v1/rooms?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = (await bridge.http.get(url, headers=headers)).json()
        assert set(body) == {"rooms", "next_cursor"}, body
        pages.append([room["id"] for room in body["rooms"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_list_rooms_pages_with_a_cursor(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS))
    created = [(await create_room(bridge, ACME))["id"] for _ in range(5)]
    other = await create_room(bridge, GLOBEX)
    for rid in created[1:3]:
        assert (await bridge.http.delete(f"/v1/rooms/{rid}", headers=ACME)).status_code == 200

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the listing must not read every room")

    bridge.rooms.registry.store.list_rooms = refuse  # only one page (plus one row) may be read
    newest_first = created[::-1]
    assert await walk(bridge, "limit=2") == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert await walk(bridge, "limit=5") == [newest_first]
    assert await walk(bridge, "limit=200") == [newest_first]
    assert await walk(bridge, "") == [newest_first]  # default page of 50, next_cursor null
    live = [rid for rid in newest_first if rid not in created[1:3]]
    assert await walk(bridge, "state=live&limit=2") == [live[:2], live[2:]]
    assert await walk(bridge, "limit=1", GLOBEX) == [[other["id"]]]
    body = (await bridge.http.get("/v1/rooms?limit=1", headers=ACME)).json()
    assert body["rooms"][0]["state"] == "open" and body["rooms"][0]["ws_url"]  # the same room view as before


BAD_LIMITS = ["0", "201", "-1", "abc", "1.5", "", " 5", "+5", "5_0", "1e2", "99999999999999999999999", "٣"]


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


BAD_CURSORS = ["", "!!!", "abc", "é", "A" * 5000, b64("[1]"), b64('{"a": 1}'), b64('["x", "y"]'),
               b64('[NaN, "rm_x"]'), b64('[Infinity, "rm_x"]'), b64('[true, "rm_x"]'), b64('[1, ""]'),
               b64("[" * 180), b64("[1, 2]"), b64('[1, "a", 3]')]


async def test_list_rooms_refuses_bad_limits_and_cursors(bridge: Any, caplog: Any) -> None:
    await create_room(bridge, {})
    for limit in BAD_LIMITS:
        error = assert_error(await bridge.http.get("/v1/rooms", params={"limit": limit}), 422, "invalid_input")
        assert "limit" in error["message"], limit
    for cursor in BAD_CURSORS:
        error = assert_error(await bridge.http.get("/v1/rooms", params={"cursor": cursor}), 422, "invalid_input")
        assert "cursor" in error["message"], cursor
    assert len((await bridge.http.get("/v1/rooms", params={"limit": "1"})).json()["rooms"]) == 1
    no_tracebacks(caplog)


async def test_python_client_lists_every_page(bridge_factory: Any) -> None:
    from a2e_bridge_client import BridgeClient

    bridge = await bridge_factory(api_keys=dict(KEYS))
    ids = [(await create_room(bridge, ACME))["id"] for _ in range(5)]
    async with BridgeClient(bridge.url, api_key="key-acme") as client:
        assert [r["id"] for r in await client.list_rooms(page_size=2)] == ids[::-1]
        assert [r["id"] for r in await client.list_rooms(live_only=True, page_size=3)] == ids[::-1]
        assert [r["id"] for r in await client.list_rooms()] == ids[::-1]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_js_client_lists_every_page(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS))
    ids = [(await create_room(bridge, ACME))["id"] for _ in range(5)]
    module = (ROOT / "clients" / "js" / "bridge.mjs").as_uri()
    script = (f'import {{ BridgeClient }} from "{module}";\n'
              'const urls = [];\n'
              'const fetch = (url, init) => { urls.push(url); return globalThis.fetch(url, init); };\n'
              f'const c = new BridgeClient({{ baseUrl: "{bridge.url}", apiKey: "key-acme", fetch }});\n'
              'const all = await c.listRooms({ pageSize: 2 });\n'
              'const live = await c.listRooms({ live: true, pageSize: 4 });\n'
              'console.log(JSON.stringify([all.map((r) => r.id), live.map((r) => r.id), urls]));\n')
    proc = await asyncio.create_subprocess_exec("node", "--input-type=module", "-e", script,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    listed, live, urls = json.loads(out)
    assert listed == ids[::-1] and live == ids[::-1]
    assert len(urls) == 3 + 2 and sum("cursor=" in u for u in urls) == 2 + 1  # it followed next_cursor


# -- deeply nested JSON ---------------------------------------------------------------------------
DEPTH = 100_000  # websocket frames (the test raises the frame size limit so that they reach the parser)
BODY_DEPTH = 5_000  # REST bodies: far past the parsers' nesting limits (~200 and ~1,000), within the body limit


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


REST_BODIES = {
    "in a field": '{"text": ' + nested(BODY_DEPTH) + "}",
    "top level": nested(BODY_DEPTH),
    "objects": '{"qa_context": ' + '{"a": ' * BODY_DEPTH + "1" + "}" * BODY_DEPTH + "}",
    "unclosed": "[" * BODY_DEPTH,
}


@pytest.mark.parametrize("body", REST_BODIES.values(), ids=REST_BODIES.keys())
async def test_deeply_nested_json_bodies_are_a_400(bridge: Any, body: str, caplog: Any) -> None:
    room = await create_room(bridge, {})
    calls = await sim_calls(bridge)
    for method, path in [("POST", "/v1/rooms"), ("POST", f"/v1/rooms/{room['id']}/speak"),
                         ("POST", f"/v1/rooms/{room['id']}/ask"), ("PUT", f"/v1/rooms/{room['id']}/qa-context"),
                         ("POST", "/v1/a2e/remaining_coins")]:  # the pass-through (open in dev mode)
        r = await bridge.http.request(method, path, content=body, headers={"Content-Type": "application/json"})
        error = assert_error(r, 400, "bad_request")
        assert "JSON" in error["message"], (path, error)
    assert await sim_calls(bridge) == calls
    # nesting the parser accepts is a schema error, not a crash
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", content='{"text": ' + nested(150) + "}")
    assert_error(r, 422, "invalid_input")
    assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Still here."})).status_code == 200
    no_tracebacks(caplog)


async def test_deeply_nested_websocket_frames_get_an_error_frame(bridge_factory: Any, caplog: Any) -> None:
    # frames up to 512 KiB, so that 100,000 levels reach the JSON parser (the default 64 KiB allows ~32,000)
    bridge = await bridge_factory(api_keys=dict(KEYS), ws_max_frame_bytes=512 * 1024)
    room = await create_room(bridge, ACME)
    ws = await open_ws(bridge, room["id"])
    try:
        assert (await recv(ws))["type"] == "room"
        frames = [nested(DEPTH), "[" * DEPTH, '{"type": "speak", "id": "deep", "text": ' + nested(DEPTH) + "}",
                  '{"type": "rtc_event", "event": {"kind": "stream_message", "uid": 1, "extra": '
                  + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}}",
                  '{"type": "ping", "id": ' + nested(30_000) + "}"]
        for i, text in enumerate(frames):
            await ws.send(text)
            error = await until(ws, lambda f: f.get("type") == "error")
            assert error["code"] == "bad_json" and "nested too deeply" in error["message"], error
            await ping_pong(ws, f"alive-{i}")
        # a forwarded stream-message whose payload is deeply nested JSON is ignored, not a crash
        payload = base64.b64encode(("[" * 50_000).encode()).decode()
        await send(ws, {"type": "rtc_event", "event": {"kind": "stream_message", "uid": 1, "data_b64": payload}})
        await ping_pong(ws, "after-rtc")
        # and the connection still does real work
        await send(ws, {"type": "speak", "id": "s1", "text": "Still here."})
        ack = await until(ws, lambda f: f.get("type") in ("ack", "error") and f.get("id") == "s1")
        assert ack["type"] == "ack", ack
    finally:
        await ws.close()
    no_tracebacks(caplog)
