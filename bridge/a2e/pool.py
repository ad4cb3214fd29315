"""The A2E client's connection pool: httpx's transport and httpcore's pool, over connections that
are asyncio's own transports rather than anyio streams.

Why hand-written (issue 12, ``bench/relay_latency.py``): httpcore reaches the network through a
backend; its asyncio one is anyio's, which wraps every read and write in a cancel scope
(``fail_after``) and a checkpoint, and answers httpcore's liveness check of every idle connection
(``get_extra_info("is_readable")``, run over the whole pool before each request and after each
response) by rebuilding the socket's attribute table (``getpeername()``, an enum, a dict of
lambdas). At 8 rooms that was a fifth of the bridge's CPU per speak. Here a connection is an
``asyncio.Protocol`` buffering what arrives; a read takes from the buffer or waits for it, a write is
``transport.write`` (waiting only while asyncio's flow control says so), timeouts are one timer
armed only when a read or write has to wait, TLS is ``loop.start_tls``. Failures are httpcore's
exceptions, which httpx maps as it does anyio's. Everything above the socket stays httpx's and
httpcore's: requests, HTTP/1.1, keep-alive, the pool and its limits.
"""

# ruff: noqa: ASYNC109  (the ``timeout`` parameters are httpcore's network interface)

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import urllib.request
from collections.abc import Awaitable, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["pooled_client"]

HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's connection attempt delay, as anyio's connect_tcp uses
READ_BUFFER_LIMIT = 256 * 1024  # bytes buffered before the socket is no longer read (asyncio flow control)


def pooled_client(*, timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    """An httpx client for A2E; with HTTP(S) proxies in the environment, httpx's own (which routes
    through them; an explicit transport would turn them off)."""
    if any(scheme in ("http", "https", "all") for scheme in urllib.request.getproxies()):
        return httpx.AsyncClient(timeout=timeout, limits=limits)
    return httpx.AsyncClient(timeout=timeout, transport=_Transport(limits))


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport (its request and exception mapping) over an httpcore pool that connects
    through :class:`_Backend`. httpx takes no network backend, so its pool is replaced by one built
    with the same settings (``_pool`` is where httpx keeps it; tests/a2e check that ours is used)."""

    def __init__(self, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend())


SocketOptions = Iterable[tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]] | None


class _Backend(httpcore.AsyncNetworkBackend):
    """Connections as asyncio transports (see the module docstring)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: SocketOptions = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connect(loop.create_connection(_Connection, host, port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                                                     local_addr=(local_address, 0) if local_address else None),
                              timeout, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: SocketOptions = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connect(loop.create_unix_connection(_Connection, path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(connecting: Awaitable[tuple[asyncio.BaseTransport, _Connection]], timeout: float | None,
                   socket_options: SocketOptions) -> _Stream:
    try:
        async with asyncio.timeout(timeout):
            transport, connection = await connecting
    except TimeoutError:
        raise httpcore.ConnectTimeout("timed out connecting") from None
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
    assert isinstance(transport, asyncio.Transport)
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():  # (asyncio has set TCP_NODELAY already, as anyio does)
        sock.setsockopt(*option)
    return _Stream(transport, connection)


class _Connection(asyncio.Protocol):
    """What arrives on one connection, kept until it is read; its end or failure; and whether the
    socket takes more writes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None  # the connection failed (else ``eof`` is a clean end)
        self.reader: asyncio.Future[None] | None = None  # a read waiting for data
        self.writing_paused = False  # asyncio's buffer is over its high-water mark
        self.writers: list[asyncio.Future[None]] = []  # writes waiting for it to drain
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_BUFFER_LIMIT and self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake_reader()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        writers, self.writers = self.writers, []
        for writer in writers:
            if not writer.done():
                writer.set_result(None)

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        if len(self.buffer) <= max_bytes:
            data = bytes(self.buffer)
            self.buffer.clear()
        else:
            data = bytes(self.buffer[:max_bytes])
            del self.buffer[:max_bytes]
        if self.reading_paused and len(self.buffer) <= READ_BUFFER_LIMIT // 2 and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connection."""

    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport, self._connection = transport, connection
        self._socket: socket.socket | None = transport.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.buffer and not connection.eof:
            connection.reader = asyncio.get_running_loop().create_future()
            try:
                await _within(connection.reader, timeout, httpcore.ReadTimeout)
            finally:
                connection.reader = None
        if connection.buffer:
            return connection.take(max_bytes)
        if connection.lost is not None:
            raise httpcore.ReadError(str(connection.lost) or type(connection.lost).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from None
        connection = self._connection
        if connection.writing_paused:  # over asyncio's high-water mark: wait until the socket took it
            drained = asyncio.get_running_loop().create_future()
            connection.writers.append(drained)
            await _within(drained, timeout, httpcore.WriteTimeout)
            if connection.lost is not None:
                raise httpcore.WriteError(str(connection.lost) or type(connection.lost).__name__)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._connection, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        return _Stream(transport, self._connection)  # (the connection now reads the decrypted stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore's liveness check of an idle kept-alive connection
            connection = self._connection
            return bool(connection.buffer) or connection.eof or self._transport.is_closing() or _readable(self._socket)
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._socket
        return None


async def _within(waiting: asyncio.Future[None], timeout: float | None, expired: type[Exception]) -> None:
    """Wait for ``waiting``; ``expired`` after ``timeout`` seconds (one timer, only when waiting)."""
    if timeout is None:
        await waiting
        return
    timer = asyncio.get_running_loop().call_later(timeout, _expire, waiting, expired, timeout)
    try:
        await waiting
    finally:
        timer.cancel()


def _expire(waiting: asyncio.Future[None], expired: type[Exception], timeout: float) -> None:
    if not waiting.done():
        waiting.set_exception(expired(f"timed out after {timeout:g}s"))


def _readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block: data, or the end a closed connection reads as (httpcore's
    own check). A socket that is gone counts as readable, as there."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
