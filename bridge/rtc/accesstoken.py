"""Agora AccessToken2 ("007...") for the RTC service: build, parse, verify.

Why here: the A2E simulator must mint tokens of the same shape A2E returns,
and the bridge wants to read a real A2E token (channel, bound uid, expiry)
without the app certificate, e.g. to know whether our bot may reuse it.

Layout (all little-endian; ``string`` = u16 length + bytes)::

    "007" + base64(zlib(string(signature) + signing_info))
    signing_info = string(app_id) u32 issue_ts u32 expire u32 salt u16 n_services
                   { u16 type, u16 n_priv {u16 privilege, u32 seconds}, <type fields> }*
    rtc fields   = string(channel_name) string(uid)   # uid 0 -> "" (any uid may join)
    signature    = HMAC-SHA256(key, signing_info),
    key          = HMAC(salt_u32, HMAC(issue_ts_u32, app_certificate))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
import zlib
from typing import Any

__all__ = [
    "PRIVILEGE_JOIN_CHANNEL",
    "PRIVILEGE_PUBLISH_AUDIO",
    "PRIVILEGE_PUBLISH_DATA_STREAM",
    "PRIVILEGE_PUBLISH_VIDEO",
    "ROLE_PUBLISHER",
    "ROLE_SUBSCRIBER",
    "SERVICE_RTC",
    "TokenError",
    "build_rtc_token",
    "parse_token",
    "verify_token",
]

VERSION = "007"
SERVICE_RTC = 1
PRIVILEGE_JOIN_CHANNEL = 1
PRIVILEGE_PUBLISH_AUDIO = 2
PRIVILEGE_PUBLISH_VIDEO = 3
PRIVILEGE_PUBLISH_DATA_STREAM = 4
ROLE_PUBLISHER = 1
ROLE_SUBSCRIBER = 2
_ROLES = {"publisher": ROLE_PUBLISHER, "subscriber": ROLE_SUBSCRIBER,
          "broadcaster": ROLE_PUBLISHER, "audience": ROLE_SUBSCRIBER}

# service type -> (name, trailing fields); "s" = string, "h" = int16
_SERVICES: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {
    1: ("rtc", (("channel", "s"), ("uid", "s"))),
    2: ("rtm", (("user_id", "s"),)),
    3: ("streaming", (("channel", "s"), ("uid", "s"))),
    4: ("fpa", ()),
    5: ("chat", (("user_id", "s"),)),
    7: ("education", (("room_uuid", "s"), ("user_uuid", "s"), ("role", "h"))),
}


class TokenError(ValueError):
    """The string is not a well-formed AccessToken2."""


# --- packing ------------------------------------------------------------------


def _u16(x: int) -> bytes:
    return struct.pack("<H", x)


def _u32(x: int) -> bytes:
    return struct.pack("<I", x)


def _string(b: bytes) -> bytes:
    return _u16(len(b)) + b


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise TokenError("token truncated")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return int(v)

    def string(self) -> bytes:
        n = self.take("<H")
        if self.pos + n > len(self.buf):
            raise TokenError("token truncated")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b


def _signing_key(app_certificate: str, issue_ts: int, salt: int) -> bytes:
    k = hmac.new(_u32(issue_ts), app_certificate.encode(), hashlib.sha256).digest()
    return hmac.new(_u32(salt), k, hashlib.sha256).digest()


def _is_hex32(s: str) -> bool:
    try:
        return len(s) == 32 and len(bytes.fromhex(s)) == 16
    except ValueError:
        return False


# --- public API ---------------------------------------------------------------


def build_rtc_token(
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int | str,
    role: int | str,
    expire_seconds: int,
    issued_at: int | None = None,
    *,
    privilege_expire: int | None = None,
    salt: int | None = None,
) -> str:
    """Mint an RTC AccessToken2 exactly as Agora's ``RtcTokenBuilder2`` does.

    Args:
        app_id, app_certificate: 32 hex characters each (Agora's own check).
        uid: numeric uid or user account; ``0`` means "any uid may join".
        role: ``ROLE_PUBLISHER``/``ROLE_SUBSCRIBER`` (or "publisher", "subscriber").
            Publishers also get publish audio/video/data-stream privileges.
        expire_seconds: token lifetime, seconds after ``issued_at``.
        issued_at: unix seconds (default now). ``salt`` is random by default.
        privilege_expire: seconds for each privilege (default ``expire_seconds``).

    Raises:
        TokenError: bad ids or out-of-range numbers.
    """
    if not _is_hex32(app_id) or not _is_hex32(app_certificate):
        raise TokenError("app_id and app_certificate must be 32 hex characters")
    role_id = _ROLES.get(role, -1) if isinstance(role, str) else role
    if role_id not in (ROLE_PUBLISHER, ROLE_SUBSCRIBER):
        raise TokenError(f"unknown role {role!r}")
    issue_ts = int(time.time()) if issued_at is None else issued_at
    salt = secrets.randbelow(99_999_999) + 1 if salt is None else salt
    priv_expire = expire_seconds if privilege_expire is None else privilege_expire
    privileges = [PRIVILEGE_JOIN_CHANNEL]
    if role_id == ROLE_PUBLISHER:
        privileges += [PRIVILEGE_PUBLISH_AUDIO, PRIVILEGE_PUBLISH_VIDEO, PRIVILEGE_PUBLISH_DATA_STREAM]
    uid_bytes = b"" if uid == 0 else str(uid).encode()  # as Agora: only the int 0 is "any uid"
    try:
        service = (_u16(SERVICE_RTC) + _u16(len(privileges))
                   + b"".join(_u16(p) + _u32(priv_expire) for p in privileges)
                   + _string(channel.encode()) + _string(uid_bytes))
        signing_info = (_string(app_id.encode()) + _u32(issue_ts) + _u32(expire_seconds) + _u32(salt)
                        + _u16(1) + service)
    except struct.error as e:
        raise TokenError(str(e)) from e
    signature = hmac.new(_signing_key(app_certificate, issue_ts, salt), signing_info, hashlib.sha256).digest()
    return VERSION + base64.b64encode(zlib.compress(_string(signature) + signing_info)).decode()


def _unpack(token: str) -> tuple[bytes, bytes, dict[str, Any]]:
    if not isinstance(token, str) or not token.startswith(VERSION):
        raise TokenError("not an AccessToken2 (must start with '007')")
    try:
        raw = zlib.decompress(base64.b64decode(token[len(VERSION):], validate=True))
    except (binascii.Error, zlib.error, ValueError) as e:
        raise TokenError(f"undecodable token: {e}") from e
    r = _Reader(raw)
    signature = r.string()
    start = r.pos
    info: dict[str, Any] = {"version": VERSION}
    try:
        info["app_id"] = r.string().decode()
        info["issue_ts"] = r.take("<I")
        info["expire"] = r.take("<I")
        info["salt"] = r.take("<I")
        services: list[dict[str, Any]] = []
        for _ in range(r.take("<H")):
            stype = r.take("<H")
            if stype not in _SERVICES:
                raise TokenError(f"unknown service type {stype}")
            name, fields = _SERVICES[stype]
            svc: dict[str, Any] = {"type": stype, "name": name,
                                   "privileges": {r.take("<H"): r.take("<I") for _ in range(r.take("<H"))}}
            for fname, kind in fields:
                svc[fname] = r.string().decode() if kind == "s" else r.take("<h")
            services.append(svc)
    except UnicodeDecodeError as e:
        raise TokenError("token strings are not UTF-8") from e
    info["services"] = services
    info["expires_at"] = info["issue_ts"] + info["expire"]
    return signature, raw[start:], info


def parse_token(token: str) -> dict[str, Any]:
    """Decode a token without the certificate (diagnostics, never security).

    Returns:
        ``{"version", "app_id", "issue_ts", "expire", "expires_at", "salt",
        "signature" (hex), "services": [{"type", "name", "privileges": {id: secs},
        ...type fields}], "rtc": <the rtc service dict or None>}``. For RTC the
        fields are ``channel`` and ``uid`` (a string; ``""`` means any uid).

    Raises:
        TokenError: not a well-formed AccessToken2.
    """
    signature, _, info = _unpack(token)
    info["signature"] = signature.hex()
    info["rtc"] = next((s for s in info["services"] if s["type"] == SERVICE_RTC), None)
    return info


def verify_token(token: str, app_certificate: str) -> bool:
    """True if ``token`` was signed with ``app_certificate``."""
    try:
        signature, signing_info, info = _unpack(token)
    except TokenError:
        return False
    key = _signing_key(app_certificate, info["issue_ts"], info["salt"])
    return hmac.compare_digest(signature, hmac.new(key, signing_info, hashlib.sha256).digest())
