"""The main server's guard on its sockets, in uvicorn's h11 protocol: a deadline for request heads,
a bounded drain of refused bodies, a cap on client connections, and one log line per interval
when descriptors run out at accept. :mod:`bridge.serving` builds the server that uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bridge.errors import TooManyConnections
from bridge.frames import encode, error_body

LOG_INTERVAL = 10.0  # seconds between two log lines about the same flood


class _Throttle:
    """At most one event per ``interval``; counts the ones it swallowed in between."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self.suppressed = 0

    def ready(self) -> int | None:
        """``None`` to stay quiet, else the number of events swallowed since the last one let through."""
        now = self.clock()
        if now < self._next:
            self.suppressed += 1
            return None
        self._next = now + self.interval
        count, self.suppressed = self.suppressed, 0
        return count


class DescriptorExhaustionFilter(logging.Filter):
    """Lets one "Too many open files" record through per interval, with the count of those dropped.

    Where the repeats come from: when ``accept()`` fails with EMFILE, asyncio's accept loop
    (``selector_events._accept_connection``) logs "socket.accept() out of system resource" through
    the loop's exception handler (logger ``asyncio``), and it does not stop there: it goes on calling
    ``accept()`` up to ``backlog`` times (uvicorn's default 2048) in the same tick, logging each
    failure, and schedules a retry of the listening socket one second later for each of them. With
    descriptors exhausted that is thousands of log lines a second, each with a traceback.
    """

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.throttle = _Throttle(interval, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_descriptor_exhaustion(record):
            return True
        suppressed = self.throttle.ready()
        if suppressed is None:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:  # one line: the traceback is always the same, inside asyncio
            text = str(exc).replace("%", "%%") if record.args else str(exc)
            record.msg = f"{record.msg}: {text}"
            record.exc_info = record.exc_text = None
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed in the last " \
                         f"{self.throttle.interval:g} s)"
        return True


def _is_descriptor_exhaustion(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    return "out of system resource" in str(record.msg) or "Too many open files" in record.getMessage()


def install_descriptor_exhaustion_filter(logger_name: str = "asyncio") -> DescriptorExhaustionFilter:
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, DescriptorExhaustionFilter):
            return existing
    flt = DescriptorExhaustionFilter()
    logger.addFilter(flt)
    return flt


def _busy_response() -> bytes:
    error = TooManyConnections("the server has too many open connections; retry later")
    body = encode(error_body(error.code, error.message)).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n")
    return head.encode() + body


BUSY_RESPONSE = _busy_response()


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus what :class:`GuardedH11Protocol` reads from it."""

    def __init__(self, app: Any, *, header_timeout: float | None = None, max_connections: int | None = None,
                 **kwargs: Any) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.refusals = _Throttle()  # shared by the server's connections: one log line per interval
        super().__init__(app, **kwargs)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline, a bounded drain of refused bodies, and
    a cap on client connections.

    uvicorn only times out idle keep-alive connections (``timeout_keep_alive``, cancelled by the
    first byte received), so a client that sends part of a request head, or trickles it a byte at a
    time, would hold its socket forever. Here a deadline starts when the connection is made (and
    again when a response completes, for the next request on a kept-alive connection) and is
    cancelled once h11 has parsed a whole request head (``their_state`` leaves ``IDLE``); if it
    expires first, the connection is closed. Bytes arriving do not extend it, so a slowloris is cut.

    When the app answered before reading the whole body (a 413 from the body limit), uvicorn reads
    and discards the rest, so that the client, which usually sends its whole body before it reads,
    gets the answer rather than a connection reset, and the connection can be reused. That drain
    is bounded here: at most ``DRAIN_MAX_BYTES`` and the same deadline, then the connection is closed.

    Past ``max_connections`` client connections (HTTP, and websockets, which uvicorn keeps in the
    same ``server_state.connections`` set after the upgrade), a new connection is answered with a
    canned 503 ``too_many_connections`` and closed at once: never queued, never read.
    """

    DRAIN_MAX_BYTES = 4 * 1024 * 1024

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float | None = getattr(config, "header_timeout", None)
        self.max_connections: int | None = getattr(config, "max_connections", None)
        self.refusals: _Throttle = getattr(config, "refusals", None) or _Throttle()
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # what the deadline waits for: "head" or "drain"
        self._drained = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self.connections.discard(self)
            suppressed = self.refusals.ready()
            if suppressed is not None:
                self.logger.warning("connection limit reached (%d, BRIDGE_MAX_CONNECTIONS): refusing new connections%s",
                                    self.max_connections, f" ({suppressed} refused since the last message)"
                                    if suppressed else "")
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self._sync_deadline()

    def data_received(self, data: bytes) -> None:
        if self._phase == "drain":
            self._drained += len(data)
            if self._drained > self.DRAIN_MAX_BYTES:
                self._close("the rest of a refused request body is too long to drain")
                return
        super().data_received(data)
        self._sync_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_phase(None)
        super().connection_lost(exc)

    def _sync_deadline(self) -> None:
        """Run the deadline while a request head is awaited or a refused body drained, only then."""
        if self.header_timeout is None or self.transport.is_closing():
            self._set_phase(None)
        elif self.conn.their_state is h11.IDLE:
            self._set_phase("head")
        elif self.conn.their_state is h11.SEND_BODY and self.conn.our_state is h11.DONE:
            self._set_phase("drain")
        else:
            self._set_phase(None)

    def _set_phase(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase, self._drained = phase, 0
        if phase is not None and self.header_timeout is not None:
            self._deadline = self.loop.call_later(self.header_timeout, self._deadline_expired)

    def _deadline_expired(self) -> None:
        self._deadline = None
        what = ("sent no complete request head" if self._phase == "head"
                else "did not finish sending a refused request body")
        self._close(f"the client {what} within {self.header_timeout:g}s")

    def _close(self, why: str) -> None:
        self._set_phase(None)
        if self.transport.is_closing():
            return
        self.logger.debug("closing a connection: %s", why)
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()
