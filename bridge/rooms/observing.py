"""Room events from the avatar's channel: which source a room uses, and delivering what it says.

Three sources (``BRIDGE_EVENT_SOURCE``):
- ``agora``: the bridge joins each room's Agora channel receive-only with the Agora server SDK;
- ``simulator``: the A2E simulator's own event feed (``/_sim/rtc/{channel}``);
- ``browser``: kiosk pages forward the stream-messages their Agora Web SDK receives (``rtc_event``
  frames); the reassembler drops the duplicates several forwarders send.
``auto`` picks ``simulator`` when running on the simulator, else ``agora`` when its SDK loads,
else ``browser``. Forwarded events are accepted whatever the source, so a kiosk never hurts, but
only from clients allowed to forward (a key, or a ticket minted with ``forward_events``); the room
events they cause say ``"source": "browser"``, the observers' ``"simulator"`` / ``"agora"``.

Raw channel events (from an observer or a forwarding client) go through the room's reassembler and
come out as ``reply``/``speaking_*`` frames on the room's event hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bridge import frames
from bridge.errors import BadRequest
from bridge.rtc.accesstoken import TokenError, parse_token
from bridge.rtc.base import ObserverError, ObserveTarget, RoomObserver
from bridge.rtc.events import ChannelEvent, Reply, RoomEvent, SpeakingStarted
from bridge.rtc.simulated import SimulatorObserver
from bridge.rtc.wire import frame_to_event

from .models import RoomState
from .registry import LiveRoom

log = logging.getLogger("bridge.events")

BRIDGE_UID_OFFSET = 7_000_000  # our observer's uid: distinct from the viewer's and the avatar's


def choose_source(configured: str, *, on_simulator: bool) -> str:
    if configured != "auto":
        return configured
    if on_simulator:
        return "simulator"
    from bridge.rtc.agora import agora_available

    return "agora" if agora_available() else "browser"


def make_observer(source: str, *, a2e_base_url: str, api_key: str | None = None) -> RoomObserver | None:
    """``api_key``: what the simulator's event feed wants (the embedded one has its own key)."""
    if source == "simulator":
        return SimulatorObserver(a2e_base_url, api_key=api_key)
    if source == "agora":
        from bridge.rtc.agora import AgoraObserver

        return AgoraObserver()
    return None  # browser / none: nothing to run on the server


def token_bound_uid(token: str | None) -> str | None:
    """The uid an AccessToken2 is bound to, or None for a wildcard (or unreadable) token."""
    if not token:
        return None
    try:
        uid = parse_token(token).get("rtc", {}).get("uid")
    except TokenError:
        return None
    return uid if uid not in (None, "", "0") else None


def room_frame(event: RoomEvent, origin: str | None = None) -> frames.ServerFrame:
    """The frame clients get for what the reassembler made of the channel's events; ``origin`` is
    where they came from (``source``: ``browser``, ``simulator``, ``agora``)."""
    if isinstance(event, Reply):
        return frames.Reply(text=event.text, final=event.final, reply_id=event.reply_id, source=origin)
    if isinstance(event, SpeakingStarted):
        return frames.SpeakingStarted(source=origin)
    return frames.SpeakingStopped(source=origin)


def deliver_channel_event(lr: LiveRoom, event: ChannelEvent, source: Any, *, origin: str | None = None) -> None:
    """Raw channel events (from an observer or a forwarding client) become room events.

    ``source`` tells forwarders apart (de-duplication); ``origin`` is what the room events say
    they came from (``"source"``: ``browser``, ``simulator``, ``agora``), by default ``source``.
    """
    lr.event_origin = origin or str(source)
    for room_event in lr.reassembler.feed(event, source=source):
        lr.events.publish(room_frame(room_event, lr.event_origin))
        if lr.utterances is not None and not isinstance(room_event, Reply):
            if origin == "browser":
                lr.utterances.observed = True  # a kiosk forwards the avatar's audio: no more estimates
            if isinstance(room_event, SpeakingStarted):
                lr.utterances.speaking_started()
            else:
                lr.utterances.speaking_stopped()


def forward_rtc_event(lr: LiveRoom, raw: dict[str, Any], *, source: Any) -> None:
    """A raw channel event forwarded by a client (a kiosk's Agora Web SDK); the caller checked
    that this client may forward."""
    event = frame_to_event(raw)
    if event is None:
        raise BadRequest("rtc_event.event must be {kind: stream_message|audio_started|audio_stopped, uid, "
                         "data_b64?}")
    deliver_channel_event(lr, event, source, origin="browser")


def expire_partial_replies(lr: LiveRoom) -> None:
    """Finish replies whose end never came (the sweeper calls this for every open room)."""
    for room_event in lr.reassembler.expire():
        lr.events.publish(room_frame(room_event, lr.event_origin))


class RoomObserving:
    """Runs one observer task per open room and turns channel events into room events."""

    def __init__(self, observer: RoomObserver | None, source: str) -> None:
        self.observer = observer
        self.source = source

    def start(self, lr: LiveRoom) -> None:
        """Watch a room that just opened (a hook of the room lifecycle)."""
        if self.observer is not None:
            lr.tasks.append(asyncio.create_task(self._observe(lr), name=f"observe-{lr.room.id}"))

    async def _observe(self, lr: LiveRoom) -> None:
        assert self.observer is not None
        room = lr.room
        if self.source == "agora" and (bound := token_bound_uid(room.token)):
            # Agora refuses a second uid on a uid-bound token, and joining with the viewer's uid
            # would kick the viewer out (reason 19): this room's events must come from its kiosks.
            log.warning("room %s: A2E's token is bound to uid %s, so the bridge cannot join the channel; "
                        "reply events will come only from browser-forwarded stream-messages", room.id, bound)
            return
        target = ObserveTarget(app_id=room.app_id or "", channel=room.channel or "", token=room.token,
                               uid=BRIDGE_UID_OFFSET + (room.uid or 0) % 1_000_000, avatar_uid=None)
        delay = 0.2
        while room.state is RoomState.OPEN:
            try:
                sub = await self.observer.observe(target)
                if lr.utterances is not None:
                    lr.utterances.observed = True  # from now on the avatar's audio is heard, not estimated
                try:
                    delay = 0.2
                    async for event in sub:
                        deliver_channel_event(lr, event, self.source)
                finally:
                    if lr.utterances is not None:
                        lr.utterances.observed = False
                    await sub.aclose()
            except ObserverError as exc:
                log.warning("room %s: %s observer failed: %s", room.id, self.source, exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room %s: %s observer crashed", room.id, self.source)
            if room.state is not RoomState.OPEN:
                break
            await asyncio.sleep(delay)  # the feed ended while the room is open: rejoin
            delay = min(delay * 2, 10)

    async def aclose(self) -> None:
        if self.observer is not None:
            with contextlib.suppress(Exception):
                await self.observer.aclose()
