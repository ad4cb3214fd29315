"""Fake ``agora.rtc.local_user.LocalUser`` (the receive-side methods)."""

from agora import _fake


class LocalUser:
    def __init__(self, local_user_handle: int, connection) -> None:
        self.local_user_handle = local_user_handle
        self.connection = connection
        self._local_user_observer = None
        self._audio_frame_observer = None
        self.subscribed_audio: set[str] = set()
        self.subscribed_all_audio = False
        self.subscribed_video = False
        self.volume_indication: tuple[int, int, bool] | None = None

    def _call(self, method: str, *args) -> None:
        _fake.record("local_user", self.local_user_handle, method, *args)
        if self.connection._released:
            _fake.errors_after_release.append(f"LocalUser.{method}")
            raise RuntimeError(f"LocalUser.{method} after release()")

    def subscribe_audio(self, user_id: str) -> int:
        self._call("subscribe_audio", user_id)
        self.subscribed_audio.add(user_id)
        return 0

    def subscribe_all_audio(self) -> int:
        self._call("subscribe_all_audio")
        self.subscribed_all_audio = True
        return 0

    def unsubscribe_audio(self, user_id: str) -> int:
        self._call("unsubscribe_audio", user_id)
        self.subscribed_audio.discard(user_id)
        return 0

    def unsubscribe_all_audio(self) -> int:
        self._call("unsubscribe_all_audio")
        self.subscribed_all_audio = False
        return 0

    def subscribe_video(self, user_id: str, options) -> int:
        self._call("subscribe_video", user_id, options)
        self.subscribed_video = True
        return 0

    def subscribe_all_video(self, options) -> int:
        self._call("subscribe_all_video", options)
        self.subscribed_video = True
        return 0

    def set_playback_audio_frame_before_mixing_parameters(self, channels: int, sample_rate_hz: int) -> int:
        self._call("set_playback_audio_frame_before_mixing_parameters", channels, sample_rate_hz)
        return 0

    def set_audio_volume_indication_parameters(self, interval_in_ms: int, smooth: int, report_vad: bool) -> int:
        self._call("set_audio_volume_indication_parameters", interval_in_ms, smooth, report_vad)
        if not isinstance(interval_in_ms, int):
            return -1001
        self.volume_indication = (interval_in_ms, smooth, report_vad)
        return 0

    def set_audio_scenario(self, scenario_type) -> int:
        self._call("set_audio_scenario", scenario_type)
        return 0

    def get_user_role(self) -> int:
        self._call("get_user_role")
        return int(self.connection.conn_config.client_role_type)

    # private in 2.4.10; RTCConnection.register_* forwards here
    def _register_local_user_observer(self, observer) -> int:
        self._local_user_observer = observer
        return 0

    def _unregister_local_user_observer(self) -> int:
        self._local_user_observer = None
        return 0

    def _register_audio_frame_observer(self, observer, enable_vad: int, vad_configure) -> int:
        self._audio_frame_observer = observer
        return 0

    def _unregister_audio_frame_observer(self) -> int:
        self._audio_frame_observer = None
        return 0

    def _release(self) -> None:
        self._local_user_observer = None
        self._audio_frame_observer = None
