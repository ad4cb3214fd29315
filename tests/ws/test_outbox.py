"""A websocket client's Outbox against a fake ASGI server with uvicorn's flow control (a send waits
while the transport is paused): written at once when it can be, queued in order and bounded when
not. No timing: the fake server's event is the socket."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket

from bridge.http.outbox import Outbox


class FakeServer:
    """The server side of one accepted websocket."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.writable = asyncio.Event()  # uvicorn's: cleared while the transport's buffer is full
        self.writable.set()
        self.gone = False

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        if self.gone:
            raise OSError("the client is gone")  # uvicorn's ClientDisconnected is an OSError
        self.messages.append(message)

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages if m["type"] == "websocket.send"]


async def accepted(limit: int = 3) -> tuple[FakeServer, Outbox, list[str]]:
    server = FakeServer()
    ws = WebSocket({"type": "websocket", "path": "/", "headers": []}, server.receive, server.send)
    await ws.accept()
    calls: list[str] = []
    box = Outbox(ws, server.send, limit, on_overflow=lambda: calls.append("overflow"),
                 on_lost=lambda: calls.append("lost"))
    return server, box, calls


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_frame_the_socket_takes_is_written_in_place_without_a_task() -> None:
    server, box, calls = await accepted()
    tasks = asyncio.all_tasks()
    box.put("one")
    assert server.texts == ["one"]  # no await in between: written by the call itself
    assert asyncio.all_tasks() == tasks and box.waiting == 0 and not calls


async def test_while_the_socket_is_full_frames_wait_in_order_up_to_the_limit() -> None:
    server, box, calls = await accepted(limit=3)
    server.writable.clear()  # the client stopped reading
    for text in ("1", "2", "3", "4"):
        box.put(text)  # "1" waits for the socket, 2-4 queue behind it
    assert server.texts == [] and box.waiting == 3 and not calls
    box.put("5")  # one more than the limit: a slow reader
    assert calls == ["overflow"] and box.waiting == 3
    server.writable.set()  # it reads again
    await settle()
    assert server.texts == ["1", "2", "3", "4"] and box.waiting == 0
    box.put("6")
    assert server.texts[-1] == "6"  # written in place again


async def test_the_close_goes_after_what_is_queued() -> None:
    server, box, _ = await accepted()
    server.writable.clear()
    box.put("a")
    box.put("b")
    box.close(4000, "room closed")
    box.put("late")  # after the close: nothing
    server.writable.set()
    await settle()
    assert [m["type"] for m in server.messages] == ["websocket.accept", "websocket.send", "websocket.send",
                                                    "websocket.close"]
    assert server.texts == ["a", "b"] and server.messages[-1]["code"] == 4000 and box.close_sent


async def test_drop_forgets_the_queue_and_the_send_that_waits() -> None:
    server, box, _ = await accepted()
    server.writable.clear()
    box.put("a")
    box.put("b")
    box.drop()
    await settle()
    box.close(4008, "slow")  # not behind the dropped frames: it waits for the socket by itself
    server.writable.set()
    await settle()
    assert server.texts == [] and server.messages[-1]["type"] == "websocket.close"


async def test_a_client_that_is_gone_is_reported_not_raised() -> None:
    server, box, calls = await accepted()
    server.gone = True
    box.put("anyone there?")
    assert calls == ["lost"]
