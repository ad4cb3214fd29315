"""Websocket frames are written with the server's own send (bridge/http/scopes.py: ServerSend), past
the wrappers the handshake needs: over a real socket, the handshake still carries the request id,
and the route's frames never go through the request-id wrapper."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

from bridge.http import request_id
from bridge.http.scopes import SERVER_SEND, ServerSend
from tests.helpers import create_room, of_type, open_ws, recv, send, until


async def test_the_server_send_is_kept_for_websockets_only() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def server_send(message: Message) -> None: ...

    async def receive() -> Message:
        return {}

    for kind in ("websocket", "http"):
        await ServerSend(app)({"type": kind}, receive, server_send)
    assert seen[0][SERVER_SEND] is server_send
    assert SERVER_SEND not in seen[1]


async def test_frames_skip_the_wrappers_and_the_handshake_keeps_its_request_id(acme: Any, monkeypatch: Any) -> None:
    wrapped: list[str] = []
    original = request_id.RequestId.__call__

    def spying(self: request_id.RequestId, scope: Scope, receive: Receive, send: Send) -> Any:
        async def spy(message: Message) -> None:
            wrapped.append(message["type"])
            await send(message)
        return original(self, scope, receive, spy)

    monkeypatch.setattr(request_id.RequestId, "__call__", spying)
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        assert ws.response is not None and ws.response.headers["x-request-id"]
        assert (await recv(ws))["type"] == "room"
        await send(ws, {"type": "ping", "id": "p"})
        await until(ws, of_type("pong", id="p"))
    assert "websocket.accept" in wrapped and "websocket.send" not in wrapped
