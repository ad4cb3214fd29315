"""Room observer backed by the Agora Python Server SDK (2.4.10, optional extra).

Why it looks like this (see shared notes ``agora.md``):

* ``import agora`` has side effects, so the SDK is loaded lazily and guarded
  by :mod:`bridge.rtc.agora_sdk` (re-exported here), never at import time.
* The App ID belongs to the native *service*, of which a process has one:
  :class:`_ProcessService` holds it, shared by every observer.
* SDK callbacks run on native threads: they only copy data and hop to the
  event loop with ``call_soon_threadsafe``; SDK calls run on one dedicated
  executor thread, never on the loop and never inside a callback.
* We join as an invisible audience member, receive audio only (for speaking
  state via volume indications) and never decode video.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from .agora_native import AppIdMismatch, _bridge_class, _ProcessService
from .agora_sdk import AgoraUnavailable, _run, agora_available, load_agora_sdk
from .base import JoinError, ObserverError, ObserveTarget, QueueSubscription
from .events import AudioStarted, AudioStopped, StreamMessage

__all__ = [
    "AgoraJoinError",
    "AgoraObserver",
    "AgoraSubscription",
    "AgoraUnavailable",
    "AppIdMismatch",
    "agora_available",
    "load_agora_sdk",
]

log = logging.getLogger(__name__)

class AgoraJoinError(JoinError):
    """Joining failed; ``reason`` is Agora's CONNECTION_CHANGED_REASON (8 invalid token, 19 same uid)."""


_service = _ProcessService()


# --- subscription ----------------------------------------------------------------------


class AgoraSubscription(QueueSubscription):
    """One receive-only connection to one channel.

    Speaking state comes from volume indications: ``AudioStarted`` when a uid's
    volume reaches ``speaking_volume``, ``AudioStopped`` after ``silence_s``
    without that (or when its track stops or it leaves).
    """

    def __init__(self, observer: AgoraObserver, target: ObserveTarget, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(observer.queue_size)
        self.target = target
        self._observer = observer
        self._sdk = observer._sdk
        self._loop = loop
        self._conn: Any = None
        self._bridge: Any = None  # strong refs until release() returns (ctypes callbacks)
        self._connected: asyncio.Future[str] = loop.create_future()
        self._disconnected = asyncio.Event()
        self._silence: dict[int, asyncio.TimerHandle] = {}
        self._failed = False
        self.local_uid: str | None = None
        self.filtered = 0

    # loop thread: every SDK callback lands here, in per-thread FIFO order
    def _on_sdk(self, kind: str, *args: Any) -> None:
        if kind == "message":
            uid, data, stream_id = args
            if self._accept(uid):
                self._put(StreamMessage(uid, data, stream_id))
        elif kind == "volume":
            for uid, volume in args[0]:
                if self._accept(uid) and volume >= self._observer.speaking_volume:
                    self._heard(uid)
        elif kind == "audio_off":
            self._quiet(args[0])
        elif kind == "connected":
            if not self._connected.done():
                self._connected.set_result(args[0])
        elif kind == "failed":
            self._fail(args[0])
        elif kind == "disconnected":
            self._disconnected.set()
            self._fail(args[0])
        elif kind == "token_will_expire":
            log.warning("agora token for channel %s expires in ~30 s", self.target.channel)

    def _accept(self, uid: int | None) -> bool:
        t = self.target
        ok = uid is not None and uid not in (0, t.uid) and (t.avatar_uid is None or uid == t.avatar_uid)
        if not ok:
            self.filtered += 1
        return ok

    def _heard(self, uid: int) -> None:
        if self.ended:
            return
        timer = self._silence.pop(uid, None)
        if timer is None:
            self._put(AudioStarted(uid))
        else:
            timer.cancel()
        self._silence[uid] = self._loop.call_later(self._observer.silence_s, self._quiet, uid)

    def _quiet(self, uid: int | None) -> None:
        timer = self._silence.pop(uid, None) if uid is not None else None
        if timer is not None:
            timer.cancel()
            self._put(AudioStopped(uid))  # type: ignore[arg-type]

    def _fail(self, reason: int) -> None:
        if not self._connected.done():
            self._connected.set_exception(AgoraJoinError(f"agora join failed (reason {reason})", reason))
            return
        self._failed = True
        for uid in list(self._silence):
            self._quiet(uid)
        self._end("closed" if self._closing is not None else f"agora connection ended (reason {reason})")

    # --- lifecycle -----------------------------------------------------------------

    def _open_sync(self, service: Any) -> None:
        """SDK thread: create, register everything, then connect (no early event missed)."""
        sdk, t = self._sdk, self.target
        conn_cfg = sdk.RTCConnConfig(
            client_role_type=sdk.ClientRoleType.CLIENT_ROLE_AUDIENCE,
            channel_profile=sdk.ChannelProfileType.CHANNEL_PROFILE_LIVE_BROADCASTING,
            auto_subscribe_audio=1, auto_subscribe_video=0,
            audio_subs_options=sdk.AudioSubscriptionOptions(pcm_data_only=1, bytes_per_sample=2,
                                                            number_of_channels=1, sample_rate_hz=16000),
            enable_audio_recording_or_playout=0)
        pub_cfg = sdk.RtcConnectionPublishConfig(
            is_publish_audio=False, is_publish_video=False,
            audio_publish_type=sdk.AudioPublishType.AUDIO_PUBLISH_TYPE_NONE,
            video_publish_type=sdk.VideoPublishType.VIDEO_PUBLISH_TYPE_NONE,
            audio_scenario=sdk.AudioScenarioType.AUDIO_SCENARIO_DEFAULT)  # AI_SERVER triggers the aiqos pitfall
        conn = service.create_rtc_connection(conn_cfg, pub_cfg)
        if conn is None or not conn.conn_handle:
            raise AgoraUnavailable("create_rtc_connection failed")
        self._conn = conn
        conn.register_observer(self._bridge)
        conn.register_local_user_observer(self._bridge)
        conn.get_local_user().set_audio_volume_indication_parameters(self._observer.volume_interval_ms, 3, True)
        rc = conn.connect(t.token or "", t.channel, str(t.uid))
        if rc != 0:
            raise AgoraJoinError(f"agora connect returned {rc}", rc)

    def _release_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release()

    async def _start(self) -> None:
        self._bridge = _bridge_class(self._sdk)(self._loop, self._on_sdk)
        try:
            await _run(self._open_sync, self._observer._service_ref)
            async with asyncio.timeout(self._observer.connect_timeout):  # not wait_for (gh-86296)
                self.local_uid = await asyncio.shield(self._connected)
        except BaseException as e:
            self._failed = True
            if not self._connected.done():
                self._connected.cancel()  # a late on_connection_failure must not set an unread exception
            await self._teardown()
            if isinstance(e, TimeoutError):
                raise AgoraJoinError(f"agora join timed out after {self._observer.connect_timeout}s") from e
            raise

    async def _teardown(self) -> None:
        for timer in self._silence.values():
            timer.cancel()
        self._silence.clear()
        if self._conn is None:
            return
        try:
            if not self._disconnected.is_set():
                await _run(self._conn.disconnect)
                # release only after on_disconnected (agora.md 2); a failed join may never send it
                wait = min(self._observer.close_timeout, 1.0) if self._failed else self._observer.close_timeout
                try:  # not wait_for: see bridge/webhooks/deliverer.py
                    async with asyncio.timeout(wait):
                        await self._disconnected.wait()
                except TimeoutError:
                    log.log(logging.DEBUG if self._failed else logging.WARNING,
                            "agora on_disconnected not seen within %ss; releasing anyway", wait)
        finally:
            await _run(self._release_sync)
            self._bridge = None

    async def _release(self) -> None:
        try:
            await self._teardown()
        finally:
            self._observer._forget(self)


class AgoraObserver:
    """RoomObserver over the Agora SDK; one per process is enough.

    Args:
        sdk: an SDK namespace (tests); default: :func:`load_agora_sdk` on first use.
        queue_size: per-subscription event buffer (oldest dropped when full).
        connect_timeout, close_timeout: seconds to wait for on_connected / on_disconnected.
        speaking_volume: volume (0-255) at which a uid counts as speaking.
        silence_s: quiet time after which it stops counting as speaking.
        volume_interval_ms: volume indication period asked from the SDK.
        log_dir: where the SDK writes its logs (default: the SDK's choice).
    """

    name = "agora"

    def __init__(
        self,
        *,
        sdk: SimpleNamespace | None = None,
        queue_size: int = 256,
        connect_timeout: float = 15.0,
        close_timeout: float = 5.0,
        speaking_volume: int = 10,
        silence_s: float = 0.6,
        volume_interval_ms: int = 200,
        log_dir: str | None = None,
    ) -> None:
        self._sdk_given = sdk
        self._sdk: Any = sdk
        self.queue_size = queue_size
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.speaking_volume = speaking_volume
        self.silence_s = silence_s
        self.volume_interval_ms = volume_interval_ms
        self.log_dir = log_dir
        self._service_ref: Any = None
        self._subs: set[AgoraSubscription] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    async def observe(self, target: ObserveTarget) -> AgoraSubscription:
        """Join ``target.channel`` as an invisible audience member; returns once connected.

        Raises:
            AgoraUnavailable, AppIdMismatch, AgoraJoinError.
        """
        async with self._lock:
            if self._closed:
                raise ObserverError("observer is closed")
            if self._sdk is None:
                self._sdk = load_agora_sdk()
            if self._service_ref is None:
                self._service_ref = await _run(_service.acquire, self._sdk, target.app_id, self.log_dir)
            elif target.app_id != _service.app_id:
                raise AppIdMismatch(f"this process serves App ID {_service.app_id!r}, not {target.app_id!r}")
        sub = AgoraSubscription(self, target, asyncio.get_running_loop())
        self._subs.add(sub)
        try:
            await sub._start()
        except BaseException:
            self._subs.discard(sub)
            raise
        return sub

    def _forget(self, sub: AgoraSubscription) -> None:
        self._subs.discard(sub)

    async def aclose(self) -> None:
        """Close all subscriptions, then release this observer's hold on the AgoraService."""
        async with self._lock:
            self._closed = True
            subs, self._subs = list(self._subs), set()
            await asyncio.gather(*(s.aclose() for s in subs), return_exceptions=True)
            if self._service_ref is not None:
                self._service_ref = None
                await _run(_service.release)
