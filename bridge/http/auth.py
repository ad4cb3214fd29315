"""Who is calling: client keys bound to tenants, and short-lived websocket tickets for browsers.

Tickets are HMAC-SHA256-signed ``room.tenant.expiry`` strings (stdlib ``hmac``: three fields and
one signature do not justify a JWT library). They bind one room and one tenant and expire after
``BRIDGE_TICKET_TTL`` seconds; the secret is per process unless ``BRIDGE_TICKET_SECRET`` is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from bridge.errors import Unauthorized

DEV_TENANT = "dev"


@dataclass(frozen=True)
class Caller:
    tenant: str
    ticket_expires: float | None = None  # set when the caller came with a ticket, not a key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Authenticator:
    """Maps ``Authorization: Bearer <key>`` to a tenant; in dev mode everyone is tenant ``dev``."""

    def __init__(self, api_keys: dict[str, str], *, dev_mode: bool, ticket_ttl: float,
                 ticket_secret: bytes | None = None) -> None:
        self._keys = dict(api_keys)
        self.dev_mode = dev_mode
        self.ticket_ttl = ticket_ttl
        self._secret = ticket_secret or secrets.token_bytes(32)

    def tenant_for_key(self, key: str | None) -> str | None:
        if key:
            for known, tenant in self._keys.items():
                if hmac.compare_digest(known.encode(), key.encode()):
                    return tenant
        return None

    def authenticate(self, conn: HTTPConnection) -> Caller:
        """The caller of a request, or :class:`Unauthorized`."""
        header = conn.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        tenant = self.tenant_for_key(key.strip()) if scheme.lower() == "bearer" else None
        if tenant:
            return Caller(tenant)
        if self.dev_mode:
            return Caller(DEV_TENANT)
        if not header:
            raise Unauthorized("missing Authorization: Bearer <key>")
        raise Unauthorized("unknown API key")

    def authenticate_room(self, conn: HTTPConnection) -> Caller:
        """For a room's stream (websocket, SSE): a ``?ticket=`` for that room, else the key."""
        ticket = conn.query_params.get("ticket")
        if ticket:
            return self.check_ticket(ticket, conn.path_params["room_id"])
        return self.authenticate(conn)

    # -- tickets ------------------------------------------------------------------------------
    def issue_ticket(self, room_id: str, tenant: str, now: float | None = None) -> str:
        expiry = int((now or time.time()) + self.ticket_ttl)
        payload = f"{room_id}.{_b64(tenant.encode())}.{expiry}"
        return f"{payload}.{self._sign(payload)}"

    def check_ticket(self, ticket: str, room_id: str, now: float | None = None) -> Caller:
        """The tenant a ticket was issued to, if it is genuine, unexpired and for ``room_id``."""
        try:
            ticket_room, tenant_b64, expiry, signature = ticket.split(".")
            payload = f"{ticket_room}.{tenant_b64}.{expiry}"
            genuine = hmac.compare_digest(signature, self._sign(payload))
            tenant = base64.urlsafe_b64decode(tenant_b64 + "=" * (-len(tenant_b64) % 4)).decode()
            expires = int(expiry)
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("malformed ticket") from None
        if not genuine:
            raise Unauthorized("invalid ticket")
        if ticket_room != room_id:
            raise Unauthorized("ticket is for another room")
        if expires < (now or time.time()):
            raise Unauthorized("ticket expired")
        return Caller(tenant, ticket_expires=expires)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:18])
