"""``GET /v1/rooms/{room_id}/ws``: one client of a room over a websocket.

One task per connection, the endpoint's own: it reads (parse, act, answer). What goes out (answers,
room events) is written by whoever produces it, through the connection's :class:`Outbox`: at once
while the socket takes it, else queued, bounded: a client that does not read is dropped with close
code 4008, so it never slows the room or the other clients. Ticket renewals are a timer.
Websocket ping/pong heartbeats are uvicorn's (``ws_ping_interval``/``ws_ping_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge import frames as p
from bridge.errors import BridgeError, Forbidden, Unauthorized
from bridge.metrics import WS_CONNECTIONS
from bridge.rooms import Rooms
from bridge.rooms.caps import check_browser_qa_context
from bridge.rooms.events import Event
from bridge.rooms.registry import LiveRoom
from bridge.settings import Settings

from .auth import Authenticator, Caller
from .limits import TokenBucket
from .outbox import SEND_ERRORS, Outbox
from .scopes import SERVER_SEND
from .ws_admission import admit

log = logging.getLogger("bridge.ws")

_connection_ids = itertools.count(1)
CLOSE_GRACE = 2.0  # seconds the frames queued before a close (room_closed, errors) may take to go out
HOLD = 0.05  # seconds at most a speak's frames to its sender wait for its A2E request to be written


class Connection:
    """One client of a room. It is the room's event sink (:class:`bridge.rooms.events.Sink`): events
    and answers go to the socket through its :class:`Outbox` as they come, without a task."""

    __slots__ = ("ws", "lr", "rooms", "caller", "wanted", "id", "outbox", "max_frame", "bucket", "close_code",
                 "close_reason", "finished", "interrupted", "streams", "_main", "_timer", "_renewal")

    def __init__(self, ws: WebSocket, send: Send, lr: LiveRoom, rooms: Rooms, s: Settings, caller: Caller,
                 wanted: frozenset[str] | None = None) -> None:
        self.ws, self.lr, self.rooms, self.caller = ws, lr, rooms, caller
        self.wanted = wanted  # the room events it takes (?events=, see rooms.events.event_filter); None: all
        self.id = next(_connection_ids)
        self.outbox = Outbox(ws, send, s.ws_send_buffer, on_overflow=self._overflow, on_lost=self._lost)
        self.max_frame = s.ws_max_frame_bytes
        self.bucket = TokenBucket(s.ws_rate_limit, s.ws_rate_burst)
        self.close_code: p.CloseCode | None = None
        self.close_reason = ""
        self.finished = False  # the connection is over: late acks go nowhere
        self.interrupted = False  # shut() stopped the endpoint's wait for the client (see _interrupt)
        self.streams: set[str] = set()  # this connection's stream keys (names are per connection)
        self._main: asyncio.Task[Any] | None = None  # the endpoint's task, while it reads
        self._timer: asyncio.TimerHandle | None = None  # the close's grace period
        self._renewal: asyncio.TimerHandle | None = None  # the next ticket renewal

    # -- as the room's event sink ------------------------------------------------------------------
    def deliver(self, event: Event) -> None:  # only the types it wanted: the hub filters (RoomEvents)
        if self.close_code is None and not self.finished:  # send_text, inlined: once per client per event
            self.outbox.put(event.data)  # encoded once by the room's hub, for every subscriber

    def ended(self) -> None:
        if self.lr.moved:  # another instance serves the room now (bridge/cluster)
            self.shut(p.CloseCode.RECONNECT, "the room moved to another instance: reconnect")
        else:
            self.shut(p.CloseCode.ROOM_CLOSED, "room closed")

    # -- out -----------------------------------------------------------------------------------------
    def send(self, frame: p.ServerFrame) -> None:
        self.send_text(p.encode(frame))

    def send_text(self, text: str) -> None:
        if self.close_code is None and not self.finished:
            self.outbox.put(text)

    def send_error(self, exc: BridgeError, frame_id: p.FrameId) -> None:
        self.send(p.Error(code=exc.code, message=exc.message, id=frame_id, details=exc.details))

    def _overflow(self) -> None:
        self.shut(p.CloseCode.SLOW_CONSUMER, "send buffer overflow: the client does not read its events")

    def _lost(self) -> None:
        self.finished = True  # the client is gone: nothing more to send, the reader sees the disconnect

    def shut(self, code: p.CloseCode, reason: str) -> None:
        """End the connection with ``code``: no more room events, the close after what is queued (a
        slow reader's queue is dropped: the close goes first), and the endpoint stops waiting for the
        client if the close cannot go out in time."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.lr.events.detach(self)
        if code == p.CloseCode.SLOW_CONSUMER:
            self.outbox.drop()
        if not self.finished:
            self.outbox.close(code, reason)  # uvicorn answers the reader's receive() with a disconnect
        self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._interrupt)

    def _interrupt(self) -> None:
        """The close did not end the endpoint's wait for the client: cancel that wait (the endpoint
        catches it and cleans up). A client that does not read may never see the close frame."""
        self._timer = None
        if self._main is not None:  # still reading
            self.interrupted = True
            self._main.cancel()

    # -- tickets -------------------------------------------------------------------------------------
    def renew_ticket_at(self, held_until: float) -> None:
        """Keep a ticket-authenticated client (a browser: no key) holding a valid ticket, so it can
        always reconnect: a new one of the same chain (same scope) whenever the one it holds is
        half-way through its life, until the chain's ``BRIDGE_TICKET_MAX_LIFE`` is over. A timer, not
        a task: most clients of a big room are browsers."""
        ttl = self.ws.app.state.auth.ticket_ttl
        self._renewal = asyncio.get_running_loop().call_later(max(0.0, held_until - ttl / 2 - time.time()),
                                                              self._renew_ticket)

    def _renew_ticket(self) -> None:
        self._renewal = None
        if self.close_code is not None or self.finished:
            return
        auth: Authenticator = self.ws.app.state.auth  # looked up now: the keys may have changed
        try:
            renewed = auth.renew_ticket(self.caller, self.lr.room.id)
        except Unauthorized as exc:  # its tenant no longer has a key
            self.shut(p.CloseCode.UNAUTHORIZED, exc.message)
            return
        if renewed is None:
            return  # the chain is over: the socket stays, its next reconnect needs a new ticket
        ticket, expires_in = renewed
        self.send(p.Ticket(ws_ticket=ticket, expires_in=expires_in))
        if expires_in >= auth.ticket_ttl:  # else this one reaches the chain's end: none can outlive it
            self.renew_ticket_at(time.time() + expires_in)

    # -- in ------------------------------------------------------------------------------------------
    async def read(self) -> None:
        """Read the client's frames until it leaves or the connection is shut. Runs in the endpoint's
        own task (one frame of it per connection, for as long as the socket is open)."""
        self._main = task = asyncio.current_task()
        try:
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
                # receive() does not yield while frames are already buffered: let the room's event
                # deliveries run between the frames of a burst, or the events they cause pile up.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not self.interrupted or task is None:
                raise
            task.uncancel()  # shut() gave up waiting for the close to end the read (see _interrupt)
        finally:
            self._main = None

    async def handle(self, frame: p.ClientFrame) -> None:
        room = self.rooms.handle(self.lr)  # in place for a room run here, forwarded for a mirror
        if isinstance(frame, p.Ping):
            self.send(p.Pong(id=frame.id))
        elif isinstance(frame, (p.Speak, p.Ask)):
            # ``queued`` and the ack are written as the room tells them (not from a callback of a
            # future, which runs a loop turn later): before the room's events about the command
            kind = frame.type
            self.outbox.hold(HOLD)  # its frames (queued, the room's events) go out once its A2E request did
            await room.submit(self.lr, kind, frame.text, origin=f"ws-{self.id}", written=self.outbox.release,
                              queued=lambda q: self.send(
                p.Queued(id=frame.id, kind=kind, utterance=q.utterance, utterances=q.leaves())),
                then=lambda q: self._answer(frame, q.accepted, lambda seqs: p.Ack(
                    id=frame.id, kind=kind, position=seqs[0], positions=seqs, utterance=q.utterance,
                    utterances=q.leaves())))
        elif isinstance(frame, p.SpeakDelta):
            uid = await room.stream_delta(self.lr, self.stream_key(frame.stream), frame.text, origin=f"ws-{self.id}")
            self.send(p.StreamAck(id=frame.id, kind="speak_delta", stream=frame.stream, utterance=uid))
        elif isinstance(frame, p.SpeakEnd):
            end = await room.stream_end(self.lr, self.stream_key(frame.stream, end=True))
            end.done.add_done_callback(lambda done: self._answer(frame, done, lambda seqs: p.StreamAck(
                id=frame.id, kind="speak_end", stream=frame.stream, utterance=end.utterance, positions=seqs,
                utterances=end.pieces())))
        elif isinstance(frame, p.Cancel):
            self.send(p.CancelAck(id=frame.id, cancelled=await room.cancel(self.lr, frame.id)))
        elif isinstance(frame, p.Flush):
            flushed, dropped = await room.flush(self.lr, origin=f"ws-{self.id}")
            self.send(p.FlushAck(id=frame.id, flushed=flushed, dropped=dropped))
        elif isinstance(frame, p.SetQaContext):
            if self.caller.browser:
                check_browser_qa_context(self.ws.app.state.settings, self.caller.tenant, frame.text)
            text = await room.set_qa_context(self.lr, frame.text)
            self.send(p.QaContextAck(id=frame.id, chars=len(text)))
        elif isinstance(frame, p.RtcEvent):
            if not self.caller.forward:
                raise Forbidden("this connection may not forward channel events: connect with a key, or with a "
                                "ticket minted with forward_events")
            await room.rtc_event(self.lr, frame.event, source=f"ws-{self.id}")

    def stream_key(self, name: str, *, end: bool = False) -> str:
        """Stream names are per connection; the connection remembers its open ones (to end them with it)."""
        key = f"ws{self.id}:{name}"
        (self.streams.discard if end else self.streams.add)(key)
        return key

    def _answer(self, frame: p.ClientFrame, accepted: asyncio.Future[list[int]],
                ack: Callable[[list[int]], p.ServerFrame]) -> None:
        """``ack`` once A2E accepted all the frame's commands, else the ``error`` of the first that failed."""
        self.outbox.release()  # (already, unless A2E failed before the request was written)
        failure = accepted.exception()
        if failure is not None:
            assert isinstance(failure, BridgeError)
            self.send_error(failure, frame.id)
            return
        self.send(ack(accepted.result()))

    def finish(self) -> None:
        """The connection is over, whichever way: out of the room, timers and a waiting send stopped."""
        self.finished = True
        self.lr.events.detach(self)
        for timer in (self._timer, self._renewal):
            if timer is not None:
                timer.cancel()
        self._timer = self._renewal = None
        self.outbox.drop()


async def room_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """The route's ASGI app (not a Starlette endpoint function, which would only get the WebSocket:
    the connection's frames are written with the server's ``send``, see :class:`Outbox`)."""
    ws = WebSocket(scope, receive, send)  # the handshake and the close go through the middleware's wrappers
    rooms: Rooms = ws.app.state.rooms
    admitted = await admit(ws, rooms)
    if admitted is None:
        return
    caller, lr, lease, wanted = admitted
    conn = Connection(ws, scope.get(SERVER_SEND, send), lr, rooms, ws.app.state.settings, caller, wanted)
    WS_CONNECTIONS.inc()
    try:
        lr.events.attach(conn)
        conn.send(p.RoomInfo(room=lr.room.to_public()))
        if caller.ticket_expires is not None:
            conn.renew_ticket_at(caller.ticket_expires)
        await conn.read()
    except WebSocketDisconnect:
        pass
    finally:
        conn.finish()
        for key in conn.streams:  # its unfinished sentences can never be finished now
            with contextlib.suppress(BridgeError):  # (a mirror's owner may be gone: nothing left to stop)
                await rooms.handle(lr).stream_abort(lr, key, "the websocket closed before speak_end")
        lease.release()  # whatever ended the connection: its slots are given back once
        WS_CONNECTIONS.dec()
        if conn.close_code is not None and not conn.outbox.close_sent:
            # The close could not go out behind the frames (a client that does not read): try once,
            # briefly; a socket that takes nothing is left to uvicorn's keepalive.
            with contextlib.suppress(*SEND_ERRORS):
                async with asyncio.timeout(0.1):  # not wait_for: see bridge/webhooks/deliverer.py
                    await ws.close(conn.close_code, conn.close_reason)
        log.debug("ws %s left room %s (%s)", conn.id, lr.room.id, conn.close_reason or "disconnect")


class _RoomSocket:
    """:func:`room_websocket` as an object, which Starlette mounts as an ASGI app (a function would
    be taken for an endpoint, called with a WebSocket)."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return room_websocket(scope, receive, send)  # not awaited here: no frame of ours held per socket


routes: list[BaseRoute] = [WebSocketRoute("/v1/rooms/{room_id}/ws", _RoomSocket())]
