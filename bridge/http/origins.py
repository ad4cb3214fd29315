"""Which web pages may use the bridge: the ``Origin`` allowlist (``BRIDGE_ALLOWED_ORIGINS``, and per
tenant ``allowed_origins`` in ``BRIDGE_TENANT_LIMITS``, which replaces the deployment's list for it).

A request without ``Origin`` is not from a cross-origin page (backends, curl) and passes, except
with a browser key, which is for pages only. A page on the bridge's own origin (the kiosk) always
passes. Any other ``Origin`` must be listed: first in the union of every list (before a key is
read), then in the list of the caller's tenant. CORS (Starlette's middleware, configured from the
same union in ``bridge/app.py``) only tells browsers what they may read; this is what refuses.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from bridge.errors import OriginNotAllowed
from bridge.settings import Settings
from bridge.settings.values import normalize_origin

log = logging.getLogger("bridge.origins")


class OriginPolicy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.everywhere = frozenset(settings.every_allowed_origin())
        self._tenants: dict[str, frozenset[str]] = {}

    def for_tenant(self, tenant: str) -> frozenset[str]:
        if tenant not in self._tenants:
            self._tenants[tenant] = frozenset(self.settings.limits_for(tenant).allowed_origins or [])
        return self._tenants[tenant]

    def check(self, conn: HTTPConnection, tenant: str | None = None, *, browser_key: bool = False) -> None:
        """Refuse (:class:`OriginNotAllowed`, logged once) a page whose origin is not allowed for
        ``tenant`` (None: for any tenant)."""
        origin = conn.headers.get("origin")
        if origin is None:
            # Browsers leave Origin out of same-origin GETs, and say so in Sec-Fetch-Site.
            if browser_key and conn.headers.get("sec-fetch-site") != "same-origin":
                self._refuse(conn, "(none)", tenant, "a browser key is accepted only from a web page (no Origin header)")
            return
        normal = normalize_origin(origin)
        if normal is not None and self.same_origin(conn, normal):
            return
        allowed = self.everywhere if tenant is None else self.for_tenant(tenant)
        if normal is None or normal not in allowed:
            whose = "any tenant's" if tenant is None else f"tenant {tenant}'s"
            self._refuse(conn, origin, tenant, f"origin {origin[:200]} is not in {whose} allowed origins")

    @staticmethod
    def same_origin(conn: HTTPConnection, origin: str) -> bool:
        """The page comes from the bridge itself: its origin names the host the request was sent to."""
        scheme = origin.partition("://")[0]
        host = conn.headers.get("host", "")
        return bool(host) and normalize_origin(f"{scheme}://{host}") == origin

    @staticmethod
    def _refuse(conn: HTTPConnection, origin: str, tenant: str | None, message: str) -> None:
        log.warning("refused %s from origin %s: %s", conn.url.path, origin[:200], message,
                    extra={"origin": origin[:200], "path": conn.url.path, "tenant": tenant})
        raise OriginNotAllowed(message)
