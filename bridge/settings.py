"""The one typed settings object, read from environment variables (and a ``.env`` file).

Settings only hold values; nothing here opens files or sockets.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from bridge.a2e.client import DEFAULT_BASE_URL
from bridge.a2e.endpoints import QA_CONTEXT_LIMIT


class ConfigurationError(RuntimeError):
    """The settings cannot give a safe service (raised where the app is made or served)."""


EventSource = Literal["auto", "agora", "simulator", "browser", "none"]

# The Agora Web SDK the kiosk page loads: version-pinned (the unversioned AgoraRTC_N.js changes under
# the page, and could not be pinned with a Subresource Integrity hash).
DEFAULT_AGORA_SDK_URL = "https://download.agora.io/sdk/release/AgoraRTC_N-4.22.2.js"
# What the Agora Web SDK 4.x connects to (read from 4.22.2): its access points, gateways
# (wss://<ip>.edge.agora.io:<port>), stats and log services and cloud proxies all live under these two
# domains, on varying ports. WebRTC media itself is not governed by CSP.
DEFAULT_AGORA_CONNECT_SRC = ("https://*.agora.io:* wss://*.agora.io:* "
                             "https://*.sd-rtn.com:* wss://*.sd-rtn.com:*")

# Characters that would end a CSP source list or an HTML attribute: never allowed in a setting that
# goes into either.
_UNSAFE_IN_HEADER = re.compile(r"""[\s;,'"<>\\`]""")
_SRI = re.compile(r"(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2}")
_CSP_SOURCE = re.compile(r"[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*)(:(\*|\d{1,5}))?(/\S*)?",
                         re.IGNORECASE)


def check_agora_sdk_url(url: str) -> str:
    """An absolute https URL with a host and nothing that could break out of a CSP header or an HTML
    attribute; ``""`` switches the video off."""
    url = url.strip()
    if not url:
        return ""
    if _UNSAFE_IN_HEADER.search(url):
        raise ValueError("BRIDGE_AGORA_SDK_URL must not contain spaces, quotes, ';', ',', '<', '>' or backslashes")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValueError("BRIDGE_AGORA_SDK_URL must be an https:// URL with a host (no user info, no fragment)")
    return url


def check_integrity(value: str | None) -> str | None:
    """Subresource Integrity metadata: one or more ``sha256-``/``sha384-``/``sha512-`` base64 digests."""
    if value is None or not value.strip():
        return None
    tokens = value.split()
    if not all(_SRI.fullmatch(t) for t in tokens):
        raise ValueError("BRIDGE_AGORA_SDK_INTEGRITY must look like sha384-<base64> "
                         "(openssl dgst -sha384 -binary FILE | openssl base64 -A)")
    return " ".join(tokens)


def check_connect_src(value: str | list[str] | None) -> list[str]:
    """CSP source expressions (hosts like ``https://*.agora.io:*`` or schemes like ``https:``); keywords
    and anything that could end the directive are refused."""
    tokens = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
    for token in tokens:
        if _UNSAFE_IN_HEADER.search(token) or not _CSP_SOURCE.fullmatch(token):
            raise ValueError(f"BRIDGE_AGORA_CONNECT_SRC: {token!r} is not a CSP host or scheme source")
    return tokens


DEFAULT_MAX_BODY_BYTES = 64 * 1024


def largest_honest_body(max_text_chars: int) -> int:
    """Bytes of the largest valid room body: the longest text (a QA context or speak/ask text) plus a
    128-character avatar id, every character an astral one that ``json.dumps`` (ASCII-safe by default)
    writes as a 12-byte surrogate pair escape, plus room for field names and whitespace. For the
    defaults: 12 × (5000 + 128) + 512 = 62,048 bytes, within 64 KiB."""
    return 12 * (max(max_text_chars, QA_CONTEXT_LIMIT) + 128) + 512


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
    room_create_rate: float | None = Field(None, gt=0)
    room_create_burst: int | None = Field(None, ge=1)


class KioskProfile(BaseModel):
    """One kiosk deployment (``BRIDGE_KIOSK_PROFILES``, name -> profile), served to ``/kiosk?profile=NAME``."""

    model_config = ConfigDict(extra="forbid")
    avatar_id: str = Field(min_length=1, max_length=128)
    qa_context: str | None = Field(None, max_length=QA_CONTEXT_LIMIT)
    brain: Literal["a2e"] | None = None  # who answers ask: A2E's own QA, the only brain so far
    idle_seconds: float = Field(30.0, ge=1)  # quiet time before "are you still there?"
    prompt_seconds: float = Field(10.0, gt=0)  # how long that question waits before the room is left
    language: str = Field("en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # speech recognition
    warm_rooms: int = Field(0, ge=0, le=50)  # rooms kept open ahead of visitors
    expire_seconds: int | None = Field(None, ge=10, le=86_400)  # default: BRIDGE_DEFAULT_EXPIRE_SECONDS
    watchdog_seconds: float = Field(10.0, gt=0)  # a speak/ask with no speaking_started this long is reported
    tenant: str | None = Field(None, min_length=1)  # only this tenant may use it; its warm rooms count for it


KIOSK_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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

    @field_validator("passthrough_tenants", "sim_api_keys", mode="before")
    @classmethod
    def _parse_comma_list(cls, value: object) -> list[str]:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return [str(item) for item in value]  # type: ignore[attr-defined]

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
        return self

    @model_validator(mode="after")
    def _check_kiosk_profiles(self) -> Settings:
        tenants = set(self.api_keys.values())
        for name, profile in self.kiosk_profiles.items():
            if not KIOSK_PROFILE_NAME.fullmatch(name):
                raise ValueError(f"BRIDGE_KIOSK_PROFILES: {name!r} is not a name (letters, digits, '_', '-')")
            if tenants and profile.warm_rooms and profile.tenant is None:
                raise ValueError(f"BRIDGE_KIOSK_PROFILES: {name!r} keeps warm rooms, so it needs the tenant they belong to")
            if profile.tenant is not None and profile.tenant not in (tenants or {"dev"}):  # no keys: all are "dev"
                raise ValueError(f"BRIDGE_KIOSK_PROFILES: {name!r} names tenant {profile.tenant!r}, which has no key")
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
        return not self.api_keys and self.uses_simulator
