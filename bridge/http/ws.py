"""``GET /v1/rooms/{room_id}/ws``: one client of a room over a websocket.

Three tasks per connection: the reader (parse, act, answer), the event pump (room events into the
outgoing buffer) and the writer (buffer to socket). The buffer is bounded: a client that does not
read is dropped with close code 4008, so it never slows the room or the other clients.
Websocket ping/pong heartbeats are uvicorn's (``ws_ping_interval``/``ws_ping_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge import frames as p
from bridge.errors import BridgeError, CapExceeded, Forbidden, NotFound, OriginNotAllowed, RoomNotOpen, Unauthorized
from bridge.metrics import WS_CONNECTIONS
from bridge.rooms import Rooms
from bridge.rooms.caps import check_browser_qa_context
from bridge.rooms.events import Subscription
from bridge.rooms.observing import forward_rtc_event
from bridge.rooms.registry import LiveRoom
from bridge.settings import Settings

from .auth import Authenticator, Caller

log = logging.getLogger("bridge.ws")

_connection_ids = itertools.count(1)
_CLOSE = object()  # the writer's signal to close after what is queued before it (frames are str)
CLOSE_GRACE = 2.0  # seconds the frames queued before a close (room_closed, errors) may take to go out


class TokenBucket:
    """Frames per second with a burst allowance. Hand-written: ten lines, and the limiter
    libraries (aiolimiter, limits) wait for capacity, while we need an immediate yes/no."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Connection:
    def __init__(self, ws: WebSocket, lr: LiveRoom, rooms: Rooms, s: Settings, caller: Caller) -> None:
        self.ws, self.lr, self.rooms, self.caller = ws, lr, rooms, caller
        self.id = next(_connection_ids)
        # Encoded frames. Bounded by ``send`` (not by the queue) so that the close marker always fits
        # behind the frames.
        self.out: asyncio.Queue[str | object] = asyncio.Queue()
        self.limit = s.ws_send_buffer
        self.max_frame = s.ws_max_frame_bytes
        self.bucket = TokenBucket(s.ws_rate_limit, s.ws_rate_burst)
        self.close_code: p.CloseCode | None = None
        self.close_reason = ""
        self.closing = asyncio.Event()  # set by shut(): the connection must end even if no task returns
        self.finished = False  # the connection is over: late acks go nowhere
        self.streams: set[str] = set()  # this connection's stream keys (names are per connection)

    def send(self, frame: p.ServerFrame) -> None:
        self.send_text(p.encode(frame))

    def send_text(self, text: str) -> None:
        """Queue an encoded frame; a full buffer means the client is not reading: drop it."""
        if self.close_code is not None or self.finished:
            return
        if self.out.qsize() >= self.limit:
            self.shut(p.CloseCode.SLOW_CONSUMER, "send buffer overflow: the client does not read its events")
            return
        self.out.put_nowait(text)

    def send_error(self, exc: BridgeError, frame_id: p.FrameId) -> None:
        self.send(p.Error(code=exc.code, message=exc.message, id=frame_id, details=exc.details))

    def shut(self, code: p.CloseCode, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if code == p.CloseCode.SLOW_CONSUMER:  # what it did not read is dropped, the close goes first
                while not self.out.empty():
                    self.out.get_nowait()
            self.out.put_nowait(_CLOSE)
            self.closing.set()

    async def writer(self) -> None:
        while True:
            frame = await self.out.get()
            if not isinstance(frame, str):  # the close marker
                return
            await self.ws.send_text(frame)

    async def pump(self, sub: Subscription) -> None:
        async for event in sub:
            self.send_text(event.data)  # encoded once by the room's hub, for every subscriber
        if sub.overflowed:  # the room's fan-out cut us off: we fell behind, the room did not end
            self.shut(p.CloseCode.SLOW_CONSUMER, "event buffer overflow: the client does not read its events")
        else:
            self.shut(p.CloseCode.ROOM_CLOSED, "room closed")

    async def ticketer(self) -> None:
        """Keep a ticket-authenticated client (a browser: no key) holding a valid ticket, so it can
        always reconnect: a new one of the same chain (same scope) whenever the one it holds is
        half-way through its life, until the chain's ``BRIDGE_TICKET_MAX_LIFE`` is over. A tenant
        that lost its key gets no renewal, and its socket is closed (4401)."""
        held_until = self.caller.ticket_expires or 0.0
        while True:
            ttl = self.ws.app.state.auth.ticket_ttl
            await asyncio.sleep(max(0.0, held_until - ttl / 2 - time.time()))
            auth: Authenticator = self.ws.app.state.auth  # looked up after the wait: the keys may have changed
            try:
                renewed = auth.renew_ticket(self.caller, self.lr.room.id)
            except Unauthorized as exc:
                self.shut(p.CloseCode.UNAUTHORIZED, exc.message)
                return
            if renewed is not None:
                ticket, expires_in = renewed
                self.send(p.Ticket(ws_ticket=ticket, expires_in=expires_in))
                held_until = time.time() + expires_in
            if renewed is None or expires_in < auth.ticket_ttl:
                # The chain is over, or this ticket reaches its end (none can outlive it): the socket
                # stays, but its next reconnect needs a new ticket from a key holder.
                await self.closing.wait()
                return

    async def reader(self) -> None:
        while self.close_code is None:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if not self.bucket.take():
                self.shut(p.CloseCode.FLOOD, "too many frames: slow down")
                return
            text = message.get("text")
            if text is None:
                self.send(p.Error(code=p.ErrorCode.BINARY_NOT_SUPPORTED, message="send JSON text frames, not binary"))
                continue
            try:
                frame = p.parse(text, self.max_frame)
            except p.ProtocolError as exc:
                self.send(p.Error(code=exc.code, message=exc.message, id=exc.frame_id))
                continue
            try:
                await self.handle(frame)
            except BridgeError as exc:
                self.send_error(exc, frame.id)
            except Exception:  # a bug must cost this frame its answer, not the connection (which did nothing wrong)
                log.exception("ws %s: %s frame failed", self.id, frame.type)
                self.send(p.Error(code=p.ErrorCode.INTERNAL_ERROR, message="internal error", id=frame.id))
            # receive() does not yield while frames are already buffered: let the room's event pumps
            # run between the frames of a burst, or the events they cause pile up unread.
            await asyncio.sleep(0)

    async def handle(self, frame: p.ClientFrame) -> None:
        relay = self.rooms.relay
        if isinstance(frame, p.Ping):
            self.send(p.Pong(id=frame.id))
        elif isinstance(frame, (p.Speak, p.Ask)):
            sub = relay.submit(self.lr, frame.type, frame.text, origin=f"ws-{self.id}")
            self.send(p.Queued(id=frame.id, kind=frame.type, utterance=sub.utterance.id, utterances=sub.utterance.leaves))
            sub.accepted.add_done_callback(lambda done: self._answer(frame, done, lambda seqs: p.Ack(
                id=frame.id, kind=frame.type, position=seqs[0], positions=seqs, utterance=sub.utterance.id,
                utterances=sub.utterance.leaves)))
        elif isinstance(frame, p.SpeakDelta):
            stream = relay.stream_delta(self.lr, self.stream_key(frame.stream), frame.text, origin=f"ws-{self.id}")
            self.send(p.StreamAck(id=frame.id, kind="speak_delta", stream=frame.stream, utterance=stream.utterance.id))
        elif isinstance(frame, p.SpeakEnd):
            stream = relay.stream_end(self.lr, self.stream_key(frame.stream, end=True))
            stream.done.add_done_callback(lambda done: self._answer(frame, done, lambda seqs: p.StreamAck(
                id=frame.id, kind="speak_end", stream=frame.stream, utterance=stream.utterance.id, positions=seqs,
                utterances=[u.id for u in stream.utterance.pieces])))
        elif isinstance(frame, p.Cancel):
            self.send(p.CancelAck(id=frame.id, cancelled=relay.cancel(self.lr, frame.id)))
        elif isinstance(frame, p.Flush):
            flushed, dropped = relay.flush(self.lr, origin=f"ws-{self.id}")
            self.send(p.FlushAck(id=frame.id, flushed=flushed, dropped=dropped))
        elif isinstance(frame, p.SetQaContext):
            if self.caller.browser:
                check_browser_qa_context(self.ws.app.state.settings, self.caller.tenant, frame.text)
            updated = await relay.set_qa_context(self.lr, frame.text)
            self.send(p.QaContextAck(id=frame.id, chars=len(updated.qa_context or "")))
        elif isinstance(frame, p.RtcEvent):
            if not self.caller.forward:
                raise Forbidden("this connection may not forward channel events: connect with a key, or with a "
                                "ticket minted with forward_events")
            forward_rtc_event(self.lr, frame.event, source=f"ws-{self.id}")

    def stream_key(self, name: str, *, end: bool = False) -> str:
        """Stream names are per connection; the connection remembers its open ones (to end them with it)."""
        key = f"ws{self.id}:{name}"
        (self.streams.discard if end else self.streams.add)(key)
        return key

    def _answer(self, frame: p.ClientFrame, accepted: asyncio.Future[list[int]],
                ack: Callable[[list[int]], p.ServerFrame]) -> None:
        """``ack`` once A2E accepted all the frame's commands, else the ``error`` of the first that failed."""
        failure = accepted.exception()
        if failure is not None:
            assert isinstance(failure, BridgeError)
            self.send_error(failure, frame.id)
            return
        self.send(ack(accepted.result()))


async def room_websocket(ws: WebSocket) -> None:
    rooms: Rooms = ws.app.state.rooms
    room_id = ws.path_params["room_id"]
    auth: Authenticator = ws.app.state.auth
    refusal: Unauthorized | None = None
    try:
        caller = auth.authenticate_room(ws)
    except OriginNotAllowed:
        # A page on an origin that may not: the handshake itself is refused, so it never gets a
        # socket. Closing before accept makes the server answer HTTP 403 (without a body: uvicorn's
        # denial-response path logs a spurious error when the app returns after it).
        await ws.close()
        return
    except Unauthorized as exc:
        refusal = exc
    # Accepted before the other refusals, so that they can carry their close code and reason.
    await ws.accept()
    try:
        if refusal is not None:
            raise refusal
        lr = await rooms.registry.lookup(caller.tenant, room_id, must_be_open=True, opened_by=caller.browser_key)
        # checked (and counted) before any work for this client: a refused one never touches the room
        lease = rooms.registry.attach(lr, ticket_chain=caller.ticket_chain)
    except Unauthorized as exc:
        await ws.close(p.CloseCode.UNAUTHORIZED, exc.message)
        return
    except NotFound as exc:
        await ws.close(p.CloseCode.NOT_FOUND, exc.message)
        return
    except RoomNotOpen as exc:
        await ws.close(p.CloseCode.ROOM_NOT_OPEN, exc.message)
        return
    except CapExceeded as exc:
        limit = rooms.registry.clients.limits[exc.cap]
        await ws.close(p.CloseCode.CAP_EXCEEDED, f"cap_exceeded: {exc.cap} (at most {limit})")
        return
    conn = Connection(ws, lr, rooms, ws.app.state.settings, caller)
    tasks: list[asyncio.Task[Any]] = []
    writer: asyncio.Task[None] | None = None
    closing: asyncio.Task[Any] | None = None
    sub: Subscription | None = None
    WS_CONNECTIONS.inc()
    try:
        sub = lr.events.subscribe()
        conn.send(p.RoomInfo(room=lr.room.to_public()))
        writer = asyncio.create_task(conn.writer())
        tasks = [asyncio.create_task(conn.reader()), asyncio.create_task(conn.pump(sub)), writer]
        if caller.ticket_expires is not None:
            tasks.append(asyncio.create_task(conn.ticketer()))
        closing = asyncio.create_task(conn.closing.wait())
        # shut() may come from a task that goes on (the pump on overflow, the reader's frame handler):
        # wait for it too, or a client that never reads would stay attached until it sends something.
        await asyncio.wait([*tasks, closing], return_when=asyncio.FIRST_COMPLETED)
        if not writer.done() and conn.close_code is not None:
            # let the writer deliver what precedes the close (room_closed, errors), briefly
            await asyncio.wait([writer], timeout=CLOSE_GRACE)
    except WebSocketDisconnect:
        pass
    finally:
        if sub is not None:
            sub.close()
        lease.release()  # whatever ended the connection: its slots are given back once
        WS_CONNECTIONS.dec()
        delivered = (writer is not None and writer.done() and not writer.cancelled()
                     and writer.exception() is None)
        conn.finished = True
        for key in conn.streams:  # its unfinished sentences can never be finished now
            rooms.relay.stream_abort(lr, key, "the websocket closed before speak_end")
        for task in [*tasks, *([closing] if closing else [])]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await task
        if conn.close_code is not None:
            # If the writer is still stuck, the socket takes nothing: do not wait long for the close.
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await asyncio.wait_for(ws.close(conn.close_code, conn.close_reason),
                                       timeout=CLOSE_GRACE if delivered else 0.1)
        log.debug("ws %s left room %s (%s)", conn.id, lr.room.id, conn.close_reason or "disconnect")


routes: list[BaseRoute] = [WebSocketRoute("/v1/rooms/{room_id}/ws", room_websocket)]
