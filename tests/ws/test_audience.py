"""A room's audience over real sockets: the sender is answered before the room hears of its command,
whatever the audience does; a client costs one task; a client that does not read holds its own
events, no one else's. No timing: orders of frames and states are what is checked."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httpx

from bridge.http.ws import Connection
from bridge.rooms.queue import Command
from tests.helpers import RawWS, create_room, of_type, open_ws, poll, recv, send, stream_message, until


async def test_the_sender_gets_its_ack_before_the_rooms_command_event(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as sender, await open_ws(acme, room["id"]) as other:
        await recv(sender), await recv(other)  # the room frames
        await send(sender, {"type": "speak", "id": "s1", "text": "Hello everyone."})
        seen = [await recv(sender)]
        while seen[-1]["type"] != "command":
            seen.append(await recv(sender))
        kinds = [(f["type"], f.get("id")) for f in seen]
        assert ("ack", "s1") in kinds  # before the command event: the loop stopped at it
        assert kinds.index(("queued", "s1")) < kinds.index(("ack", "s1"))
        assert seen[-1]["seq"] == 1
        assert (await until(other, of_type("command")))["seq"] == 1


async def test_a_websocket_client_costs_one_task(bridge_factory: Any) -> None:
    """The server's own task per socket (it reads), nothing more: no pump, no writer, no timer task."""
    bridge = await bridge_factory(event_source="none")  # no observer tasks coming and going meanwhile

    def awaiting(task: asyncio.Task[Any]) -> list[str]:
        """The files of the coroutines a task is suspended in, outermost first."""
        files, coro = [], task.get_coro()
        while coro is not None:
            code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
            if code is not None:
                files.append(code.co_filename)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return files

    def socket_tasks() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() if any(f.endswith(("http/ws.py", "http/outbox.py")) for f in awaiting(t))}

    room = await create_room(bridge, headers={})
    before = asyncio.all_tasks()
    clients = [await RawWS.open(bridge.url, room["id"]) for _ in range(10)]  # no task of their own
    try:
        for raw in clients:
            opcode, payload = await raw.frame()
            assert opcode == 0x1 and json.loads(payload)["type"] == "room"
        assert len(socket_tasks()) == 10  # a pump, a writer or a timer task per socket would be counted here
        assert socket_tasks() <= asyncio.all_tasks() - before
    finally:
        for raw in clients:
            raw.abort()
    await poll(lambda: bridge.rooms.registry.live[room["id"]].clients == 0, what="the clients to be let go")


async def test_the_senders_ack_comes_while_the_audience_reads_nothing(bridge_factory: Any) -> None:
    """Two listeners stop reading; the room's replies fill their sockets and queue behind them.
    The sender is answered all the same, and the listeners lose nothing: once they read, they get
    every reply and the command, in order."""
    bridge = await bridge_factory(ws_rate_limit=1000, ws_rate_burst=1000)
    room = await create_room(bridge, headers={})
    lr = bridge.rooms.registry.live[room["id"]]
    listeners = [await RawWS.open(bridge.url, room["id"], paused=True) for _ in range(2)]
    try:
        async with await open_ws(bridge, room["id"], headers=None) as sender:
            await recv(sender)
            # a growing reply: ~9 MiB of reply events per listener, more than the kernel buffers take
            chunk, count = "x" * 8192, 48
            events = ([stream_message(9, chunk, "start")] + [stream_message(9, chunk, "middle")] * (count - 2)
                      + [stream_message(9, chunk, "end")])
            for event in events:
                await send(sender, {"type": "rtc_event", "event": event})
            await until(sender, of_type("reply", final=True))

            def stuck() -> list[Connection]:
                return [c for c in lr.events.subscribers() if isinstance(c, Connection) and c.outbox.waiting]

            await poll(lambda: len(stuck()) == 2, what="the listeners' frames to queue behind their sockets")
            await send(sender, {"type": "speak", "id": "go", "text": "Still here."})
            assert (await until(sender, of_type("ack", id="go")))["position"] == 1
            assert lr.clients == 3  # nobody was dropped: their queues are within BRIDGE_WS_SEND_BUFFER
        for raw in listeners:
            raw.resume()
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1]["type"] != "command":
                opcode, payload = await raw.frame()
                if opcode == 0x1:
                    seen.append(json.loads(payload))
            replies = [f for f in seen if f["type"] == "reply"]
            assert len(replies) == count and replies[-1]["final"]
            assert seen[-1]["seq"] == 1
    finally:
        for raw in listeners:
            raw.abort()


async def test_a_speaks_a2e_request_goes_out_before_its_senders_frames(acme: Any, monkeypatch: Any) -> None:
    """An idle room's speak: the sender's ``queued`` and the room's ``utterance`` event to it wait
    until the A2E request is written (its body stream says so), then go in the order they came, before the
    ack. An A2E call that writes nothing holds them for at most ``HOLD``."""
    room = await create_room(acme)
    a2e = acme.app.state.a2e
    real_speak = a2e.speak
    held_when_written: list[list[str]] = []
    gate: asyncio.Event | None = None

    async def speak(channel: str, text: str, **kwargs: Any) -> Any:
        (conn,) = acme.rooms.registry.live[room["id"]].events.subscribers()
        assert isinstance(conn, Connection)
        if gate is not None:  # an A2E call stuck before writing anything
            await gate.wait()
            return await real_speak(channel, text, **kwargs)

        def written() -> None:
            held_when_written.append([json.loads(t)["type"] for t in conn.outbox._held or []])
            kwargs["written"]()
        return await real_speak(channel, text, written=written)

    monkeypatch.setattr(a2e, "speak", speak)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "s1", "text": "Hello."})
        seen: list[dict[str, Any]] = []
        await until(ws, of_type("command"), seen=seen)
        assert held_when_written == [["queued", "utterance"]]  # none of them written before the request
        assert [(f["type"], f.get("id"), f.get("state")) for f in seen] == [
            ("queued", "s1", None), ("utterance", seen[0]["utterance"], "queued"), ("ack", "s1", None)]
        gate = asyncio.Event()
        await send(ws, {"type": "speak", "id": "s2", "text": "Stuck."})
        queued = await until(ws, of_type("queued", id="s2"))  # while A2E has not been written to
        gate.set()
        assert (await until(ws, lambda f: f.get("id") == "s2"))["type"] == "ack"
        assert queued["utterance"]


async def test_a_speak_leaves_nothing_for_the_garbage_collector(acme: Any) -> None:
    """What a speak allocates in the bridge (its command, the A2E call's request and response) is freed
    when it is done, not left in reference cycles for the garbage collector: ~60 objects a speak that,
    left to it, cost more CPU than the rest of the bridge's work on the speak (issue 12)."""
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "warm", "text": "Warm up."})
        await until(ws, of_type("ack", id="warm"))
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage to look at
        try:
            for n in range(5):
                await send(ws, {"type": "speak", "id": f"s{n}", "text": f"Sentence number {n}."})
                await until(ws, of_type("ack", id=f"s{n}"))
            await until(ws, lambda f: f["type"] == "utterance" and f["state"] == "sent" and f["seq"] == 6)
            gc.collect()
            a2e_url = acme.app.state.a2e.transport.base_url
            left = [o for o in gc.garbage if isinstance(o, Command)
                    or isinstance(o, (httpx.Request, httpx.Response)) and str(o.url).startswith(a2e_url)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert left == []
