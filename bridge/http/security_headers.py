"""Security headers on every HTTP response: a strict Content-Security-Policy and its companions.

The kiosk page keeps a client key in sessionStorage; the policy makes sure that only the bridge's own
scripts and the one configured Agora Web SDK file ever run in the bridge's origin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A Host header that is safe to echo into the policy: a DNS name or IPv4 address, or a bracketed IPv6
# address, with an optional port. Anything else (a forged Host with ';' would add directives) is left out.
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def sdk_script_source(sdk_url: str) -> str | None:
    """The script-src entry for the configured SDK: its exact URL (tighter than its origin: nothing else
    on that CDN may run). The settings already checked it is https and free of header-breaking characters."""
    if not sdk_url:
        return None
    parts = urlsplit(sdk_url)
    return parts._replace(query="", fragment="").geturl()


def content_security_policy(*, sdk_url: str, agora_connect_src: Sequence[str], host: str | None = None) -> str:
    """The page's policy. ``host`` (the request's Host header) adds ``ws://host wss://host`` for the
    bridge's own websocket, which ``'self'`` does not cover in every browser."""
    script = ["'self'"]
    connect = ["'self'"]
    if host and _HOST.fullmatch(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    sdk = sdk_script_source(sdk_url)
    if sdk:
        script.append(sdk)
        # The Agora Web SDK talks to its access points, gateways (wss, on varying ports), stats and log
        # services: a host list under Agora's domains (BRIDGE_AGORA_CONNECT_SRC) rather than `https: wss:`.
        connect += list(agora_connect_src)
    directives = {
        "default-src": ["'self'"],
        "script-src": script,
        # The SDK builds one helper worker from a Blob (SEI in encoded frames); a blob: URL can only be
        # minted by script already running in the page, so this opens no way in for foreign script.
        "worker-src": ["'self'", "blob:"] if sdk else ["'self'"],
        "connect-src": connect,
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class SecurityHeaders:
    """Pure ASGI middleware adding the headers to the start of every HTTP response.

    Not ``BaseHTTPMiddleware``: that one wraps the body in its own stream (it breaks SSE streaming and
    background tasks) and is not applied to websockets anyway. Websocket scopes pass through untouched;
    a header a route set itself is kept.
    """

    def __init__(self, app: ASGIApp, *, sdk_url: str, agora_connect_src: Sequence[str]) -> None:
        self.app = app
        self.sdk_url = sdk_url
        self.agora_connect_src = tuple(agora_connect_src)
        self.fixed = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }

    def headers_for(self, scope: Scope) -> dict[str, str]:
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
        csp = content_security_policy(sdk_url=self.sdk_url, agora_connect_src=self.agora_connect_src, host=host)
        return {"Content-Security-Policy": csp, **self.fixed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
