"""Fake ``agora.rtc.audio_frame_observer`` (base class only; frames are not faked)."""

from agora.rtc.agora_base import *  # noqa: F401,F403


class IAudioFrameObserver:
    def on_record_audio_frame(self, agora_local_user, channelId, frame): return 0
    def on_playback_audio_frame(self, agora_local_user, channelId, frame): return 0
    def on_ear_monitoring_audio_frame(self, agora_local_user, frame): return 0
    def on_playback_audio_frame_before_mixing(self, agora_local_user, channelId, uid, frame, vad_result_state: int,
                                              vad_result_bytearray: bytearray): return 0
    def on_mixed_audio_frame(self, agora_local_user, channelId, frame): return 0
    def on_get_audio_frame_position(self, agora_local_user): return 0
