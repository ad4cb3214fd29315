"""Helpers for the websocket endpoint tests: a bridge with two tenants, rooms, and a client that
never hangs (every wait is bounded)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

KEYS = {"key-acme": "acme", "key-globex": "globex"}
ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}
WAIT = 5.0  # the longest any single expected frame or close may take


def ws_url(bridge: Any, room_id: str, ticket: str | None = None) -> str:
    url = bridge.url.replace("http://", "ws://", 1) + f"/v1/rooms/{room_id}/ws"
    return f"{url}?ticket={ticket}" if ticket is not None else url


async def open_ws(bridge: Any, room_id: str, *, headers: dict[str, str] | None = ACME, ticket: str | None = None,
                  **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("open_timeout", WAIT)
    return await asyncio.wait_for(
        connect(ws_url(bridge, room_id, ticket), additional_headers=headers or {}, **kwargs), WAIT)


async def recv(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def until(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], *, seen: list[dict[str, Any]] | None = None,
                timeout: float = WAIT) -> dict[str, Any]:
    """Read frames until one matches (the others go to ``seen``)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - time.monotonic()))
        if match(frame):
            return frame
        if seen is not None:
            seen.append(frame)


def of_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())


async def closed(ws: ClientConnection, timeout: float = WAIT) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; the close code it sent and the frames before it."""
    frames: list[dict[str, Any]] = []

    async def drain() -> None:
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), timeout)
    rcvd = ws.protocol.close_rcvd  # None: the server hung up without a close frame
    return (rcvd.code if rcvd else None), frames


async def ping_pong(ws: ClientConnection, frame_id: Any = "alive") -> None:
    """The connection still works: a ping is answered (other frames may come first)."""
    await send(ws, {"type": "ping", "id": frame_id})
    await until(ws, of_type("pong", id=frame_id))


async def create_room(bridge: Any, headers: dict[str, str] = ACME, **body: Any) -> dict[str, Any]:
    response = await bridge.http.post("/v1/rooms", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def wait_observed(bridge: Any, room: dict[str, Any], timeout: float = WAIT) -> None:
    """The bridge's simulator observer is subscribed to the room's channel feed (so no avatar
    event of what we ask next can be missed)."""
    feed = bridge.sim.app.state.sim_feed
    deadline = time.monotonic() + timeout
    while feed.subscribers(room["channel"]) < 1:
        assert time.monotonic() < deadline, "the bridge never subscribed to the simulator feed"
        await asyncio.sleep(0.01)


def qa(message: str, pos: str) -> str:
    return base64.b64encode(json.dumps({"type": "QA", "message": message, "pos": pos}).encode()).decode()


def stream_message(uid: int, message: str, pos: str) -> dict[str, Any]:
    return {"kind": "stream_message", "uid": uid, "data_b64": qa(message, pos)}


@pytest.fixture
async def acme(bridge_factory: Callable[..., Any]) -> Any:
    """A bridge with two tenants (acme, globex); its HTTP client speaks as acme."""
    return await bridge_factory(api_keys=dict(KEYS), headers=ACME)


class RawWS:
    """A websocket client on a bare TCP stream, for what a library client will not do: it reads
    only when told to (its kernel receive buffer is tiny) and it never answers pings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str, room_id: str, *, paused: bool = False) -> RawWS:
        host, port = base_url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        writer.write((f"GET /v1/rooms/{room_id}/ws HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
        raw = cls(reader, writer)
        if paused:
            raw.pause()
        return raw

    def pause(self) -> None:
        self.writer.transport.pause_reading()

    def resume(self) -> None:
        self.writer.transport.resume_reading()

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (unmasked, never fragmented by uvicorn)."""
        b0, b1 = await self.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await self.reader.readexactly(length)

    async def until_close(self, timeout: float = WAIT) -> tuple[int | None, list[dict[str, Any]], list[int]]:
        """Read to the server's close frame or EOF: (close code, text frames, every opcode seen)."""
        frames: list[dict[str, Any]] = []
        opcodes: list[int] = []

        async def read() -> int | None:
            while True:
                try:
                    opcode, payload = await self.frame()
                except asyncio.IncompleteReadError:
                    return None
                opcodes.append(opcode)
                if opcode == 0x1:
                    frames.append(json.loads(payload))
                elif opcode == 0x8:
                    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None

        code = await asyncio.wait_for(read(), timeout)
        return code, frames, opcodes

    def abort(self) -> None:
        self.writer.transport.abort()
