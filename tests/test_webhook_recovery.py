"""A real ``a2e-bridge serve`` killed with ``kill -9`` while its webhooks are pending (the receiver is
down) delivers them after it restarts: the outbox is in the store, not in the dead process."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import WEBHOOK_SECRET, Child, Receiver, free_port, poll

KEY = {"Authorization": "Bearer k"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    yield receiver
    await receiver.stop()


async def serve(db: Path, receiver: Receiver, cwd: Path) -> tuple[Child, str]:
    port = free_port()
    env = {"BRIDGE_DB": str(db), "BRIDGE_API_KEYS": "t:k", "BRIDGE_EVENT_SOURCE": "none", "BRIDGE_LOG_LEVEL": "INFO",
           "BRIDGE_SWEEP_INTERVAL": "0.2", "BRIDGE_WEBHOOK_BACKOFF_MAX": "0.5",
           "BRIDGE_WEBHOOKS": json.dumps({"t": {"url": receiver.url, "secret": WEBHOOK_SECRET}})}
    child = Child("serve", "--port", str(port), env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(child.wait_answering, url + "/healthz")
    except AssertionError:
        child.proc.kill()
        raise
    return child, url


async def test_pending_deliveries_survive_kill_9(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "bridge.db"
    child, url = await serve(db, receiver, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=10) as http:
            rooms = [(await http.post("/v1/rooms", json={"expire_seconds": 600})).json() for _ in range(2)]
            assert (await http.delete(f"/v1/rooms/{rooms[0]['id']}")).json()["state"] == "closed"

            async def all_tried() -> bool:
                listed = (await http.get("/v1/webhooks/deliveries")).json()["deliveries"]
                return len(listed) == 4 and all(d["status"] == "pending" for d in listed) and all(
                    d["attempts"] >= 1 for d in listed if d["event"] == "room.opened")

            await poll(all_tried, what="four deliveries pending, tried against a receiver that is down")
        child.signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.stop()

    await receiver.start()
    child, url = await serve(db, receiver, tmp_path)
    try:
        await poll(lambda: len(receiver.events()) == 4, timeout=15, what="the four events after the restart")
        assert receiver.rejected == []
        assert receiver.types(rooms[0]["id"]) == ["room.opened", "room.closed", "transcript.ready"]
        assert receiver.types(rooms[1]["id"]) == ["room.opened"]  # resumed: not announced twice
        assert len(receiver.received) == 4  # nothing twice
    finally:
        child.stop()
