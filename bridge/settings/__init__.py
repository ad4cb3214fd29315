"""The one typed settings object, read from environment variables (and a ``.env`` file).

Settings only hold values; nothing here opens files or sockets.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from bridge.a2e.client import DEFAULT_BASE_URL

from .brains import BrainConfig, OpenAIBrain, WebhookBrain, check_brain_names  # noqa: F401 (re-exported)
from .kiosk import KioskProfile, check_kiosk_profiles
from .values import (  # noqa: F401 (re-exported: callers import them from bridge.settings)
    BROWSER_KEY_PREFIX,
    DEFAULT_AGORA_CONNECT_SRC,
    DEFAULT_AGORA_SDK_URL,
    DEFAULT_MAX_BODY_BYTES,
    check_agora_sdk_url,
    check_connect_src,
    check_integrity,
    check_origins,
    default_instance_id,
    largest_honest_body,
    normalize_origin,
    parse_api_keys,
)


class ConfigurationError(RuntimeError):
    """The settings cannot give a safe service (raised where the app is made or served)."""


EventSource = Literal["auto", "agora", "simulator", "browser", "none"]
WebhookEvent = Literal["room.opened", "room.expiring", "room.closed", "reply.final", "transcript.ready",
                       "spend.threshold"]


class TenantLimits(BaseModel):
    """One tenant's caps; a field left out falls back to the global setting of the same name."""

    model_config = ConfigDict(extra="forbid")
    max_rooms_per_tenant: int | None = Field(None, ge=1)
    max_expire_seconds: int | None = Field(None, ge=10)
    room_minutes_per_day: float | None = Field(None, gt=0)
    room_create_rate: float | None = Field(None, gt=0)
    room_create_burst: int | None = Field(None, ge=1)
    allowed_origins: list[str] | None = None
    browser_key_max_rooms: int | None = Field(None, ge=1)
    browser_key_max_expire_seconds: int | None = Field(None, ge=10)
    browser_key_rooms_per_hour: int | None = Field(None, ge=1)
    browser_key_qa_context_chars: int | None = Field(None, ge=0)
    spend_alert_coins: int | None = Field(None, ge=1)  # net coins a UTC day that fire spend.threshold

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _check_origins(cls, value: object) -> list[str] | None:
        return None if value is None else check_origins(value)  # type: ignore[arg-type]


class WebhookTarget(BaseModel):
    """Where a tenant's webhooks go (``BRIDGE_WEBHOOKS``): ``secret`` is a Standard Webhooks secret,
    ``whsec_`` + base64 of 24-64 random bytes; ``events`` (default: all) picks the event types."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://[^\s]+$")
    secret: SecretStr
    events: list[WebhookEvent] | None = None

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().removeprefix("whsec_")
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("secret must be whsec_ followed by base64") from None
        if not 24 <= len(key) <= 64:
            raise ValueError("secret must hold 24 to 64 bytes (whsec_ + base64)")
        return value


class Settings(BaseSettings):
    """Every knob of a2e-bridge. Field ``x`` is read from the variable named in its alias."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # upstream A2E
    a2e_api_key: SecretStr | None = Field(None, alias="A2E_API_KEY")
    a2e_base_url: str = Field(DEFAULT_BASE_URL, alias="A2E_BASE_URL")
    a2e_timeout: float = Field(15.0, gt=0, alias="A2E_TIMEOUT")
    a2e_max_attempts: int = Field(3, ge=1, le=10, alias="A2E_MAX_ATTEMPTS")

    # the service
    host: str = Field("127.0.0.1", alias="BRIDGE_HOST")
    port: int = Field(8000, ge=0, le=65535, alias="BRIDGE_PORT")
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, alias="BRIDGE_API_KEYS")
    db: str = Field("a2e-bridge.db", alias="BRIDGE_DB")
    # many instances (README, Deployment): set, the rooms, leases, caps, events and forwarded commands go
    # through this Redis and BRIDGE_DB is not used
    redis_url: str | None = Field(None, pattern=r"^rediss?://", alias="BRIDGE_REDIS_URL")
    # this instance's name in the fleet (leases, forwarded commands); default: host name + pid + random
    instance_id: str = Field(default_factory=default_instance_id, min_length=1, max_length=128,
                             pattern=r"^[A-Za-z0-9._:-]+$", alias="BRIDGE_INSTANCE_ID")
    # how long a room's owner may be silent before another instance takes the room over
    lease_seconds: float = Field(5.0, ge=0.5, le=300, alias="BRIDGE_LEASE_SECONDS")
    # ended rooms are kept this long (at least a day: the room-minutes cap counts today's rooms)
    retention_days: float = Field(30.0, ge=1, alias="BRIDGE_RETENTION_DAYS")
    # a transcript line waits up to this long to be written with others (one fsync for many)
    transcript_batch_seconds: float = Field(0.05, ge=0, le=5, alias="BRIDGE_TRANSCRIPT_BATCH_SECONDS")
    log_level: str = Field("INFO", alias="BRIDGE_LOG_LEVEL")
    # unset: json when stderr is not a terminal, text on a terminal (bridge.logs.log_format)
    log_format: Literal["json", "text"] | None = Field(None, alias="BRIDGE_LOG_FORMAT")
    # /readyz asks A2E at most once per this many seconds (it is unauthenticated)
    ready_cache_seconds: float = Field(5.0, ge=0, alias="BRIDGE_READY_CACHE_SECONDS")
    # set: /metrics needs "Authorization: Bearer <token>"; unset or empty: /metrics is open
    metrics_token: SecretStr | None = Field(None, alias="BRIDGE_METRICS_TOKEN")

    # development mode on a non-loopback address must be asked for (every caller would be tenant dev)
    allow_network_dev_mode: bool = Field(False, alias="BRIDGE_ALLOW_NETWORK_DEV_MODE")

    # connections and request bodies (bridge/http/guard.py, bridge/http/limits.py)
    # unset: 64 KiB, or more if BRIDGE_MAX_TEXT_CHARS needs it (see largest_honest_body)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, alias="BRIDGE_MAX_BODY_BYTES")
    max_passthrough_body_bytes: int = Field(1024 * 1024, ge=1024, alias="BRIDGE_MAX_PASSTHROUGH_BODY_BYTES")
    header_timeout: float = Field(10.0, gt=0, alias="BRIDGE_HEADER_TIMEOUT")
    keepalive_timeout: float = Field(5.0, gt=0, alias="BRIDGE_KEEPALIVE_TIMEOUT")
    # unset: derived from the descriptor limit (bridge.serving.connection_limit)
    max_connections: int | None = Field(None, ge=1, alias="BRIDGE_MAX_CONNECTIONS")

    # rooms
    default_avatar_id: str | None = Field(None, alias="BRIDGE_DEFAULT_AVATAR_ID")
    default_expire_seconds: int = Field(600, ge=10, alias="BRIDGE_DEFAULT_EXPIRE_SECONDS")
    idle_timeout: float = Field(120.0, gt=0, alias="BRIDGE_IDLE_TIMEOUT")
    leave_before_expiry: float = Field(15.0, ge=0, alias="BRIDGE_LEAVE_BEFORE_EXPIRY")
    queue_size: int = Field(64, ge=1, alias="BRIDGE_QUEUE_SIZE")
    max_text_chars: int = Field(2000, ge=1, alias="BRIDGE_MAX_TEXT_CHARS")
    shutdown_timeout: float = Field(10.0, gt=0, alias="BRIDGE_SHUTDOWN_TIMEOUT")
    ticket_ttl: float = Field(120.0, gt=0, alias="BRIDGE_TICKET_TTL")
    ticket_secret: SecretStr | None = Field(None, alias="BRIDGE_TICKET_SECRET")
    # a ticket chain (a ticket and the renewals pushed to its socket) ends this long after it began;
    # 24 h outlasts any room (expire_seconds is at most 86,400)
    ticket_max_life: float = Field(86_400.0, gt=0, alias="BRIDGE_TICKET_MAX_LIFE")
    sweep_interval: float = Field(1.0, gt=0, alias="BRIDGE_SWEEP_INTERVAL")
    # who answers ask besides A2E; a stream with nothing new for this long is over; estimated speech speed
    brains: dict[str, BrainConfig] = Field(default_factory=dict, alias="BRIDGE_BRAINS")
    stream_idle_timeout: float = Field(30.0, gt=0, alias="BRIDGE_STREAM_IDLE_TIMEOUT")
    speech_seconds_per_char: float = Field(0.07, gt=0, alias="BRIDGE_SPEECH_SECONDS_PER_CHAR")

    passthrough_tenants: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                                alias="BRIDGE_PASSTHROUGH_TENANTS")

    # per-tenant caps
    max_rooms_per_tenant: int = Field(20, ge=1, alias="BRIDGE_MAX_ROOMS_PER_TENANT")
    max_expire_seconds: int = Field(3600, ge=10, alias="BRIDGE_MAX_EXPIRE_SECONDS")
    room_minutes_per_day: float = Field(24 * 60 * 20, gt=0, alias="BRIDGE_ROOM_MINUTES_PER_DAY")
    # room creations per minute (token bucket of room_create_burst): each attempt may call A2E
    room_create_rate: float = Field(30.0, gt=0, alias="BRIDGE_ROOM_CREATE_RATE")
    room_create_burst: int = Field(30, ge=1, alias="BRIDGE_ROOM_CREATE_BURST")
    coins_per_minute: float = Field(1.0, ge=0, alias="BRIDGE_COINS_PER_MINUTE")
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict, alias="BRIDGE_TENANT_LIMITS")
    spend_alert_coins: int | None = Field(None, ge=1, alias="BRIDGE_SPEND_ALERT_COINS")

    # operators: the operator page's key, signed webhooks (bridge/webhooks/)
    operator_key: SecretStr | None = Field(None, alias="BRIDGE_OPERATOR_KEY")
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict, alias="BRIDGE_WEBHOOKS")
    webhook_expiring_seconds: float = Field(60.0, ge=0, alias="BRIDGE_WEBHOOK_EXPIRING_SECONDS")
    webhook_timeout: float = Field(10.0, gt=0, alias="BRIDGE_WEBHOOK_TIMEOUT")
    webhook_backoff_max: float = Field(300.0, gt=0, alias="BRIDGE_WEBHOOK_BACKOFF_MAX")
    webhook_give_up_hours: float = Field(72.0, gt=0, alias="BRIDGE_WEBHOOK_GIVE_UP_HOURS")

    # browser frontends on their own sites: origins (also per tenant) and publishable browser keys
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="BRIDGE_ALLOWED_ORIGINS")
    browser_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, alias="BRIDGE_BROWSER_KEYS")
    browser_key_max_rooms: int = Field(2, ge=1, alias="BRIDGE_BROWSER_KEY_MAX_ROOMS")  # per key, at once
    browser_key_max_expire_seconds: int = Field(600, ge=10, alias="BRIDGE_BROWSER_KEY_MAX_EXPIRE_SECONDS")
    browser_key_rooms_per_hour: int = Field(20, ge=1, alias="BRIDGE_BROWSER_KEY_ROOMS_PER_HOUR")
    browser_key_qa_context_chars: int = Field(1000, ge=0, alias="BRIDGE_BROWSER_KEY_QA_CONTEXT_CHARS")
    kiosk_profiles: dict[str, KioskProfile] = Field(default_factory=dict, alias="BRIDGE_KIOSK_PROFILES")

    # connected clients (websocket and SSE together)
    max_clients_per_room: int = Field(50, ge=1, alias="BRIDGE_MAX_CLIENTS_PER_ROOM")
    max_clients_per_ticket: int = Field(5, ge=1, alias="BRIDGE_MAX_CLIENTS_PER_TICKET")
    max_clients_per_tenant: int = Field(500, ge=1, alias="BRIDGE_MAX_CLIENTS_PER_TENANT")

    # websocket relay
    ws_max_frame_bytes: int = Field(64 * 1024, ge=256, alias="BRIDGE_WS_MAX_FRAME_BYTES")
    ws_send_buffer: int = Field(256, ge=1, alias="BRIDGE_WS_SEND_BUFFER")
    ws_rate_limit: float = Field(50.0, gt=0, alias="BRIDGE_WS_RATE_LIMIT")
    ws_rate_burst: int = Field(100, ge=1, alias="BRIDGE_WS_RATE_BURST")
    ws_ping_interval: float = Field(20.0, gt=0, alias="BRIDGE_WS_PING_INTERVAL")

    # room events
    event_source: EventSource = Field("auto", alias="BRIDGE_EVENT_SOURCE")
    event_buffer: int = Field(256, ge=1, alias="BRIDGE_EVENT_BUFFER")

    # the kiosk page's Agora Web SDK (a deployment setting, never taken from the page's URL)
    agora_sdk_url: str = Field(DEFAULT_AGORA_SDK_URL, alias="BRIDGE_AGORA_SDK_URL")
    agora_sdk_integrity: str | None = Field(None, alias="BRIDGE_AGORA_SDK_INTEGRITY")
    agora_connect_src: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: DEFAULT_AGORA_CONNECT_SRC.split(), alias="BRIDGE_AGORA_CONNECT_SRC")

    # the embedded simulator (used when A2E_API_KEY is unset)
    sim_max_channels: int = Field(200, ge=1, alias="SIM_MAX_CHANNELS")
    sim_coins: int = Field(20_000, ge=0, alias="SIM_COINS")
    sim_task_step_seconds: float = Field(1.0, ge=0, alias="SIM_TASK_STEP_SECONDS")
    sim_seconds_per_char: float = Field(0.02, ge=0, alias="SIM_SECONDS_PER_CHAR")
    # keys `a2e-bridge simulate` accepts (empty: any); the embedded simulator has its own random key
    sim_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="SIM_API_KEYS")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> dict[str, str]:
        return parse_api_keys(value)  # type: ignore[arg-type]

    @field_validator("browser_keys", mode="before")
    @classmethod
    def _parse_browser_keys(cls, value: object) -> dict[str, str]:
        keys = parse_api_keys(value, "BRIDGE_BROWSER_KEYS")  # type: ignore[arg-type]
        if any(not key.startswith(BROWSER_KEY_PREFIX) for key in keys):
            raise ValueError(f"BRIDGE_BROWSER_KEYS: every browser key starts with {BROWSER_KEY_PREFIX!r}")
        return keys

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _check_origins(cls, value: object) -> list[str]:
        return check_origins(value)  # type: ignore[arg-type]

    @field_validator("passthrough_tenants", "sim_api_keys", mode="before")
    @classmethod
    def _parse_comma_list(cls, value: object) -> list[str]:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return [str(item) for item in value]  # type: ignore[attr-defined]

    @field_validator("brains")
    @classmethod
    def _check_brains(cls, value: dict[str, BrainConfig]) -> dict[str, BrainConfig]:
        return check_brain_names(value)

    @field_validator("agora_sdk_url")
    @classmethod
    def _check_sdk_url(cls, value: str) -> str:
        return check_agora_sdk_url(value)

    @field_validator("agora_sdk_integrity")
    @classmethod
    def _check_integrity(cls, value: str | None) -> str | None:
        return check_integrity(value)

    @field_validator("agora_connect_src", mode="before")
    @classmethod
    def _check_connect_src(cls, value: object) -> list[str]:
        return check_connect_src(value)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _fit_body_limit(self) -> Settings:
        if "max_body_bytes" not in self.model_fields_set:
            self.max_body_bytes = max(DEFAULT_MAX_BODY_BYTES, largest_honest_body(self.max_text_chars))
        if set(self.api_keys) & set(self.browser_keys):
            raise ValueError("a key is in both BRIDGE_API_KEYS and BRIDGE_BROWSER_KEYS")
        return self

    @model_validator(mode="after")
    def _check_kiosk_profiles(self) -> Settings:
        check_kiosk_profiles(self.kiosk_profiles, tenants=set(self.api_keys.values()), brains=set(self.brains))
        return self

    def limits_for(self, tenant: str) -> TenantLimits:
        """The caps that apply to ``tenant``: its own overrides, else the global settings."""
        own = self.tenant_limits.get(tenant, TenantLimits())
        return TenantLimits(**{name: getattr(own, name) if getattr(own, name) is not None else getattr(self, name)
                               for name in TenantLimits.model_fields})

    @property
    def uses_simulator(self) -> bool:
        return self.a2e_api_key is None or not self.a2e_api_key.get_secret_value()

    @property
    def dev_mode(self) -> bool:
        """No client keys and the embedded simulator: anyone on the network may use the bridge."""
        return not self.api_keys and not self.browser_keys and self.uses_simulator

    def every_allowed_origin(self) -> list[str]:
        """The deployment's origins and every tenant's: what CORS may answer before a key is read."""
        tenants = [origin for limits in self.tenant_limits.values() for origin in limits.allowed_origins or []]
        return list(dict.fromkeys([*self.allowed_origins, *tenants]))
