"""Room observer for the A2E simulator: channel events over a websocket.

The simulator has no Agora channel; its feed (``bridge.simulator.feed``)
serves the events an Agora observer would see at ``/_sim/rtc/{channel}``, one
JSON text frame per event (the format of :mod:`bridge.rtc.wire`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bridge.aio import cancel_and_wait

from .base import JoinError, ObserverError, ObserveTarget, QueueSubscription
from .wire import frame_to_event

__all__ = [
    "FEED_PATH",
    "SimulatorObserver",
    "SimulatorSubscription",
    "feed_url",
]

log = logging.getLogger(__name__)
FEED_PATH = "/_sim/rtc/{channel}"


def feed_url(base_url: str, channel: str) -> str:
    """``http(s)://host[/prefix]`` -> ``ws(s)://host[/prefix]/_sim/rtc/<channel>``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not an http(s) or ws(s) URL: {base_url!r}")
    path = parts.path.rstrip("/") + FEED_PATH.format(channel=quote(channel, safe=""))
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class SimulatorSubscription(QueueSubscription):
    """Reads frames from one feed websocket into the bounded queue."""

    def __init__(self, ws: ClientConnection, target: ObserveTarget, queue_size: int) -> None:
        super().__init__(queue_size)
        self.target = target
        self.bad_frames = 0
        self._ws = ws
        self._reader = asyncio.create_task(self._read(), name=f"sim-feed-{target.channel}")

    async def _read(self) -> None:
        reason = "feed closed"
        try:
            async for raw in self._ws:
                try:
                    event = frame_to_event(json.loads(raw))
                except ValueError:
                    event = None
                if event is None:
                    self.bad_frames += 1
                elif self.target.avatar_uid is None or event.uid == self.target.avatar_uid:
                    self._put(event)
        except ConnectionClosed as e:
            reason = f"feed connection lost: {e}"
        finally:
            self._end("closed" if self._closing is not None else reason)

    async def _release(self) -> None:
        await cancel_and_wait(self._reader)
        await self._ws.close()


class SimulatorObserver:
    """RoomObserver that watches channels of an A2E simulator at ``base_url``; ``api_key`` is sent
    as a bearer key (a simulator with keys refuses its feed to anyone else)."""

    name = "simulator"

    def __init__(self, base_url: str, *, queue_size: int = 256, open_timeout: float = 10.0,
                 api_key: str | None = None) -> None:
        feed_url(base_url, "x")  # validate early
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.queue_size = queue_size
        self.open_timeout = open_timeout
        self._subs: weakref.WeakSet[SimulatorSubscription] = weakref.WeakSet()  # closed ones just vanish
        self._closed = False

    async def observe(self, target: ObserveTarget) -> SimulatorSubscription:
        """Connect to the channel's feed; events flow once this returns.

        Raises:
            JoinError: the simulator refused or could not be reached.
        """
        if self._closed:
            raise ObserverError("observer is closed")
        url = feed_url(self.base_url, target.channel)
        try:
            ws = await connect(url, open_timeout=self.open_timeout, max_size=2**20,
                               additional_headers=self._headers)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
            raise JoinError(f"cannot open simulator feed {url}: {e}") from e
        sub = SimulatorSubscription(ws, target, self.queue_size)
        self._subs.add(sub)
        return sub

    async def aclose(self) -> None:
        """Close every subscription; idempotent."""
        self._closed = True
        subs = list(self._subs)
        await asyncio.gather(*(s.aclose() for s in subs), return_exceptions=True)
