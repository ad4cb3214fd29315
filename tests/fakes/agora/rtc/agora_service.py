"""Fake ``agora.rtc.agora_service``: one native service per process."""

from agora import _fake
from agora.rtc.agora_base import *  # noqa: F401,F403  (the real module re-exports agora_base)
from agora.rtc.agora_base import AgoraServiceConfig, RTCConnConfig, RtcConnectionPublishConfig


class AgoraService:
    def __init__(self) -> None:
        self.service_handle = len(_fake.services) + 1
        self.inited = False
        self.app_id: str | None = None
        _fake.services.append(self)
        _fake.record("service", self.service_handle, "__init__")

    def initialize(self, config: AgoraServiceConfig) -> int:
        _fake.record("service", self.service_handle, "initialize", config.appid)
        if self.inited:
            return 0  # as the real code: a second call is ignored
        if not isinstance(config, AgoraServiceConfig):
            return -1001
        if _fake.native_service_inited:
            return -1  # the native library holds one service per process
        self.inited = True
        self.app_id = config.appid
        _fake.native_service_inited = True
        return 0

    def release(self) -> None:
        _fake.record("service", self.service_handle, "release")
        if not self.inited:
            return
        self.inited = False
        self.service_handle = None
        _fake.native_service_inited = False

    def create_rtc_connection(self, con_config: RTCConnConfig, publish_config: RtcConnectionPublishConfig):
        _fake.record("service", self.service_handle, "create_rtc_connection", con_config, publish_config)
        if not self.inited:
            return None
        from agora.rtc.rtc_connection import RTCConnection

        return RTCConnection(self, con_config, publish_config)

    def set_log_file(self, log_path: str, log_size: int = 512 * 1024) -> int:
        _fake.record("service", self.service_handle, "set_log_file", log_path, log_size)
        return 0 if self.inited else -1
