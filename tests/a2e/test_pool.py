"""The A2E client's connection pool (bridge/a2e/pool.py): it is the one httpx uses, its connections
are kept alive, and a connection the server closed while idle is found out and replaced, over real
loopback sockets to a bare HTTP/1.1 server that closes its idle connections on demand."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
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
