"""The module of the A2E client that speaks HTTP: a pooled httpx client (keep-alive, see
:mod:`.pool`), the check that a request goes exactly where its endpoint row says, and the mapping of
httpx's failures to the client's error tree. Nothing else in ``bridge.a2e`` but its pool imports httpx.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import A2EInvalidInput, A2ETimeout, A2EUnavailable
from .pool import pooled_client

__all__ = ["HttpPool", "Prepared", "Reply", "Transport"]

HttpPool = httpx.AsyncClient  # what callers may inject to share or fake the connection pool
Prepared = httpx.Request  # a request built and checked, ready to send (and to re-send on retry)


@dataclass(frozen=True, slots=True)
class Reply:
    """What A2E answered, before the envelope is read: status, parsed JSON (None if not JSON)."""

    status: int
    body: Any
    retry_after: float | None


class Transport:
    """A pooled HTTP client bound to one A2E base URL and key.

    Args:
        http: an injected pool (tests, or sharing one); created (and closed by :meth:`aclose`) when None.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 15.0, http: HttpPool | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or pooled_client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30),
        )
        self._headers = {"Accept": "application/json"}
        if api_key.strip():  # "Bearer " alone is an illegal header: send none, and A2E answers 401
            self._headers["Authorization"] = f"Bearer {api_key.strip()}"
        self._json_headers = {**self._headers, "Content-Type": "application/json"}

    def __repr__(self) -> str:  # the key must not leak through a repr in a log line
        return f"Transport(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def prepare(self, operation: str, method: str, path: str, *, allowed: re.Pattern[str],
                query: dict[str, Any] | None = None, json_body: bytes | None = None) -> Prepared:
        """The request for ``path``, refused (:class:`A2EInvalidInput`, nothing sent) unless its final
        URL is the base URL plus a path that ``allowed`` (the row's template) matches in full."""
        checked = _checked_url(self.base_url, path, allowed)
        if isinstance(checked, str):
            raise A2EInvalidInput(checked, operation=operation)
        try:  # the query does not change what was checked (origin, path, fragment)
            return self._http.build_request(method, checked, params=query, content=json_body,
                                            headers=self._headers if json_body is None else self._json_headers)
        except httpx.InvalidURL as exc:
            raise A2EInvalidInput(f"cannot make a URL: {exc}", operation=operation) from None

    async def send(self, operation: str, request: Prepared, *, written: Callable[[], None] | None = None) -> Reply:
        """Send; transport failures become :class:`A2EUnavailable`/:class:`A2ETimeout`, with
        ``request_sent=False`` when A2E cannot have seen the request (safe to retry). ``written`` is
        called once the request is on the wire, while A2E works on it (see :class:`_Announced`)."""
        if written is not None:
            request.stream = _Announced(request.content, written)
        try:
            response = await self._http.send(request)
        except httpx.ConnectError as exc:
            raise A2EUnavailable(f"cannot connect to A2E: {type(exc).__name__}", operation=operation,
                                 request_sent=False) from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):  # no connection: nothing was written
            raise A2ETimeout("timed out connecting to A2E", operation=operation, request_sent=False) from None
        except httpx.TimeoutException as exc:
            raise A2ETimeout(f"A2E did not answer in time ({type(exc).__name__})", operation=operation) from None
        except httpx.TransportError as exc:
            raise A2EUnavailable(f"connection to A2E failed: {type(exc).__name__}", operation=operation) from None
        # The body is read (send() reads it): drop the stream, which points back at the response. Left
        # in place, that cycle (the response, its request, headers, streams: ~60 objects) waits for the
        # garbage collector after every call instead of being freed here.
        response.stream = _READ
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        return Reply(response.status_code, body, _retry_after(response))


_READ = httpx.ByteStream(b"")  # in place of a response's stream once its body is read


class _Announced(httpx.AsyncByteStream):
    """A request body that says when it is on the wire: httpcore writes each chunk it takes from the
    stream before it asks for the next, so the code after the one ``yield`` runs once the body is
    written. Rather than httpcore's ``trace`` extension, which awaits the hook at the start and end
    of every phase of every request (a dozen coroutine calls per speak, issue 12)."""

    def __init__(self, body: bytes, written: Callable[[], None]) -> None:
        self._body, self._written = body, written

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body
        self._written()


@functools.lru_cache(maxsize=1024)
def _checked_url(base_url: str, path: str, allowed: re.Pattern[str]) -> httpx.URL | str:
    """The URL of ``path`` under ``base_url`` if it is exactly that (same origin, a path ``allowed``
    matches in full, no fragment), else why not. Cached: parsing and checking a URL cost more than
    the rest of a call's preparation, and most calls go to the same few paths."""
    base = httpx.URL(base_url)
    try:
        url = httpx.URL(base_url + path)
    except httpx.InvalidURL as exc:
        return f"cannot make a URL: {exc}"
    prefix = base.raw_path.split(b"?", 1)[0].rstrip(b"/")
    raw_path = url.raw_path.split(b"?", 1)[0]
    same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    fits = raw_path.startswith(prefix) and allowed.fullmatch(raw_path[len(prefix):].decode("ascii"))
    if not (same_origin and fits) or url.fragment:
        return f"refusing to send to {raw_path.decode('ascii', 'replace')!r}: not a path of {allowed.pattern}"
    return url


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
