"""One room's websocket: commands with acks, events fanned out, reconnection to the same room.

A single supervisor task owns the socket: it reads every frame (acks resolve the waiting command,
events go to the :class:`~.fanout.EventHub`) and, when the socket drops unexpectedly, reconnects
with backoff. Commands never resend by themselves: ``speak`` is not idempotent, so a command
whose ack was pending when the socket dropped fails with :class:`ConnectionLost` and the caller
decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import urllib.parse
from collections.abc import AsyncIterable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from .backoff import Reconnect
from .errors import BridgeError, ClientError, CommandError, ConnectionLost, RoomClosed
from .fanout import EventHub, EventStream

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; only needed by type checkers

__all__ = ["ConnectionState", "Room", "RoomBackend"]


class RoomBackend(Protocol):
    """What a room needs of its :class:`~a2e_bridge_client.BridgeClient` (and nothing more, so this
    module does not import the client module that imports it)."""

    connect_timeout: float
    reconnect: Reconnect | None
    event_buffer: int

    def auth_headers(self) -> dict[str, str]: ...
    def ws_url(self, room_id: str) -> str: ...
    async def close_room(self, room_id: str) -> dict[str, Any]: ...
    async def new_ticket(self, room_id: str) -> dict[str, Any]: ...

log = logging.getLogger("a2e_bridge_client")


async def _aiter(items: AsyncIterable[str] | Iterable[str]) -> Any:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item

# Close codes after which reconnecting cannot help (the bridge's CloseCode, bridge/frames.py).
CLOSE_BAD_QUERY = 1008  # an ``events`` filter naming an unknown event type
CLOSE_ROOM_CLOSED = 4000
CLOSE_ROOM_NOT_OPEN = 4009
CLOSE_RECONNECT = 4012  # the bridge instance stops serving the room (a deploy): another serves it, reconnect at once
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
FINAL_CLOSE_CODES = frozenset({CLOSE_ROOM_CLOSED, CLOSE_ROOM_NOT_OPEN, CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND,
                               CLOSE_BAD_QUERY})
_HTTP_TO_CLOSE = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_UNAUTHORIZED, 404: CLOSE_NOT_FOUND, 409: CLOSE_ROOM_NOT_OPEN}
_ABNORMAL = 1006  # no close frame: the network went away


def _closed_locally() -> ConnectionLost:
    return ConnectionLost("the room's connection was closed by this client")


class ConnectionState(str, enum.Enum):
    """The client's websocket to the room (the room's own state is ``room.info["state"]``)."""

    IDLE = "idle"  # not connected yet
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"  # dropped unexpectedly; commands wait (up to connect_timeout)
    CLOSED = "closed"  # for good: closed locally, the room ended, or the bridge refused us


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A readiness future may fail with nobody waiting on it: do not log 'never retrieved'."""
    if not future.cancelled():
        future.exception()


def _close_of(exc: ConnectionClosed) -> tuple[int, str]:
    if exc.rcvd is not None:
        return exc.rcvd.code, exc.rcvd.reason
    return _ABNORMAL, "connection lost"


class Room:
    """A room on the bridge, as returned by :meth:`BridgeClient.create_room`.

    ``info`` is the room's JSON (id, channel, app_id, token, uid, expires_at, state...), kept up
    to date from ``room`` events. ``owned`` rooms (created by this client) are left when an
    ``async with room:`` block ends; others are only disconnected. ``events``: only these room
    events (``["command", "reply"]``: the bridge's ``?events=``; ``room``/``room_closed`` and the
    answers to this client's commands always come); None: every event.
    """

    def __init__(self, client: RoomBackend, info: dict[str, Any], *, owned: bool = False,
                 events: Iterable[str] | None = None) -> None:
        self.client = client
        self.event_filter: tuple[str, ...] | None = None if events is None else tuple(events)
        self.info: dict[str, Any] = dict(info)
        self.id: str = str(info["id"])
        self.owned = owned
        # the newest ticket we hold (from creation, then pushed by the bridge); used once, by the next connect
        self._ticket: str | None = info.get("ws_ticket")
        self._state = ConnectionState.IDLE
        self._ws: ClientConnection | None = None
        self._ready: asyncio.Future[ClientConnection] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._hub = EventHub(client.event_buffer)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._saw_room_closed = False
        self._end_error: ClientError | None = None

    def __repr__(self) -> str:
        return f"<Room {self.id} {self.info.get('state')} ws={self._state.value}>"

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def ws_url(self) -> str:
        return self.client.ws_url(self.id)

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        try:
            await self.connect()
        except BaseException:
            # A room this client created must not keep running (and costing) after a failed join.
            with contextlib.suppress(Exception):
                await self.close(leave=self.owned)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close(leave=self.owned)

    async def connect(self) -> Self:
        """Open the websocket and start reading; returns once the bridge greeted us.

        Raises:
            RoomClosed: the bridge refused (4401 bad key or ticket, 4404 unknown room, 4009 room
                no longer open).
            ConnectionLost: the bridge could not be reached.
        """
        if self._state is ConnectionState.CLOSED:
            raise self._end_error or _closed_locally()
        if self._state is not ConnectionState.IDLE:  # connected, or another connect() is under way
            await self._connection()
            return self
        self._state = ConnectionState.CONNECTING
        ready = self._ready = self._new_ready()
        try:
            ws = await self._open_socket()
        except RoomClosed as exc:
            self._finish(exc, clean=False)
            raise
        except BaseException as exc:
            # Nothing to resume yet: back to idle, and whoever waited on this attempt learns why.
            self._state, self._ready = ConnectionState.IDLE, None
            if isinstance(exc, Exception):
                ready.set_exception(exc)
            else:
                ready.cancel()
            raise
        if self._closing:  # close() was called while we were connecting
            await ws.close()
            raise self._end_error or _closed_locally()
        self._attach(ws)
        self._runner = asyncio.create_task(self._supervise(ws), name=f"a2e-room-{self.id}")
        return self

    async def close(self, leave: bool = True) -> None:
        """Close the websocket; with ``leave`` also delete the room (A2E refunds unused time only
        when the room is left). ``events()`` iterators end cleanly."""
        self._closing = True
        try:
            if leave:
                try:
                    self.info.update(await self.client.close_room(self.id))
                except BridgeError as exc:
                    if exc.status != 404:
                        raise
                # Give the bridge's room_closed (then close 4000) a moment to reach events().
                if self._runner is not None and self._ws is not None:
                    await asyncio.wait({self._runner}, timeout=2)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        ws, runner = self._ws, self._runner
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if runner is not None and not runner.done():
            if ws is not None:  # the reader sees the close and the supervisor returns by itself
                await asyncio.wait({runner}, timeout=self.client.connect_timeout)
            if not runner.done():  # sleeping in backoff or mid-handshake
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        self._finish(_closed_locally(), clean=True)

    # -- commands -------------------------------------------------------------------------------
    async def speak(self, text: str) -> dict[str, Any]:
        """Make the avatar say ``text``. Returns the ack (``position``, ``positions``) once A2E
        accepted every chunk; :class:`CommandError` if it was refused or flushed."""
        return await self._command({"type": "speak", "text": text})

    async def ask(self, text: str) -> dict[str, Any]:
        """Ask the avatar (answered from the QA context); the answer arrives as ``reply`` events."""
        return await self._command({"type": "ask", "text": text})

    async def flush(self) -> dict[str, Any]:
        """Drop the room's pending commands and stop its streams and brain answers; the ack's
        ``flushed`` says how many commands, ``dropped`` lists every utterance id it cancelled."""
        return await self._command({"type": "flush"})

    async def cancel(self, utterance: str) -> dict[str, Any]:
        """Cancel a queued utterance (a speak, ask, stream, or one piece of it) by its id (from
        ``queued``/``utterance`` events or an ack); the ack's ``cancelled`` lists what it removed.
        :class:`CommandError` ``not_cancellable`` if A2E has all of it already."""
        frame_id = utterance  # the cancel frame's id is the utterance's: its ack echoes it
        return await self._command({"type": "cancel"}, frame_id=frame_id)

    async def speak_stream(self, text: AsyncIterable[str] | Iterable[str], *, stream: str | None = None,
                           min_interval: float = 0.025) -> dict[str, Any]:
        """Say a text as it is produced (an LLM's answer, token by token): each sentence is spoken as
        soon as it is complete, while the rest is still coming. Returns the ``speak_end`` ack once A2E
        accepted every piece (``utterance``, ``positions``, ``utterances``).

        Tokens are sent as ``speak_delta`` frames, at most one per ``min_interval`` seconds (what
        arrives in between goes in the next one), which keeps a fast model under the bridge's frame
        rate limit. If the bridge refuses a delta (the stream was cancelled or flushed, the queue is
        full) the iteration stops and :class:`CommandError` is raised: stop producing the answer.
        """
        name = stream or f"stream-{next(self._ids)}"
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[dict[str, Any]]] = []
        buffered, next_send = "", 0.0
        sender: asyncio.Task[None] | None = None

        def refused() -> None:
            for ack in acks:
                if ack.done() and not ack.cancelled() and (error := ack.exception()) is not None:
                    raise error

        async def send_buffered() -> None:  # until nothing is left: text never waits for the next token
            nonlocal buffered, next_send
            while buffered:
                await asyncio.sleep(max(0.0, next_send - loop.time()))
                part, buffered = buffered, ""
                next_send = loop.time() + min_interval
                acks.append(await self._send({"type": "speak_delta", "stream": name, "text": part}))

        try:
            async for token in _aiter(text):
                refused()
                buffered += token
                if sender is None or sender.done():
                    if sender is not None:
                        sender.result()
                    sender = asyncio.create_task(send_buffered())
            if sender is not None:
                await sender
        except BaseException:
            if sender is not None:
                sender.cancel()
            with contextlib.suppress(Exception):
                await self._send({"type": "speak_end", "stream": name})  # frees the name; its answer is moot
            raise
        end = await self._command({"type": "speak_end", "stream": name})
        for ack in acks:
            await ack
        return end

    async def set_qa_context(self, text: str) -> dict[str, Any]:
        """Replace the QA context ``ask`` answers from; the ack's ``chars`` is its length."""
        return await self._command({"type": "set_qa_context", "text": text})

    async def ping(self) -> dict[str, Any]:
        """A round trip through the bridge's relay (its ``pong``)."""
        return await self._command({"type": "ping"})

    def events(self) -> EventStream:
        """A new iterator over every event broadcast to the room from now on (``command``,
        ``reply``, ``utterance``, ``speaking_started``, ``speaking_stopped``, ``room``, ``room_closed``,
        ``error`` events of a failed brain), and this client's ``queued`` notices.

        Each iterator gets every event. It ends after ``room_closed`` or :meth:`close`, and
        raises the reason if the connection ended otherwise (e.g. :class:`RoomClosed`).
        """
        return self._hub.subscribe()

    async def _command(self, frame: dict[str, Any], *, frame_id: str | None = None) -> dict[str, Any]:
        frame_id, waiter = await self._post(frame, frame_id)
        try:
            return await waiter
        finally:
            if self._pending.get(frame_id) is waiter:
                del self._pending[frame_id]

    async def _send(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a command frame without waiting: the future resolves with its ack or fails with its error."""
        return (await self._post(frame, None))[1]

    async def _post(self, frame: dict[str, Any], frame_id: str | None) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        deadline = asyncio.get_running_loop().time() + self.client.connect_timeout
        frame_id = frame_id or str(next(self._ids))
        text = json.dumps({**frame, "id": frame_id}, ensure_ascii=False)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiter.add_done_callback(_retrieve)
        try:
            while True:
                ready = self._ready
                ws = await self._connection(deadline)
                if ws.state is State.OPEN:
                    break
                # Dead but not yet noticed by the reader: nothing was sent, so waiting for the
                # next socket is safe (unlike resending a command that may have arrived).
                if self._ready is ready:
                    self._ready = self._new_ready()
            self._pending[frame_id] = waiter  # before sending: the ack may arrive while send awaits
            try:
                await ws.send(text)
            except ConnectionClosed:
                raise ConnectionLost("the websocket dropped while the command was being sent") from None
            return frame_id, waiter
        except BaseException:
            self._pending.pop(frame_id, None)
            raise

    async def _connection(self, deadline: float | None = None) -> ClientConnection:
        """The open socket, waiting out a reconnect until ``deadline`` (default: for at most
        ``connect_timeout`` seconds)."""
        ready = self._ready
        if ready is None:
            raise ClientError("not connected: use 'async with room:' or 'await room.connect()' first")
        if ready.done():
            return ready.result()
        loop = asyncio.get_running_loop()
        timeout = self.client.connect_timeout if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await asyncio.wait_for(asyncio.shield(ready), timeout)
        except asyncio.TimeoutError:
            raise ConnectionLost(f"not reconnected within {self.client.connect_timeout}s") from None

    # -- the socket -----------------------------------------------------------------------------
    async def _open_socket(self) -> ClientConnection:
        """Connect and read the bridge's greeting (``room``), or learn why it refused us."""
        if self.client.auth_headers():
            return await self._handshake(self._url())
        stored, self._ticket = self._ticket, None
        if stored is not None:
            try:
                return await self._handshake(self._with_ticket(stored))
            except RoomClosed as exc:
                if exc.close_code != CLOSE_UNAUTHORIZED:
                    raise
                # The ticket from the room's creation has expired (they live two minutes).
        return await self._handshake(self._with_ticket((await self.client.new_ticket(self.id))["ws_ticket"]))

    def _with_ticket(self, ticket: str) -> str:
        return self._url(ticket)

    def _url(self, ticket: str | None = None) -> str:
        query = {"ticket": ticket} if ticket is not None else {}
        if self.event_filter is not None:
            query["events"] = ",".join(self.event_filter)
        return f"{self.ws_url}?{urllib.parse.urlencode(query, safe=',')}" if query else self.ws_url

    async def _handshake(self, url: str) -> ClientConnection:
        headers = self.client.auth_headers()
        timeout = self.client.connect_timeout
        try:
            ws = await connect(url, additional_headers=headers, open_timeout=timeout)
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            raise ConnectionLost(f"cannot open {self.ws_url}: {exc}") from exc
        try:
            greeting = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        except ConnectionClosed as exc:
            code, reason = _close_of(exc)
            if code in FINAL_CLOSE_CODES:
                raise RoomClosed(code, reason) from None
            raise ConnectionLost(f"the bridge closed the websocket ({code} {reason})") from None
        except (asyncio.TimeoutError, ValueError) as exc:
            await ws.close()
            raise ConnectionLost(f"no greeting from the bridge: {exc!r}") from None
        if isinstance(greeting, dict) and greeting.get("type") == "error" and greeting.get("code") == "invalid_input":
            await ws.close()  # the bridge refuses the query (an unknown type in ``events``): retrying cannot help
            raise RoomClosed(CLOSE_BAD_QUERY, str(greeting.get("message")))
        if not isinstance(greeting, dict) or greeting.get("type") != "room":
            await ws.close()
            raise ConnectionLost(f"unexpected first frame from the bridge: {greeting!r}")
        self.info.update(greeting.get("room") or {})
        return ws

    async def _supervise(self, ws: ClientConnection) -> None:
        """Read until the socket ends; reconnect after unexpected drops; end the room otherwise."""
        loop = asyncio.get_running_loop()
        policy = self.client.reconnect
        delays = policy.delays() if policy else None
        reason: ClientError = _closed_locally()
        clean = True
        try:
            while True:
                opened = loop.time()
                code, why = await self._read(ws)
                self._detach(ConnectionLost(f"the websocket dropped ({code} {why})"))
                if self._closing:
                    return
                if code == CLOSE_ROOM_CLOSED and self._saw_room_closed:
                    reason = RoomClosed(code, why or "room closed")  # the normal end: events() just stop
                    return
                if code in FINAL_CLOSE_CODES:
                    reason, clean = RoomClosed(code, why), False
                    return
                if policy is None or delays is None:
                    reason, clean = ConnectionLost(f"the websocket dropped ({code} {why}); reconnect is off"), False
                    return
                if loop.time() - opened > policy.max_delay:
                    delays = policy.delays()  # that was a healthy connection: start the backoff over
                log.info("room %s: websocket dropped (%s %s), reconnecting", self.id, code, why)
                self._state = ConnectionState.RECONNECTING
                ws = await self._reconnect(delays, policy.give_up_after, at_once=code == CLOSE_RECONNECT)
                if self._closing:
                    await ws.close()
                    return
                self._attach(ws)
                log.info("room %s: reconnected", self.id)
        except ClientError as exc:
            reason, clean = exc, False
        except Exception as exc:  # a bug here must still end the room loudly, not hang commands
            log.exception("room %s: connection supervisor failed", self.id)
            reason, clean = ConnectionLost(f"internal error in the client: {exc!r}"), False
        finally:
            self._finish(reason, clean=clean)

    async def _reconnect(self, delays: Any, give_up_after: float | None, *, at_once: bool = False) -> ClientConnection:
        """``at_once``: the first attempt without a delay (told to reconnect: 4012)."""
        loop = asyncio.get_running_loop()
        deadline = None if give_up_after is None else loop.time() + give_up_after
        while True:
            if at_once:
                at_once = False
            else:
                await asyncio.sleep(next(delays))
            try:
                return await self._open_socket()
            except RoomClosed:
                raise
            except BridgeError as exc:  # fetching a fresh ticket failed
                if exc.status in _HTTP_TO_CLOSE:
                    raise RoomClosed(_HTTP_TO_CLOSE[exc.status], exc.message) from exc
                last: Exception = exc
            except (ConnectionLost, httpx.HTTPError) as exc:
                cause = exc.__cause__
                if isinstance(cause, InvalidStatus) and 400 <= cause.response.status_code < 500 \
                        and cause.response.status_code != 429:
                    raise  # the handshake itself is refused (wrong URL, a proxy's 403): not transient
                last = exc
            if deadline is not None and loop.time() >= deadline:
                raise ConnectionLost(f"gave up reconnecting after {give_up_after}s: {last}") from last
            log.debug("room %s: reconnect failed (%s), retrying", self.id, last)

    async def _read(self, ws: ClientConnection) -> tuple[int, str]:
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                return _close_of(exc)
            try:
                self._dispatch(raw)
            except Exception:  # one odd frame must not stop the room
                log.exception("room %s: cannot handle frame %.200r", self.id, raw)

    def _dispatch(self, raw: str | bytes) -> None:
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind in ("ack", "pong", "error"):
            waiter = self._pending.pop(str(frame.get("id")), None) if frame.get("id") is not None else None
            if waiter is None or waiter.done():
                if kind == "error":  # one that answers no command of ours: a room event (a brain's failure)
                    log.warning("room %s: bridge error %s: %s", self.id, frame.get("code"), frame.get("message"))
                    self._hub.publish(frame)
                return
            if kind == "error":
                waiter.set_exception(CommandError(str(frame.get("code")), str(frame.get("message")),
                                                  frame.get("details")))
            else:
                waiter.set_result(frame)
            return
        if kind == "ticket":  # the bridge keeps ticket-authenticated clients holding a valid ticket
            if isinstance(frame.get("ws_ticket"), str):
                self._ticket = frame["ws_ticket"]
            return
        if kind in ("room", "room_closed") and isinstance(frame.get("room"), dict):
            self.info.update(frame["room"])
        if kind == "room_closed":
            self._saw_room_closed = True
        self._hub.publish(frame)

    # -- state ----------------------------------------------------------------------------------
    def _new_ready(self) -> asyncio.Future[ClientConnection]:
        ready: asyncio.Future[ClientConnection] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(_retrieve)
        return ready

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._state = ConnectionState.OPEN
        if self._ready is None or self._ready.done():
            self._ready = self._new_ready()
        self._ready.set_result(ws)

    def _detach(self, error: ClientError) -> None:
        """The socket is gone: commands awaiting acks fail, new ones wait for the next socket."""
        self._ws = None
        if self._ready is not None and self._ready.done():
            self._ready = self._new_ready()
        self._fail_pending(error)

    def _fail_pending(self, error: ClientError) -> None:
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(error)

    def _finish(self, reason: ClientError, *, clean: bool) -> None:
        """The end, once: pending and later commands fail with ``reason``; event iterators stop
        (``clean``: the room closed or we closed it) or raise ``reason``."""
        if self._state is ConnectionState.CLOSED:
            return
        self._state = ConnectionState.CLOSED
        self._ws = None
        self._end_error = reason
        self._fail_pending(reason)
        if self._ready is None or self._ready.done():
            self._ready = self._new_ready()
        self._ready.set_exception(reason)
        self._hub.end(None if clean else reason)
        if not clean:
            log.info("room %s: connection ended: %s", self.id, reason)
