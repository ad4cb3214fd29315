"""A websocket client's outgoing frames: written at once when the socket takes them, queued (bounded)
only while it does not.

A frame is handed to the ASGI ``send`` right where it is produced, without a task: uvicorn's
``send`` writes to the transport and returns without ever suspending unless the transport's buffer
is over its high-water mark (the client is not reading fast enough). So the coroutine is stepped by
hand, once; in the usual case it is finished by then. If it suspended instead, a task takes it over
from where it stopped (:func:`_resume`) and the frames that come meanwhile wait in a queue of at
most ``limit`` frames; one more and the client is a slow reader (``on_overflow``). The order of the
frames is kept either way. This is what Python 3.12's eager tasks do; written out here because the
bridge runs on 3.11 too, and because a fan-out to thousands of clients would otherwise cost a task
wake-up per client per event.
"""

from __future__ import annotations

import asyncio
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from starlette.types import Send as ASGISend
from starlette.websockets import WebSocket, WebSocketDisconnect

# What a send to a client that went away raises: uvicorn's ClientDisconnected is an OSError,
# Starlette turns it into WebSocketDisconnect, and refuses (RuntimeError) a send after the close.
SEND_ERRORS = (OSError, RuntimeError, WebSocketDisconnect)

Steps = Generator[Any, Any, None]  # an awaitable's ``__await__()``: what a task steps through


@types.coroutine
def _resume(coro: Steps, waiting: Any) -> Steps:
    """Go on with ``coro``, stepped by hand and suspended at an ``await`` that yielded ``waiting``
    (the future it waits for) to a task it did not have: yield that to the task now running this,
    then pass whatever the task sends or throws in on to ``coro``, as ``await`` would have (PEP 380
    delegation; ``yield from`` cannot be used, it would resume ``coro`` at once)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # cancellation included: the coroutine decides what it means
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration:
                return


class Outbox:
    """Frames to one client, in order: eagerly written, else queued behind the one in flight."""

    __slots__ = ("_ws", "_send", "limit", "on_overflow", "on_lost", "_pending", "_busy", "closing", "close_sent",
                 "_held", "_hold_timer")

    def __init__(self, ws: WebSocket, send: ASGISend, limit: int, *, on_overflow: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:
        # Frames go to the server's own ``send`` (scopes.ServerSend), not through ``ws.send_text``: that
        # is three coroutines more per frame per client (Starlette's state checks and exception wrapper,
        # only needed around the handshake and the close, which do go through ``ws``).
        self._ws, self._send = ws, send
        self.limit = limit
        self.on_overflow = on_overflow  # a frame found ``limit`` frames waiting: the client does not read
        self.on_lost = on_lost  # a send failed: the client is gone
        self._pending: deque[str | tuple[int, str]] | None = None  # made when first needed: most clients never do
        self._busy: asyncio.Task[None] | None = None  # the task finishing a send that had to wait
        self.closing = False  # the close is asked for: no frame after it
        self.close_sent = False  # the close is handed to the server
        self._held: list[str] | None = None  # frames kept back by hold(), in order
        self._hold_timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Frames queued behind a send that waits for the socket."""
        return len(self._pending) if self._pending else 0

    def hold(self, at_most: float) -> None:
        """Keep the frames put from now on until :meth:`release` (at the latest after ``at_most``
        seconds): the sender's own frames wait while its speak's A2E request goes out first."""
        if self._held is None and not self.closing:
            self._held = []
            self._hold_timer = asyncio.get_running_loop().call_later(at_most, self.release)

    def release(self) -> None:
        """Write what :meth:`hold` kept, in order (once; later calls do nothing)."""
        held, self._held = self._held, None
        if held is None:
            return
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        for text in held:
            self.put(text)

    def put(self, text: str) -> None:
        """Send ``text`` now if the socket takes it, else queue it (``on_overflow`` when full)."""
        if self.closing:
            return
        if self._held is not None:
            if len(self._held) >= self.limit:
                self.on_overflow()
            else:
                self._held.append(text)
        elif self._busy is None:
            self._step(self._send({"type": "websocket.send", "text": text}))
        elif self.waiting >= self.limit:
            self.on_overflow()
        else:
            self._queue(text)

    def close(self, code: int, reason: str) -> None:
        """Send the close frame after everything queued."""
        if self.closing:
            return
        self.release()  # what was held goes before the close
        self.closing = True
        if self._busy is None:
            self.close_sent = True
            self._step(self._ws.close(code, reason))
        else:
            self._queue((code, reason))

    def drop(self) -> None:
        """Forget what is queued and give up the send that waits (the client does not read, or the
        connection is over)."""
        if self._pending:
            self._pending.clear()
        if self._held is not None:
            self._held.clear()
            self.release()
        if self._busy is not None:
            self._busy.cancel()
            self._busy = None

    def _queue(self, item: str | tuple[int, str]) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append(item)

    def _step(self, send: Awaitable[None]) -> None:
        # a coroutine is stepped as it is (its __await__() would be one more object per frame)
        steps: Steps = send if isinstance(send, types.CoroutineType) else send.__await__()  # type: ignore[assignment]
        try:
            waiting = steps.send(None)
        except StopIteration:
            return  # written: the usual case
        except SEND_ERRORS:
            self.on_lost()
            return
        self._busy = asyncio.get_running_loop().create_task(self._finish(steps, waiting))

    async def _finish(self, steps: Steps, waiting: Any) -> None:
        task = asyncio.current_task()
        try:
            await _resume(steps, waiting)
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, str):
                    await self._send({"type": "websocket.send", "text": item})
                else:
                    self.close_sent = True
                    await self._ws.close(*item)
        except SEND_ERRORS:
            self.on_lost()
        finally:
            if self._busy is task:
                self._busy = None
