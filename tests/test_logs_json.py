"""Structured logs (``BRIDGE_LOG_FORMAT=json``): one JSON object a line, with the request id, tenant,
room and channel they are about, A2E calls with their status, code, latency and trace id, and
secrets redacted as in text lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bridge import logs
from tests.helpers import ACME, KEYS, free_port, spawn_cli, wait_http

KEY = "key-json-canary-3f9a"
PK = "pk_json-canary-77c1"
SHOP = "https://shop.example"


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    for f in (logs.RedactSecrets(), logs.ContextFields()):
        f.filter(record)
    line = logs.JsonLines().format(record)
    assert "\n" not in line
    return dict(json.loads(line))


def test_a_json_line_has_the_fields_and_no_secret() -> None:
    token = logs.bind(request_id="r1", tenant="acme", room_id="rm_1")
    try:
        record = logging.makeLogRecord({"name": "bridge.x", "levelno": logging.INFO, "levelname": "INFO",
                                        "msg": "asked with %s", "args": (f"Authorization: Bearer {KEY}",),
                                        "operation": "ask", "note": {"token": "007secret"}})
        out = formatted(record)
    finally:
        logs.reset(token)
    assert list(out)[:4] == ["time", "level", "logger", "message"]
    assert out["level"] == "INFO" and out["logger"] == "bridge.x" and out["time"].endswith("+00:00")
    assert out["message"] == "asked with Authorization: Bearer <redacted>"
    assert out["request_id"] == "r1" and out["tenant"] == "acme" and out["room_id"] == "rm_1"
    assert out["operation"] == "ask" and out["note"] == {"token": "<redacted>"}  # a field named like a secret
    try:
        raise RuntimeError(f"failed with ticket={KEY}")
    except RuntimeError:
        record = logging.makeLogRecord({"name": "bridge", "levelno": 40, "levelname": "ERROR", "msg": "boom",
                                        "exc_info": sys.exc_info()})
    out = formatted(record)
    assert "RuntimeError" in out["exc_info"] and KEY not in json.dumps(out)
    assert "request_id" not in out  # the context was reset


def test_the_format_defaults_to_json_off_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.log_format(None, io.StringIO()) == "json"
    assert logs.log_format(None, Terminal()) == "text"
    assert logs.log_format("text", io.StringIO()) == "text" and logs.log_format("json", Terminal()) == "json"


@pytest.mark.in_process
async def test_every_answer_carries_a_request_id(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=KEYS, allowed_origins=[SHOP])
    first, second = (await bridge.http.get("/healthz")).headers["x-request-id"], \
        (await bridge.http.get("/healthz")).headers["x-request-id"]
    assert len(first) == 32 and first != second
    assert (await bridge.http.get("/healthz", headers={"X-Request-ID": "lb-7f3a.1"})).headers["x-request-id"] == "lb-7f3a.1"
    odd = (await bridge.http.get("/healthz", headers={"X-Request-ID": "x" * 65})).headers["x-request-id"]
    assert len(odd) == 32  # not a short token: replaced
    refused = await bridge.http.post("/v1/rooms", json={}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.headers["x-request-id"]
    preflight = await bridge.http.options("/v1/rooms", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["x-request-id"]


def test_a_full_session_logs_json_lines_that_a_room_can_be_pulled_out_of(tmp_path: Path) -> None:
    """A real ``a2e-bridge serve`` at DEBUG with ``BRIDGE_LOG_FORMAT=json``: two rooms (a backend's and a
    browser key's), REST, the websocket, SSE, a refused origin, then SIGTERM; every line of its output
    parses, and each room's lines are found by its room_id."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = spawn_cli("serve", "--port", str(port), env={
        "BRIDGE_DB": str(tmp_path / "b.db"), "BRIDGE_API_KEYS": f"acme:{KEY}", "BRIDGE_BROWSER_KEYS": f"acme:{PK}",
        "BRIDGE_ALLOWED_ORIGINS": SHOP, "BRIDGE_LOG_FORMAT": "json", "BRIDGE_LOG_LEVEL": "DEBUG",
        "SIM_SECONDS_PER_CHAR": "0.002"})
    # read as it comes: at DEBUG the child writes more than a pipe holds, and would block on it
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(child.stdout or []), daemon=True)
    reader.start()
    key = {"Authorization": f"Bearer {KEY}"}
    page = {"Authorization": f"Bearer {PK}", "Origin": SHOP}
    try:
        wait_http(f"{base}/healthz")

        async def session() -> tuple[dict[str, Any], dict[str, Any], str]:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                created = await http.post("/v1/rooms", json={"expire_seconds": 60, "qa_context": "We open at 9am."},
                                          headers=key)
                assert created.status_code == 201, created.text
                a = created.json()
                b = (await http.post("/v1/rooms", json={"expire_seconds": 60}, headers=page)).json()
                async with connect(f"{a['ws_url']}?ticket={a['ws_ticket']}") as ws:
                    await ws.send(json.dumps({"type": "speak", "id": "s", "text": "Welcome!"}))
                    await ws.send(json.dumps({"type": "ask", "id": "q", "text": "When do you open?"}))
                    while True:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if frame["type"] == "reply" and frame["final"]:
                            break
                async with http.stream("GET", f"/v1/rooms/{b['id']}/events", params={"ticket": b["ws_ticket"]},
                                       headers={"Origin": SHOP}) as stream:
                    assert stream.status_code == 200
                    spoken = await http.post(f"/v1/rooms/{b['id']}/speak", json={"text": "Hello."}, headers=page)
                    assert spoken.status_code == 200, spoken.text
                    async for line in stream.aiter_lines():
                        if line.startswith("data:") and json.loads(line[5:])["type"] == "command":
                            break
                refused = await http.post("/v1/rooms", json={}, headers={**key, "Origin": "https://evil.example"})
                assert refused.status_code == 403
                assert (await http.get("/v1/rooms", headers=page)).status_code == 403
                for room, headers in ((a, key), (b, page)):
                    assert (await http.delete(f"/v1/rooms/{room['id']}", headers=headers)).status_code == 200
                return a, b, created.headers["x-request-id"]

        a, b, request_id = asyncio.run(asyncio.wait_for(session(), 60))
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        reader.join(timeout=10)

    output = "".join(out)
    lines = output.splitlines()
    assert len(lines) > 50
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    for record in records:
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record), record

    secrets = [KEY, PK, a["ws_ticket"], b["ws_ticket"], a["token"], b["token"]]
    assert not [s for s in secrets if s in output]

    def about(room: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in records if r.get("room_id") == room["id"]]

    for room, other in ((a, b), (b, a)):
        mine = about(room)
        assert all(r["tenant"] == "acme" and other["id"] not in json.dumps(r) for r in mine)
        assert all(r.get("channel") in (None, room["channel"]) for r in mine)
        calls = {r["operation"]: r for r in mine if r["logger"] == "bridge.a2e" and r["level"] == "INFO"}
        assert {"agora_token", "speak", "leave"} <= set(calls), sorted(calls)
        for call in calls.values():
            assert call["status"] == 200 and call["code"] == 0 and call["outcome"] == "ok", call
            assert call["trace_id"] and isinstance(call["latency_ms"], (int, float))
        closed = [r for r in mine if r.get("close_reason") == "client" and "duration_s" in r]
        assert len(closed) == 1 and closed[0]["logger"] == "bridge.rooms"
        paths = {r["path"].split("?")[0] for r in mine if r["logger"] == "uvicorn.access"}
        assert f"/v1/rooms/{room['id']}" in paths
    assert "ask" in {r.get("operation") for r in about(a)} and "set_qa_context" in {r.get("operation") for r in about(a)}
    assert any(r["logger"] == "bridge.a2e" and r["level"] == "DEBUG" for r in about(a))  # bodies, at DEBUG
    assert any(r.get("browser_key") for r in about(b))  # the key's id, never the key
    created = [r for r in records if r.get("request_id") == request_id and r["logger"] == "uvicorn.access"]
    assert len(created) == 1 and created[0]["room_id"] == a["id"] and created[0]["status"] == 201
    refusal = [r for r in records if r["logger"] == "bridge.origins"]
    assert len(refusal) == 1 and refusal[0]["origin"] == "https://evil.example" and refusal[0]["level"] == "WARNING"


@pytest.mark.in_process
async def test_room_lines_carry_the_room(bridge_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    bridge = await bridge_factory(api_keys=KEYS)
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(logs.ContextFields())  # what the service's handler does (bridge.logs.log_config)
    room = (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60}, headers=ACME)).json()
    opened = [r for r in caplog.records if r.name == "bridge.rooms" and "open for tenant" in r.getMessage()]
    assert len(opened) == 1
    record = opened[0]
    assert (record.room_id, record.tenant, record.channel) == (room["id"], "acme", room["channel"])  # type: ignore[attr-defined]
