"""Who is calling: client keys bound to tenants, publishable browser keys, and short-lived websocket
tickets for browsers; and, for callers that are web pages, whether their origin may (``origins.py``).

Browser keys (``BRIDGE_BROWSER_KEYS``, ``pk_…``) may sit in a page: they only open rooms (within their
own caps, ``bridge/rooms/caps.py``), use the rooms they opened and end them; tickets minted for them
carry the ``browser`` scope so that their holders keep the same limits.

Tickets are HMAC-SHA256-signed strings (stdlib ``hmac``: a few fields and one signature do not
justify a JWT library)::

    room . tenant(base64url) . expiry . chain start . chain id . scope . signature

They bind one room and one tenant and expire after ``BRIDGE_TICKET_TTL`` seconds; the secret is per
process unless ``BRIDGE_TICKET_SECRET`` is set. A socket's renewed tickets keep the chain's start,
id and scope, and a chain ends ``BRIDGE_TICKET_MAX_LIFE`` seconds after it began. A ticket is
honoured only while its tenant still has a key. The ``forward`` scope lets its holder forward
channel events (``rtc_event``); only a key holder can ask for it. Clients treat tickets as opaque.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from bridge import logs
from bridge.errors import Forbidden, Unauthorized

from .origins import OriginPolicy

DEV_TENANT = "dev"
SCOPE_FORWARD = "forward"
SCOPE_BASIC = "basic"
SCOPE_BROWSER, SCOPE_BROWSER_FORWARD = "browser", "browser_forward"  # minted for a browser key
MAX_TICKET_CHARS = 1024  # a genuine ticket is about 100 characters; anything longer is not one
# Every field is base64url or digits: checked before anything else, so odd input (non-ASCII, empty
# fields, extra dots, huge strings) is refused as malformed instead of reaching int()/b64decode/hmac.
_TICKET = re.compile(r"([A-Za-z0-9_-]{1,128})\.([A-Za-z0-9_-]{1,344})\.([0-9]{1,12})\.([0-9]{1,12})\."
                     r"([A-Za-z0-9_-]{1,32})\.(forward|basic|browser|browser_forward)\.([A-Za-z0-9_-]{24})", re.ASCII)


@dataclass(frozen=True)
class Caller:
    tenant: str
    ticket_expires: float | None = None  # set when the caller came with a ticket, not a key
    forward: bool = True  # may forward channel events: key holders, and tickets with the forward scope
    ticket_started: float | None = None  # when the ticket's chain began
    ticket_chain: str | None = None  # the chain's id: every renewal of one ticket shares it
    browser: bool = False  # a browser key, or a ticket minted for one: the browser-key limits apply
    browser_key: str | None = None  # the browser key's id (a digest, never the key): rooms it opened

    def deny_browser(self, what: str) -> None:
        """Refuse (403 ``forbidden``) what a browser key may never do."""
        if self.browser:
            raise Forbidden(f"a browser key may not {what}; use a secret key (BRIDGE_API_KEYS) from a backend")


def key_id(key: str) -> str:
    """A browser key's id: names it in the store and the logs without revealing it."""
    return "pk#" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Viewer:
    """Who reads operator records (transcripts, usage, deliveries): a tenant, or (``tenant`` None) the
    operator, with ``BRIDGE_OPERATOR_KEY``, who sees every tenant."""

    tenant: str | None

    @property
    def is_operator(self) -> bool:
        return self.tenant is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Authenticator:
    """Maps ``Authorization: Bearer <key>`` to a tenant; in dev mode everyone is tenant ``dev``."""

    def __init__(self, api_keys: dict[str, str], *, dev_mode: bool, ticket_ttl: float,
                 ticket_secret: bytes | None = None, ticket_max_life: float = 86_400.0,
                 browser_keys: dict[str, str] | None = None, origins: OriginPolicy | None = None,
                 operator_key: str | None = None) -> None:
        self._keys = dict(api_keys)
        self._browser_keys = dict(browser_keys or {})
        self._operator_key = operator_key or None
        self.dev_mode = dev_mode
        self.ticket_ttl = ticket_ttl
        self.ticket_max_life = ticket_max_life
        self.origins = origins  # None: no origin checks (unit tests of tickets)
        self._secret = ticket_secret or secrets.token_bytes(32)
        self.tenants = (frozenset(self._keys.values()) | frozenset(self._browser_keys.values())
                        | ({DEV_TENANT} if dev_mode else set()))

    def tenant_for_key(self, key: str | None, keys: dict[str, str] | None = None) -> str | None:
        if key:
            for known, tenant in (self._keys if keys is None else keys).items():
                if hmac.compare_digest(known.encode(), key.encode()):
                    return tenant
        return None

    def authenticate(self, conn: HTTPConnection) -> Caller:
        """The caller of a request (:class:`Unauthorized` if none), once its origin is allowed
        (:class:`~bridge.errors.OriginNotAllowed`)."""
        self._check_origin(conn)
        return self._admit(conn, self._identify(conn))

    def authenticate_room(self, conn: HTTPConnection) -> Caller:
        """For a room's stream (websocket, SSE): a ``?ticket=`` for that room, else the key."""
        ticket = conn.query_params.get("ticket")
        if ticket:
            self._check_origin(conn)
            return self._admit(conn, self.check_ticket(ticket, conn.path_params["room_id"]))
        return self.authenticate(conn)

    def _identify(self, conn: HTTPConnection) -> Caller:
        header = conn.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        tenant = self.tenant_for_key(key)
        if tenant:
            return Caller(tenant)
        tenant = self.tenant_for_key(key, self._browser_keys)
        if tenant:
            return Caller(tenant, browser=True, browser_key=key_id(key))
        if self.dev_mode:
            return Caller(DEV_TENANT)
        if not header:
            raise Unauthorized("missing Authorization: Bearer <key>")
        raise Unauthorized("unknown API key")

    def _check_origin(self, conn: HTTPConnection) -> None:
        """Before any key is read: an origin that no tenant lists is refused outright."""
        if self.origins is not None:
            self.origins.check(conn)

    def _admit(self, conn: HTTPConnection, caller: Caller) -> Caller:
        if self.origins is not None:
            self.origins.check(conn, caller.tenant, browser_key=caller.browser_key is not None)
        logs.bind(tenant=caller.tenant)
        return caller

    def authenticate_viewer(self, conn: HTTPConnection) -> Viewer:
        """The operator (``Authorization: Bearer <BRIDGE_OPERATOR_KEY>``), else a tenant's key."""
        if self._operator_key:
            scheme, _, key = conn.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), self._operator_key.encode()):
                return Viewer(None)
        caller = self.authenticate(conn)
        # a publishable key sits in a page: the tenant's records (transcripts, usage, deliveries) are not its own
        caller.deny_browser("read the tenant's records")
        return Viewer(caller.tenant)

    # -- tickets ------------------------------------------------------------------------------
    def issue_ticket(self, room_id: str, tenant: str, now: float | None = None, *, forward: bool = False,
                     started: float | None = None, chain: str | None = None, browser: bool = False) -> str:
        """A ticket for ``room_id``; a new chain unless ``started``/``chain`` continue one."""
        now = time.time() if now is None else now
        started = int(now if started is None else started)
        expiry = int(min(now + self.ticket_ttl, started + self.ticket_max_life))
        chain = chain or _b64(secrets.token_bytes(8))
        if browser:
            scope = SCOPE_BROWSER_FORWARD if forward else SCOPE_BROWSER
        else:
            scope = SCOPE_FORWARD if forward else SCOPE_BASIC
        payload = f"{room_id}.{_b64(tenant.encode())}.{expiry}.{started}.{chain}.{scope}"
        return f"{payload}.{self._sign(payload)}"

    def renew_ticket(self, caller: Caller, room_id: str, now: float | None = None) -> tuple[str, float] | None:
        """The next ticket of ``caller``'s chain and its lifetime in seconds; None once the chain is
        over (past ``BRIDGE_TICKET_MAX_LIFE``). Unauthorized if the tenant has lost its key."""
        now = time.time() if now is None else now
        assert caller.ticket_started is not None and caller.ticket_chain is not None
        self._check_tenant(caller.tenant)
        ends = caller.ticket_started + self.ticket_max_life
        if ends - now < 1:  # tickets carry whole seconds: a shorter one would be born expired
            return None
        ticket = self.issue_ticket(room_id, caller.tenant, now, forward=caller.forward, browser=caller.browser,
                                   started=caller.ticket_started, chain=caller.ticket_chain)
        return ticket, min(self.ticket_ttl, ends - now)

    def check_ticket(self, ticket: str, room_id: str, now: float | None = None) -> Caller:
        """The caller a ticket stands for, if it is genuine, unexpired, for ``room_id`` and its
        tenant still has a key."""
        now = time.time() if now is None else now
        match = _TICKET.fullmatch(ticket) if len(ticket) <= MAX_TICKET_CHARS else None
        if match is None:
            raise Unauthorized("malformed ticket")
        ticket_room, tenant_b64, expiry, started, chain, scope, signature = match.groups()
        payload = ticket.rpartition(".")[0]
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise Unauthorized("invalid ticket")
        try:
            tenant = base64.urlsafe_b64decode(tenant_b64 + "=" * (-len(tenant_b64) % 4)).decode()
        except (binascii.Error, ValueError):  # only with a leaked secret: we never sign such a ticket
            raise Unauthorized("malformed ticket") from None
        if ticket_room != room_id:
            raise Unauthorized("ticket is for another room")
        if int(expiry) < now:
            raise Unauthorized("ticket expired")
        if int(started) + self.ticket_max_life < now:
            raise Unauthorized("ticket chain expired: ask the room's owner for a new ticket")
        self._check_tenant(tenant)
        return Caller(tenant, ticket_expires=int(expiry), forward=scope in (SCOPE_FORWARD, SCOPE_BROWSER_FORWARD),
                      ticket_started=int(started), ticket_chain=chain,
                      browser=scope in (SCOPE_BROWSER, SCOPE_BROWSER_FORWARD))

    def _check_tenant(self, tenant: str) -> None:
        if tenant not in self.tenants:
            raise Unauthorized("the ticket's tenant no longer has a key")

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:18])
