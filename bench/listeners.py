"""A benchmark child process that holds many websocket clients and timestamps what reaches them.

Run by the benchmarks (``python bench/listeners.py``), driven by JSON lines on stdin, answering one
JSON line on stdout per command:

- ``{"cmd": "open", "urls": [...], "headers": {...}, "deflate": false}``: open one client per URL
  (a few hundred handshakes at a time) and wait until each has its first text frame;
  answers ``{"opened": n, "failed": [...]}``.
- ``{"cmd": "collect"}``: the delivery latencies recorded since the last collect and how many
  marks each client got in all; answers ``{"latencies": [...], "per_client": [...], "closed": {...}}``.
- ``{"cmd": "pause", "clients": [i, ...]}``: stop reading on these clients (by the order of their URLs).
- ``{"cmd": "stream", "clients": [i, ...], "frames": [...], "interval": s, "seconds": s}``: these
  clients send the frames over and over, one every ``interval`` seconds (answers at once).
- ``{"cmd": "quit"}``.

A *mark* is ``~t=<time.monotonic() of the sender>~`` inside a frame's text (the benchmarks put it
in a speak's text; the server's event carries it). CLOCK_MONOTONIC is system-wide on Linux, so the
latency is the receive time here minus the send time in the other process.

Cheap on purpose, so that the clients' own CPU weighs as little as possible in a figure about the
server: each client is a bare ``asyncio.Protocol`` over websockets' sans-I/O ``ClientProtocol``
(no task per client); once open, ``data_received`` takes the time first, scans the raw bytes for
marks (frames from a server are not masked, and these clients do not offer compression unless
``deflate`` is set), and leaves parsing (pings, close frames) to a sweep every 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from benchlib import raise_nofile
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

MARK = b"~t="
SWEEP = 0.2
OPEN_AT_ONCE = 200


class Client(asyncio.Protocol):
    def __init__(self, uri: str, headers: dict[str, str], deflate: bool, pool: Pool) -> None:
        self.proto = ClientProtocol(parse_uri(uri), max_size=2**22,
                                    extensions=[ClientPerMessageDeflateFactory()] if deflate else None)
        self.headers, self.pool = headers, pool
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.eager = True  # parse as it comes, until the first text frame
        self.pending: list[bytes] = []
        self.tail = b""
        self.marks = 0
        self.close_code: int | None = None
        self.index = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = self.proto.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        self.proto.send_request(request)
        self.flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.eager:
            self.feed(data)
            return
        scan, done = self.tail + data, 0
        start = scan.find(MARK)
        while start >= 0:
            end = scan.find(b"~", start + len(MARK))
            if end < 0:  # split across two reads: keep it for the next one
                break
            self.pool.latencies.append(now - float(scan[start + len(MARK):end]))
            self.marks += 1
            done = end + 1
            start = scan.find(MARK, done)
        self.tail = scan[start:] if start >= 0 else scan[max(done, len(scan) - len(MARK) + 1):]
        self.pending.append(data)
        self.pool.dirty.add(self)

    def feed(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                if event.status_code != 101 and not self.opened.done():
                    self.opened.set_exception(RuntimeError(f"handshake answered {event.status_code}"))
            elif isinstance(event, Frame):
                if event.opcode is Opcode.TEXT and not self.opened.done():
                    self.eager = False
                    self.opened.set_result(None)
                elif event.opcode is Opcode.CLOSE:
                    self.close_code = self.proto.close_code
        self.flush()

    def sweep(self) -> None:
        data, self.pending = b"".join(self.pending), []
        if data:
            self.feed(data)

    def flush(self) -> None:
        out = self.proto.data_to_send()
        if self.transport is not None and out and not self.transport.is_closing():
            self.transport.write(b"".join(chunk for chunk in out if chunk))

    def connection_lost(self, exc: Exception | None) -> None:
        self.sweep()
        if self.close_code is None:
            self.close_code = 1006
        self.pool.closed[self.close_code] += 1
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the first frame ({self.close_code})"))


class Pool:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.latencies: list[float] = []
        self.dirty: set[Client] = set()
        self.closed: Counter[int] = Counter()
        self.streams: set[asyncio.Task[None]] = set()

    async def open(self, urls: list[str], headers: dict[str, str], deflate: bool) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(OPEN_AT_ONCE)
        failed: list[str] = []
        base = len(self.clients)

        async def one(index: int, url: str) -> None:
            async with gate:
                uri = parse_uri(url)
                client = Client(url, headers, deflate, self)
                client.index = base + index
                try:
                    await loop.create_connection(lambda: client, uri.host, uri.port)
                    await asyncio.wait_for(client.opened, 30)
                except (OSError, RuntimeError, TimeoutError, ConnectionError) as exc:
                    failed.append(f"{type(exc).__name__}: {exc}")
                    if client.transport is not None:
                        client.transport.abort()
                    return
                self.clients.append(client)

        await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
        self.clients.sort(key=lambda c: c.index)  # in the order of their URLs, whatever order they opened in
        return {"opened": len(self.clients), "failed": failed[:5], "failures": len(failed)}

    async def stream(self, client: Client, frames: list[str], interval: float, seconds: float) -> None:
        """Send ``frames`` over and over from ``client``, one every ``interval`` s, for ``seconds``."""
        stop_at, n = time.monotonic() + seconds, 0
        while time.monotonic() < stop_at and client.transport is not None and not client.transport.is_closing():
            client.proto.send_text(frames[n % len(frames)].encode())
            client.flush()
            n += 1
            await asyncio.sleep(interval)

    def collect(self) -> dict[str, Any]:
        latencies, self.latencies = self.latencies, []
        return {"latencies": latencies, "per_client": [c.marks for c in self.clients], "closed": dict(self.closed)}

    async def sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            dirty, self.dirty = self.dirty, set()
            for client in dirty:
                client.sweep()


async def main() -> None:
    raise_nofile(1 << 20)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pool = Pool()
    sweeper = asyncio.create_task(pool.sweeper())
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "open":
            answer = await pool.open(command["urls"], command.get("headers", {}), command.get("deflate", False))
        elif command["cmd"] == "collect":
            answer = pool.collect()
        elif command["cmd"] == "pause":
            for index in command["clients"]:
                transport = pool.clients[index].transport
                if transport is not None:
                    transport.pause_reading()
            answer = {"paused": len(command["clients"])}
        elif command["cmd"] == "stream":
            pool.streams |= {asyncio.create_task(pool.stream(pool.clients[i], command["frames"], command["interval"],
                                                             command["seconds"])) for i in command["clients"]}
            answer = {"streaming": len(command["clients"])}
        elif command["cmd"] == "quit":
            break
        else:
            answer = {"error": f"unknown command {command['cmd']!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    sweeper.cancel()
    for client in pool.clients:
        if client.transport is not None:
            client.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
