"""At DEBUG, credential headers are redacted whatever their scheme, in every shape our libraries log
them: websockets/uvicorn handshake lines, dict reprs, and httpcore/ASGI header tuples."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from bridge.logs import RedactingFormatter, RedactSecrets, redact
from bridge.serving import WS_IMPLEMENTATION
from tests.helpers import free_port, spawn_cli, wait_http

A2E_KEY = "sk_A2E-canary-7d1e"
CLIENT_KEY = "client-canary-51aa"
BASIC = "QmFzaWMtY2FuYXJ5LTMzMTA="  # base64, as a browser would send it
TOKEN = "token-canary-9c02"
COOKIE = "session=cookie-canary-6b4f"
API_KEY = "xapikey-canary-1e77"
PROXY = "proxy-canary-a0b3"
SECRETS = [A2E_KEY, CLIENT_KEY, BASIC, TOKEN, "cookie-canary-6b4f", API_KEY, PROXY]


@pytest.mark.parametrize("line", [
    f"< authorization: Basic {BASIC}",                    # uvicorn's websockets handshake lines
    f"> Authorization: Token {TOKEN}",                    # the websockets client's
    f"> Proxy-Authorization: Basic {PROXY}",
    f"< cookie: {COOKIE}; other=1",
    f"< Set-Cookie: {COOKIE}; Path=/; HttpOnly",
    f"< x-api-key: {API_KEY}",
    f"headers={{'host': 'h', 'authorization': 'Token {TOKEN}', 'x-api-key': '{API_KEY}'}}",
    f'{{"Authorization": "Basic {BASIC}", "Cookie": "{COOKIE}"}}',
    f"scope={{'headers': [(b'host', b'h'), (b'authorization', b'Bearer {A2E_KEY}'), (b'cookie', b'{COOKIE}')]}}",
    f"return_value=(b'HTTP/1.1', 200, b'OK', [(b'set-cookie', b'{COOKIE}'), (b'content-length', b'2')])",
    f"Authorization: {CLIENT_KEY}",                       # no scheme at all
    f"GET /v1/rooms/rm_1/ws?ticket={TOKEN}&x=1",
])
def test_every_shape_is_redacted(line: str) -> None:
    out = redact(line)
    assert not [s for s in SECRETS if s in out], out
    assert "<redacted>" in out


@given(st.lists(st.sampled_from(["authorization", "Proxy-Authorization", "cookie", "Set-Cookie", "x-api-key",
                                  "api_key", "token", "ws_ticket", "ticket", "key", "secret", "password", "Bearer",
                                  "Basic", ": ", "=", "'", '"', "b'", ", ", "(", ")", " ", "\n", "&", "?", "x",
                                  A2E_KEY]), max_size=14).map("".join))
@settings(max_examples=400)
@example("Bearer x")
@example("< Authorization: x")
@example("'cookie': 'x'")
@example("(b'x-api-key', b'x')")
@example("?ticket=x&ws_ticket=y")
@example('{"secret": "x", "password": "y"}')
def test_the_cheap_check_before_redacting_never_changes_a_line(text: str) -> None:
    """``redact`` skips its four patterns when no word they need is in the text: never a difference."""
    from bridge import logs

    full = logs._QUOTED_SECRET.sub(lambda m: m["head"] + "<redacted>", text)
    full = logs._QUOTED_HEADER.sub(logs._redact_header, full)
    full = logs._HEADER_LINE.sub(logs._redact_header, full)
    full = logs._SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "<redacted>", full)
    assert redact(text) == full


def test_the_scheme_and_other_headers_stay_readable() -> None:
    assert redact(f"< authorization: Basic {BASIC}") == "< authorization: Basic <redacted>"
    assert redact(f"(b'authorization', b'Token {TOKEN}')") == "(b'authorization', b'Token <redacted>')"
    assert redact("< content-type: application/json") == "< content-type: application/json"
    assert redact("'host': '127.0.0.1:8000'") == "'host': '127.0.0.1:8000'"


def test_split_arguments_and_tracebacks_are_redacted() -> None:
    """websockets logs ``"> %s: %s", name, value``: neither argument alone shows a secret."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    logger = logging.getLogger("test.security.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("> %s: %s", "Authorization", f"Basic {BASIC}")
        logger.debug("scope=%s", {"headers": [(b"authorization", f"Token {TOKEN}".encode())]})
        logger.debug("%s %d", {"Cookie": COOKIE}, 7)
        try:
            raise RuntimeError(f"bad header Authorization: Token {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert not [s for s in SECRETS if s in out], out
    assert "> Authorization: Basic <redacted>" in out and " 7" in out


def _stop(child: subprocess.Popen[str]) -> str:
    child.send_signal(signal.SIGTERM)
    try:
        return child.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        child.kill()
        return child.communicate()[0]


def test_a_real_bridge_at_debug_logs_no_credential(tmp_path: Path) -> None:
    """A bridge in front of a keyed simulator (``simulate --api-key``), both at DEBUG: websocket
    handshakes carrying every kind of credential header, the bridge's own simulator observer
    (which sends the A2E key), and a pass-through call."""
    sim_port, port = free_port(), free_port()
    sim = spawn_cli("simulate", "--port", str(sim_port), "--api-key", A2E_KEY,
                    env={"BRIDGE_LOG_LEVEL": "DEBUG", "SIM_SECONDS_PER_CHAR": "0.002"})
    bridge = None
    sim_out = bridge_out = ""
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/_sim/health")
        bridge = spawn_cli("serve", "--port", str(port), env={
            "A2E_API_KEY": A2E_KEY, "A2E_BASE_URL": f"http://127.0.0.1:{sim_port}", "BRIDGE_DB": str(tmp_path / "b.db"),
            "BRIDGE_API_KEYS": f"acme:{CLIENT_KEY}", "BRIDGE_PASSTHROUGH_TENANTS": "acme",
            "BRIDGE_EVENT_SOURCE": "simulator", "BRIDGE_LOG_LEVEL": "DEBUG"})
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        client = {"Authorization": f"Bearer {CLIENT_KEY}"}
        assert httpx.get(f"{base}/healthz", headers={"Authorization": f"Basic {BASIC}"}).status_code == 200
        room = httpx.post(f"{base}/v1/rooms", json={"expire_seconds": 60, "qa_context": "We open at 9."},
                          headers=client).json()
        r = httpx.post(f"{base}/v1/a2e/remaining_coins", headers=client)
        assert r.status_code == 200 and "coins" in r.json()["data"]

        async def websockets() -> None:
            url = f"{room['ws_url']}?ticket={room['ws_ticket']}"
            for headers in ({"Authorization": f"Basic {BASIC}", "Cookie": COOKIE, "X-API-Key": API_KEY},
                            {"Authorization": f"Token {TOKEN}", "Proxy-Authorization": f"Basic {PROXY}"}):
                async with connect(url, additional_headers=headers) as ws:
                    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "room"
            async with connect(url) as ws:  # an answer through the observer: it did connect with the A2E key
                await ws.send(json.dumps({"type": "ask", "id": "1", "text": "When do you open?"}))
                while True:
                    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "reply" and frame["final"]:
                        break

        asyncio.run(websockets())
        httpx.delete(f"{base}/v1/rooms/{room['id']}", headers=client)
    finally:
        if bridge is not None:
            bridge_out = _stop(bridge)
        sim_out = _stop(sim)
    # the lines that would carry the credentials are there, redacted: the websocket handshakes' headers
    # (logged at DEBUG by uvicorn's websockets-sansio; wsproto, which the bridge runs, logs none)
    if WS_IMPLEMENTATION == "websockets-sansio":
        assert "authorization: Basic <redacted>" in bridge_out and "authorization: Token <redacted>" in bridge_out
    assert "Authorization: Bearer <redacted>" in bridge_out  # the observer's handshake, with the A2E key
    assert "authorization: Bearer <redacted>" in sim_out
    for name, out in (("bridge", bridge_out), ("simulator", sim_out)):
        leaked = [s for s in [*SECRETS, room["ws_ticket"], room["token"]] if s in out]
        assert not leaked, f"{name} logged {leaked}"
