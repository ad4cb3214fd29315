"""What the settings' values may be: parsers and checks for the strings operators write (keys, URLs,
CSP sources, origins), kept apart from the settings object that uses them."""

from __future__ import annotations

import os
import re
import secrets
import socket
from urllib.parse import urlsplit

from bridge.a2e.endpoints import QA_CONTEXT_LIMIT

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


def parse_api_keys(raw: str | dict[str, str] | None, name: str = "BRIDGE_API_KEYS") -> dict[str, str]:
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
            raise ValueError(f"{name} entries must look like tenant:key (comma-separated)")
        if key.strip() in keys:
            raise ValueError(f"{name} lists the same key twice")
        keys[key.strip()] = tenant.strip()
    return keys


BROWSER_KEY_PREFIX = "pk_"  # a publishable key says what it is: it may sit in a page, a secret key may not
_ORIGIN = re.compile(r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` as browsers send it in ``Origin`` (lower case, no default port), or None."""
    match = _ORIGIN.fullmatch(origin.strip().rstrip("/").lower())
    if match is None:
        return None
    scheme, host, port = match.groups()
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def check_origins(value: str | list[str] | None) -> list[str]:
    """Web origins (``https://shop.example``, ``http://127.0.0.1:5173``), comma- or space-separated.
    No wildcard: a browser key is bound to the origins listed, and ``*`` would bind it to none."""
    tokens = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
    origins = []
    for token in tokens:
        origin = normalize_origin(token)
        if origin is None:
            raise ValueError(f"allowed origin {token!r} is not scheme://host[:port] (http or https, no path, "
                             "no wildcard)")
        origins.append(origin)
    return list(dict.fromkeys(origins))


def default_instance_id() -> str:
    """``host-pid-random``: unique per process, readable in logs and in Redis (BRIDGE_INSTANCE_ID)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
