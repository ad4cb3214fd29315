"""Fake ``agora.rtc.rtc_connection.RTCConnection``.

Faithful where the adapter depends on it: ``connect`` returns at once and the
outcome arrives later on another thread; ``disconnect`` unregisters the
local-user observer *before* anything else (queued stream messages are then
lost) but keeps the connection observer, so ``on_disconnected`` still arrives;
``release`` must be last. Use ``conn.remote`` to play the other participants.
"""

import itertools

from agora import _fake
from agora.rtc.agora_base import (
    AudioScenarioType,
    AudioVolumeInfo,
    ClientRoleType,
    RTCConnConfig,
    RtcConnectionPublishConfig,
    RTCConnInfo,
)
from agora.rtc.local_user import LocalUser

_ids = itertools.count(1)
_assigned_uids = itertools.count(100_000)

STATE_DISCONNECTED, STATE_CONNECTING, STATE_CONNECTED, STATE_FAILED = 1, 2, 3, 5


class RTCConnection:
    def __init__(self, service, conn_config: RTCConnConfig, publish_config: RtcConnectionPublishConfig) -> None:
        if not isinstance(conn_config, RTCConnConfig) or not isinstance(publish_config, RtcConnectionPublishConfig):
            raise TypeError("create_rtc_connection(con_config, publish_config) needs both configs")
        self.conn_handle = next(_ids)
        self.rtc_engine = service
        self.conn_config = conn_config
        self.publish_config = publish_config
        self.local_user = LocalUser(self.conn_handle, self)
        self._con_observer = None
        self._released = False
        self._connected = False
        self.channel: str | None = None
        self.user_id: str | None = None
        self.token: str | None = None
        self._events = _fake.EventThread(f"agora-fake-events-{self.conn_handle}")
        self.remote = RemoteControl(self)
        _fake.connections.append(self)
        _fake.record("conn", self.conn_handle, "__init__")

    # --- helpers ----------------------------------------------------------------

    def _call(self, method: str, *args) -> None:
        _fake.record("conn", self.conn_handle, method, *args)
        if self._released:
            _fake.errors_after_release.append(f"RTCConnection.{method}")
            raise RuntimeError(f"RTCConnection.{method} after release()")

    def _info(self, state: int) -> RTCConnInfo:
        return RTCConnInfo(id=self.conn_handle, channel_id=self.channel or "", state=state,
                           local_user_id=self.user_id or "", internal_uid=int(self.user_id or 0))

    def _conn_cb(self, name: str, *args) -> None:
        """Queue a connection-observer callback; the observer is looked up at delivery."""
        def fire() -> None:
            obs = self._con_observer
            if obs is not None:
                result = _fake.invoke(getattr(obs, name), self, *args)
                if name == "on_aiqos_capability_missing":
                    _fake.invoke(lambda: result >= 0)  # the real wrapper's check
        self._events.submit(fire)

    def _user_cb(self, name: str, *args) -> None:
        def fire() -> None:
            lu = self.local_user
            obs = lu._local_user_observer if lu is not None else None
            if obs is not None:
                _fake.invoke(getattr(obs, name), lu, *args)
        self._events.submit(fire)

    # --- public API (2.4.10) ---------------------------------------------------------

    def connect(self, token: str, chan_id: str, user_id: str) -> int:
        self._call("connect", token, chan_id, user_id)
        if not all(isinstance(a, str) for a in (token, chan_id, user_id)):
            return -1001  # the real code calls .encode() on each
        self.channel, self.token = chan_id, token
        self.user_id = user_id if user_id != "0" else str(next(_assigned_uids))
        if _fake.silent_connect:
            return 0
        self._conn_cb("on_connecting", self._info(STATE_CONNECTING), 0)
        if _fake.token_rule is not None and not _fake.token_rule(token, chan_id, user_id):
            self._conn_cb("on_connection_failure", self._info(STATE_FAILED), 8)
            return 0
        for other in _fake.connections:
            if other is not self and other._connected and (other.channel, other.user_id) == (chan_id, self.user_id):
                other._connected = False
                other._conn_cb("on_connection_failure", other._info(STATE_FAILED), 19)
        self._connected = True
        self._conn_cb("on_connected", self._info(STATE_CONNECTED), 1)
        if self.publish_config.audio_scenario == AudioScenarioType.AUDIO_SCENARIO_AI_SERVER:
            self._conn_cb("on_aiqos_capability_missing", 3)
        for uid in _fake.remote_users:
            self._conn_cb("on_user_joined", uid)
        return 0

    def disconnect(self) -> int:
        self._call("disconnect")
        self.local_user._unregister_audio_frame_observer()
        self.local_user._unregister_local_user_observer()
        if self.channel is None:
            return -1
        self._connected = False
        self._conn_cb("on_disconnected", self._info(STATE_DISCONNECTED), 5)
        return 0

    def renew_token(self, token: str) -> int:
        self._call("renew_token", token)
        self.token = token
        return 0

    def release(self) -> None:
        self._call("release")
        self._con_observer = None
        self.local_user._release()
        self._released = True
        self._connected = False
        self._events.stop()
        self.conn_handle = None
        self.local_user = None

    def register_observer(self, conn_observer) -> int:
        self._call("register_observer", conn_observer)
        self._con_observer = conn_observer
        return 0

    def register_local_user_observer(self, observer) -> int:
        self._call("register_local_user_observer", observer)
        return self.local_user._register_local_user_observer(observer)

    def register_audio_frame_observer(self, observer, enable_vad: int, vad_configure) -> int:
        self._call("register_audio_frame_observer", observer, enable_vad, vad_configure)
        return self.local_user._register_audio_frame_observer(observer, enable_vad, vad_configure)

    def register_video_frame_observer(self, observer) -> int:
        self._call("register_video_frame_observer", observer)
        return 0

    def register_audio_encoded_frame_observer(self, observer) -> int:
        self._call("register_audio_encoded_frame_observer", observer)
        return -1000

    def get_local_user(self) -> LocalUser:
        self._call("get_local_user")
        return self.local_user

    def send_stream_message(self, data) -> int:
        self._call("send_stream_message", data)
        if self.conn_config.client_role_type == ClientRoleType.CLIENT_ROLE_AUDIENCE:
            return -2
        return 0

    def get_sid(self) -> str:
        self._call("get_sid")
        return f"fake-sid-{self.conn_handle}"


class RemoteControl:
    """Test side: what the other participants (the A2E avatar) do."""

    def __init__(self, conn: RTCConnection) -> None:
        self._conn = conn

    @property
    def thread_ident(self) -> int | None:
        return self._conn._events.ident

    def join(self, uid: str) -> None:
        self._conn._conn_cb("on_user_joined", str(uid))

    def leave(self, uid: str, reason: int = 0) -> None:
        self._conn._conn_cb("on_user_left", str(uid), reason)

    def send_stream_message(self, uid: str, data: bytes | str, stream_id: int = 1) -> None:
        """``str`` data mimics the pre-2.3 SDK (kept to cover the adapter's compat path)."""
        length = len(data.encode() if isinstance(data, str) else data)
        self._conn._user_cb("on_stream_message", str(uid), stream_id, data, length)

    def volume(self, speakers: list[tuple[str, int]], total_volume: int | None = None) -> None:
        infos = [AudioVolumeInfo(user_id=str(u), volume=v, vad=int(v > 0), voice_pitch=0.0) for u, v in speakers]
        total = max((v for _, v in speakers), default=0) if total_volume is None else total_volume
        self._conn._user_cb("on_audio_volume_indication", infos, len(infos), total)

    def audio_state(self, uid: str, state: int, reason: int = 0) -> None:
        self._conn._user_cb("on_user_audio_track_state_changed", str(uid), None, state, reason, 0)

    def expire_token(self) -> None:
        self._conn._conn_cb("on_token_privilege_did_expire")
        self._conn._connected = False
        self._conn._conn_cb("on_disconnected", self._conn._info(STATE_DISCONNECTED), 9)

    def wait_idle(self) -> None:
        """Block until every queued callback has run (call it off the event loop)."""
        self._conn._events.wait_idle()
