"""The A2E client's connection pool (bridge/a2e/pool.py): it is the one httpx uses, its connections
are kept alive, a connection the server closed while idle is found out and replaced, and its own
connection layer (asyncio transports) moves big bodies, times out, fails and is cancelled as httpx
callers expect: over real loopback sockets to bare HTTP/1.1 servers, plain and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bridge.a2e.pool import _Backend, _readable, pooled_client

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30)
TIMEOUT = httpx.Timeout(5.0)


class KeepAliveServer:
    """Answers every request ``200 ok`` with keep-alive; ``close_idle()`` closes the connections
    it holds open between requests, as a server whose keep-alive ran out does."""

    def __init__(self) -> None:
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
                             b'{"code": 0}')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close_idle(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)  # the FIN reaches the client's socket


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(params=["http", "https"])
async def server(request: pytest.FixtureRequest, certificate: tuple[Path, Path],
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[KeepAliveServer, str]]:
    """The server over plain HTTP, and over TLS (A2E is HTTPS) with the self-signed certificate
    trusted through SSL_CERT_FILE, which httpx's default SSL context reads."""
    context = None
    if request.param == "https":
        cert, key = certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    keepalive = KeepAliveServer()
    srv = await asyncio.start_server(keepalive.handle, "127.0.0.1", 0, ssl=context)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield keepalive, f"{request.param}://localhost:{port}"


async def test_httpx_sends_through_our_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with pooled_client(timeout=TIMEOUT, limits=LIMITS) as client:
        # where httpx keeps its pool (a private name): if an httpx release moves it, this fails
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, _Backend)
        assert pool._max_keepalive_connections == 5 and pool._keepalive_expiry == 30


async def test_environment_proxies_keep_httpxs_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    async with pooled_client(timeout=TIMEOUT, limits=LIMITS) as client:
        assert any(t is not None for t in client._mounts.values())  # httpx routes through the proxy
        assert not isinstance(client._transport._pool._network_backend, _Backend)  # type: ignore[attr-defined]


async def test_a_connection_is_kept_alive_and_replaced_once_the_server_closed_it(
        server: tuple[KeepAliveServer, str]) -> None:
    keepalive, url = server
    async with pooled_client(timeout=TIMEOUT, limits=LIMITS) as client:
        for _ in range(3):
            assert (await client.post(url + "/speak", json={"text": "hi"})).json() == {"code": 0}
        assert keepalive.connections == 1
        await keepalive.close_idle()
        # without the liveness check this request would go out on the dead connection and fail
        assert (await client.post(url + "/speak", json={"text": "again"})).json() == {"code": 0}
        assert keepalive.connections == 2


async def test_readable_is_true_for_pending_data_and_a_closed_peer_not_for_a_quiet_one() -> None:
    left, right = socket.socketpair()
    try:
        assert not _readable(left)
        right.send(b"x")
        assert _readable(left)
        left.recv(1)
        right.close()
        assert _readable(left)  # the end of the stream is ready to be read
    finally:
        left.close()
    assert _readable(left)  # a closed socket (fileno -1) counts as readable, as httpcore's own check
    assert _readable(None)


# -- the connection layer itself (bridge/a2e/pool.py: asyncio transports, not anyio streams) ----------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    async with srv:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return await reader.readexactly(length)


def client(**timeouts: float) -> httpx.AsyncClient:
    return pooled_client(timeout=httpx.Timeout(5.0, **timeouts), limits=LIMITS)


async def test_big_bodies_both_ways_arrive_whole() -> None:
    """More than the read buffer's limit back, more than the socket buffers out: flow control both ways."""
    async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        await asyncio.sleep(0.2)  # the client's writes wait for the socket meanwhile
        answer = hashlib.sha256(body).hexdigest().encode() * 40_000  # 2.5 MiB
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer)
        await writer.drain()
        writer.close()

    upload = os.urandom(8 * 1024 * 1024)
    received = bytearray()
    async with raw_server(echo_length) as url, client() as http, http.stream("POST", url, content=upload) as response:
        async for chunk in response.aiter_raw():
            received += chunk
            await asyncio.sleep(0.005)  # a slow reader: what arrives meanwhile fills the buffer past its limit
    assert received == hashlib.sha256(upload).hexdigest().encode() * 40_000


async def test_timeouts_are_httpx_timeouts() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # reads nothing, answers nothing
        writer.close()

    async with raw_server(silent) as url, client(read=0.2, write=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, content=b"x")
        with pytest.raises(httpx.WriteTimeout):  # more than the socket buffers take, never read
            await http.post(url, content=b"x" * (64 * 1024 * 1024))


async def test_failures_are_httpx_errors_and_the_pool_goes_on() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()  # a reset, mid-body

    async def good(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")
        async with raw_server(cut) as url:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await http.post(url, content=b"x")
        async with raw_server(good) as url:
            assert (await http.post(url, content=b"x")).text == "ok"


async def test_a_cancelled_request_leaves_the_pool_usable() -> None:
    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                body = await read_request(reader)
                if body == b"slow":
                    await asyncio.sleep(5)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async with raw_server(slow_then_fast) as url, client() as http:
        waiting = asyncio.ensure_future(http.post(url, content=b"slow"))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await http.post(url, content=b"fast")).text == "ok"
