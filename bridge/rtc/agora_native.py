"""The native side of the Agora adapter: the process's one AgoraService and the observer class
whose callbacks run on the SDK's threads (they only copy data and hop to the event loop)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .agora_sdk import AgoraUnavailable
from .base import ObserverError

log = logging.getLogger("bridge.rtc.agora")

# Agora remote audio states used below (agora.md 1.4)
AUDIO_TRACK_STOPPED, AUDIO_TRACK_FAILED = 0, 4


class AppIdMismatch(ObserverError):
    """The process-wide AgoraService was initialised with another App ID."""


# --- one service per process (its calls run on the SDK thread: agora_sdk._run) -------


class _ProcessService:
    """The process's AgoraService, reference-counted by observers. SDK thread only."""

    def __init__(self) -> None:
        self.service: Any = None
        self.app_id: str | None = None
        self.users = 0

    def acquire(self, sdk: SimpleNamespace, app_id: str, log_dir: str | None) -> Any:
        if self.service is None:
            cfg = sdk.AgoraServiceConfig(appid=app_id, enable_video=0, use_string_uid=0)
            if log_dir:
                cfg.log_path, cfg.data_dir, cfg.config_dir = f"{log_dir}/agorasdk.log", log_dir, log_dir
            service = sdk.AgoraService()
            rc = service.initialize(cfg)
            if rc != 0:
                raise AgoraUnavailable(f"AgoraService.initialize returned {rc}")
            self.service, self.app_id = service, app_id
        elif app_id != self.app_id:
            raise AppIdMismatch(f"this process serves App ID {self.app_id!r}, not {app_id!r}")
        self.users += 1
        return self.service

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.service is not None:
            service, self.service, self.app_id, self.users = self.service, None, None, 0
            service.release()



# --- callbacks: native thread -> loop ------------------------------------------------


def _uid(user_id: Any) -> int | None:
    try:
        return int(user_id)
    except (TypeError, ValueError):
        return None


def _bridge_class(sdk: SimpleNamespace) -> type:
    """Observer implementing both SDK interfaces; built per SDK namespace (real or fake)."""

    class _Bridge(sdk.IRTCConnectionObserver, sdk.IRTCLocalUserObserver):  # type: ignore[misc,name-defined]
        def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[..., None]) -> None:
            self._loop, self._sink = loop, sink  # captured on the loop thread

        def _post(self, *item: Any) -> None:
            try:
                self._loop.call_soon_threadsafe(self._sink, *item)
            except RuntimeError:  # loop closed during shutdown
                pass

        def on_connected(self, conn: Any, info: Any, reason: int) -> None:
            self._post("connected", info.local_user_id)

        def on_connection_failure(self, conn: Any, info: Any, reason: int) -> None:
            self._post("failed", reason)

        def on_disconnected(self, conn: Any, info: Any, reason: int) -> None:
            self._post("disconnected", reason)

        def on_token_privilege_will_expire(self, conn: Any, token: str) -> None:
            self._post("token_will_expire", None)

        def on_user_left(self, conn: Any, user_id: str, reason: int) -> None:
            self._post("audio_off", _uid(user_id))

        def on_aiqos_capability_missing(self, conn: Any, recommend_audio_scenario: int) -> int:
            return -1  # the SDK compares the result with >= 0; the base class returns None

        def on_stream_message(self, lu: Any, user_id: str, stream_id: int, data: Any, length: int) -> None:
            try:  # bytes since 2.3.0; str before
                payload = data.encode() if isinstance(data, str) else bytes(data)
                self._post("message", _uid(user_id), payload, stream_id)
            except Exception:  # never let an exception reach ctypes
                log.exception("agora on_stream_message")

        def on_audio_volume_indication(self, lu: Any, speakers: Any, n: int, total: int) -> None:
            try:
                levels = tuple((_uid(s.user_id), int(s.volume)) for s in list(speakers)[:n])
                self._post("volume", levels)
            except Exception:
                log.exception("agora on_audio_volume_indication")

        def on_user_audio_track_state_changed(self, lu: Any, user_id: str, track: Any, state: int, reason: int,
                                              elapsed: int) -> None:
            if state in (AUDIO_TRACK_STOPPED, AUDIO_TRACK_FAILED):
                self._post("audio_off", _uid(user_id))

    return _Bridge
