"""The one typed settings object, read from environment variables (and a ``.env`` file).

Settings only hold values; nothing here opens files or sockets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from bridge.a2e.client import DEFAULT_BASE_URL

EventSource = Literal["auto", "agora", "simulator", "browser", "none"]


def parse_api_keys(raw: str | dict[str, str] | None) -> dict[str, str]:
    """``"acme:key1,globex:key2"`` → ``{"key1": "acme", "key2": "globex"}`` (key → tenant)."""
    if isinstance(raw, dict):
        return raw
    keys: dict[str, str] = {}
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        if not sep or not tenant.strip() or not key.strip():
            raise ValueError("BRIDGE_API_KEYS entries must look like tenant:key (comma-separated)")
        if key.strip() in keys:
            raise ValueError("BRIDGE_API_KEYS lists the same key twice")
        keys[key.strip()] = tenant.strip()
    return keys


class TenantLimits(BaseModel):
    """One tenant's caps; a field left out falls back to the global setting of the same name."""

    model_config = ConfigDict(extra="forbid")
    max_rooms_per_tenant: int | None = Field(None, ge=1)
    max_expire_seconds: int | None = Field(None, ge=10)
    room_minutes_per_day: float | None = Field(None, gt=0)


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
    # ended rooms are kept this long (at least a day: the room-minutes cap counts today's rooms)
    retention_days: float = Field(30.0, ge=1, alias="BRIDGE_RETENTION_DAYS")
    log_level: str = Field("INFO", alias="BRIDGE_LOG_LEVEL")

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
    sweep_interval: float = Field(1.0, gt=0, alias="BRIDGE_SWEEP_INTERVAL")

    passthrough_tenants: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                                alias="BRIDGE_PASSTHROUGH_TENANTS")

    # per-tenant caps
    max_rooms_per_tenant: int = Field(20, ge=1, alias="BRIDGE_MAX_ROOMS_PER_TENANT")
    max_expire_seconds: int = Field(3600, ge=10, alias="BRIDGE_MAX_EXPIRE_SECONDS")
    room_minutes_per_day: float = Field(24 * 60 * 20, gt=0, alias="BRIDGE_ROOM_MINUTES_PER_DAY")
    coins_per_minute: float = Field(1.0, ge=0, alias="BRIDGE_COINS_PER_MINUTE")
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict, alias="BRIDGE_TENANT_LIMITS")

    # websocket relay
    ws_max_frame_bytes: int = Field(64 * 1024, ge=256, alias="BRIDGE_WS_MAX_FRAME_BYTES")
    ws_send_buffer: int = Field(256, ge=1, alias="BRIDGE_WS_SEND_BUFFER")
    ws_rate_limit: float = Field(50.0, gt=0, alias="BRIDGE_WS_RATE_LIMIT")
    ws_rate_burst: int = Field(100, ge=1, alias="BRIDGE_WS_RATE_BURST")
    ws_ping_interval: float = Field(20.0, gt=0, alias="BRIDGE_WS_PING_INTERVAL")

    # room events
    event_source: EventSource = Field("auto", alias="BRIDGE_EVENT_SOURCE")
    event_buffer: int = Field(256, ge=1, alias="BRIDGE_EVENT_BUFFER")

    # the embedded simulator (used when A2E_API_KEY is unset)
    sim_max_channels: int = Field(200, ge=1, alias="SIM_MAX_CHANNELS")
    sim_coins: int = Field(20_000, ge=0, alias="SIM_COINS")
    sim_task_step_seconds: float = Field(1.0, ge=0, alias="SIM_TASK_STEP_SECONDS")
    sim_seconds_per_char: float = Field(0.02, ge=0, alias="SIM_SECONDS_PER_CHAR")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> dict[str, str]:
        return parse_api_keys(value)  # type: ignore[arg-type]

    @field_validator("passthrough_tenants", mode="before")
    @classmethod
    def _parse_tenants(cls, value: object) -> list[str]:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return list(value)  # type: ignore[call-overload]

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
        return not self.api_keys and self.uses_simulator
