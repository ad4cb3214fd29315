"""The A2E client's connection pool: httpx's own transport and httpcore's own pool, whose
connections answer httpcore's liveness check cheaply.

Why (issue 12): before it hands a request a kept-alive connection, and again when a response is
closed, httpcore checks every idle connection of the pool for a server-side close
(``get_extra_info("is_readable")``). Through its anyio backend each check rebuilds anyio's socket
attribute table (a ``getpeername()`` call, an enum conversion, a dict of lambdas) to find the socket
it polls: with 8 rooms speaking, ~16 checks per speak cost ~0.3 ms, a sixth of the bridge's CPU per
speak. Here the socket is looked up once per connection; the check itself is the same ``poll()``.
Everything else (reads, writes, timeouts, TLS) is anyio's, through httpcore's own backend.
"""

# ruff: noqa: ASYNC109  (the ``timeout`` parameters are httpcore's network interface, passed on)

from __future__ import annotations

import select
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["pooled_client"]


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
    """httpcore's anyio backend, its streams wrapped in :class:`_Stream`."""

    def __init__(self) -> None:
        self._anyio = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: SocketOptions = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._anyio.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: SocketOptions = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._anyio.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._anyio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """An anyio stream of httpcore's, whose socket is looked up once (see the module docstring)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block: data, or the end a closed connection reads as (httpcore's
    own check, on a socket already at hand). A socket that is gone counts as readable, as there."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
