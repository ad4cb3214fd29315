"""Secrets never reach the logs: tickets in websocket URLs, client keys, A2E keys."""

import asyncio
import json
import signal
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bridge.logs import redact
from tests.helpers import create_room_sync, free_port, spawn_cli, wait_http


def test_redact_hides_tickets_and_bearer_keys() -> None:
    line = 'GET /v1/rooms/rm_1/ws?ticket=rm_1.ZGV2.17.sig&x=1 "Authorization: Bearer sk_live_123"'
    out = redact(line)
    assert "rm_1.ZGV2.17.sig" not in out and "sk_live_123" not in out
    assert "ticket=<redacted>&x=1" in out and "Bearer <redacted>" in out and "/v1/rooms/rm_1/ws" in out


def test_a_real_server_logs_no_ticket_and_no_key(tmp_path: Path) -> None:
    port = free_port()
    child = spawn_cli("serve", "--port", str(port), env={
        "BRIDGE_DB": str(tmp_path / "b.db"), "BRIDGE_API_KEYS": "acme:client-key-4e7f", "BRIDGE_LOG_LEVEL": "DEBUG"})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        headers = {"Authorization": "Bearer client-key-4e7f"}
        room = create_room_sync(f"http://127.0.0.1:{port}", headers, expire_seconds=60)

        async def use_ticket() -> None:
            async with connect(f"{room['ws_url']}?ticket={room['ws_ticket']}") as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "room"

        asyncio.run(use_ticket())
        httpx.delete(f"http://127.0.0.1:{port}/v1/rooms/{room['id']}", headers=headers)
    finally:
        child.send_signal(signal.SIGTERM)
        output = child.communicate(timeout=30)[0]
    assert "WebSocket /v1/rooms/" in output  # the access line is there...
    assert room["ws_ticket"] not in output and "ticket=<redacted>" in output  # ...without its ticket
    assert "client-key-4e7f" not in output
    assert room["token"] not in output
