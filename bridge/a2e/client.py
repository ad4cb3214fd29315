"""The shared async client for A2E's REST API.

One instance per process wraps one pooled ``httpx.AsyncClient`` (keep-alive); every call goes
through :meth:`A2EClient.call` with an operation name from the endpoint table. httpx errors are
translated to :mod:`bridge.a2e.errors` here and nowhere else, and :meth:`A2EClient._build` is the
one place a request to A2E is made: path parameters checked and encoded, the final URL checked
against the row's template, the body encoded as strict JSON. What fails there raises
:class:`A2EInvalidInput` and is never sent.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bridge.metrics import A2E_REQUESTS, A2E_SECONDS

from .endpoints import Endpoint, endpoint
from .errors import (
    A2EError,
    A2EInvalidInput,
    A2ERateLimited,
    A2ETimeout,
    A2EUnavailable,
    error_from_reply,
)

__all__ = ["A2EClient", "DEFAULT_BASE_URL", "CHINA_BASE_URL"]

DEFAULT_BASE_URL = "https://video.a2e.ai"
CHINA_BASE_URL = "https://video.a2e.com.cn"

log = logging.getLogger("bridge.a2e")


def _should_retry(row: Endpoint, backoff_max: float):
    """Retry transient failures of safe operations, and anything that never reached A2E.

    A rate limit whose Retry-After is longer than one backoff may wait is not retried: the caller
    gets the A2ERateLimited (with ``retry_after``) at once rather than after hammering A2E.
    """

    def predicate(exc: BaseException) -> bool:
        if not isinstance(exc, A2EError) or isinstance(exc, A2EInvalidInput):
            return False
        if not exc.request_sent:
            return True
        if isinstance(exc, A2ERateLimited) and exc.retry_after is not None and exc.retry_after > backoff_max:
            return False
        return row.retry_safe and isinstance(exc, (A2EUnavailable, A2ERateLimited))

    return retry_if_exception(predicate)


def _wait(backoff_max: float):
    """Jittered exponential backoff, but never shorter than the Retry-After A2E asked for."""
    jitter = wait_random_exponential(multiplier=0.1, max=backoff_max)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, A2ERateLimited) else None
        return max(jitter(state), retry_after or 0.0)

    return wait


class A2EClient:
    """Calls A2E operations by name and returns the envelope's ``data``.

    Args:
        api_key: the bearer key; kept in the pooled client's headers, never logged or raised.
        base_url: ``https://video.a2e.ai`` (global) or ``https://video.a2e.com.cn`` (China).
        http: an injected ``httpx.AsyncClient`` (tests, or sharing a pool); created when None.
        max_attempts: tries per call for retryable failures.
        backoff_max: upper bound in seconds of one jittered backoff wait.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_max: float = 2.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30),
        )
        self._headers = {"Accept": "application/json"}
        if api_key.strip():  # "Bearer " alone is an illegal header: send none, and A2E answers 401
            self._headers["Authorization"] = f"Bearer {api_key.strip()}"
        self.max_attempts = max_attempts
        self.backoff_max = backoff_max

    def __repr__(self) -> str:  # the key must not leak through a repr in a log line
        return f"A2EClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> A2EClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, operation: str, params: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Call ``operation`` with ``params`` (and/or keyword fields); return ``data``.

        Path parameters are taken out of the params; the rest goes to the query string for GET
        and to the JSON body otherwise. Raises an :class:`A2EError` subclass on failure, and
        :class:`A2EInvalidInput` (nothing sent) for parameters that cannot make a safe request.
        """
        envelope = await self.call_envelope(operation, params, **fields)
        return envelope.get("data")

    async def call_envelope(self, operation: str, params: dict[str, Any] | None = None, **fields: Any) -> dict:
        """Like :meth:`call` but returns the whole envelope (``code``, ``data``, ``trace_id``)."""
        row = endpoint(operation)
        if row.deprecated:
            log.warning("A2E operation %s is deprecated upstream", operation)
        request = self._build(row, {**(params or {}), **fields})
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait(self.backoff_max),
            retry=_should_retry(row, self.backoff_max),
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.perf_counter()
        outcome = "ok"
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send(row, request)
        except A2EError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            A2E_REQUESTS.labels(operation, outcome).inc()
            A2E_SECONDS.labels(operation).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying A2E call (attempt %d, again in %.2fs): %s", state.attempt_number,
                    state.upcoming_sleep, exc)

    def _build(self, row: Endpoint, params: dict[str, Any]) -> httpx.Request:
        """The request for ``row``; :class:`A2EInvalidInput` if it would not be exactly that row's."""
        path = row.render_path(params)  # shapes checked, percent-encoded
        rest = {k: v for k, v in params.items() if k not in row.path_params}
        headers = dict(self._headers)
        query: dict[str, Any] | None = None
        content: bytes | None = None
        if row.method == "GET":
            query = {k: _query_value(row, k, v) for k, v in rest.items() if v is not None}
        elif rest or row.method in ("POST", "PUT"):
            content = _json_body(row, rest)
            headers["Content-Type"] = "application/json"
        try:
            request = self._http.build_request(row.method, self.base_url + path, params=query, content=content,
                                               headers=headers)
        except httpx.InvalidURL as exc:
            raise A2EInvalidInput(f"cannot make a URL: {exc}", operation=row.name) from None
        self._check_target(row, request.url)
        return request

    def _check_target(self, row: Endpoint, url: httpx.URL) -> None:
        """The URL about to be sent is the base URL plus a path of ``row``'s template, nothing else."""
        base = httpx.URL(self.base_url)
        prefix = base.raw_path.split(b"?", 1)[0].rstrip(b"/")
        raw_path = url.raw_path.split(b"?", 1)[0]
        same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
        fits = raw_path.startswith(prefix) and row.path_pattern.fullmatch(raw_path[len(prefix):].decode("ascii"))
        if not (same_origin and fits) or url.fragment:
            raise A2EInvalidInput(f"refusing to send to {raw_path.decode('ascii', 'replace')!r}: "
                                  f"not a path of {row.path}", operation=row.name)

    async def _send(self, row: Endpoint, request: httpx.Request) -> dict:
        try:
            response = await self._http.send(request)
        except httpx.ConnectError as exc:
            raise A2EUnavailable(f"cannot connect to A2E: {type(exc).__name__}", operation=row.name,
                                 request_sent=False) from None
        except httpx.ConnectTimeout:
            raise A2ETimeout("timed out connecting to A2E", operation=row.name, request_sent=False) from None
        except httpx.TimeoutException as exc:
            raise A2ETimeout(f"A2E did not answer in time ({type(exc).__name__})", operation=row.name) from None
        except httpx.TransportError as exc:
            raise A2EUnavailable(f"connection to A2E failed: {type(exc).__name__}", operation=row.name) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = error_from_reply(
            status=response.status_code,
            body=body,
            operation=row.name,
            retry_after=_retry_after(response),
        )
        if error is not None:
            log.info("A2E %s failed: %s", row.name, error)
            raise error
        return body

    # -- streaming-avatar conveniences used by the bridge ------------------------------------
    async def streaming_avatars(self) -> list[dict]:
        data = await self.call("streaming_avatars")
        return data if isinstance(data, list) else []

    async def agora_token(self, avatar_id: str, expire_seconds: int) -> dict:
        return await self.call("agora_token", avatar_id=avatar_id, expire_seconds=expire_seconds)

    async def set_qa_context(self, channel: str, text: str) -> Any:
        return await self.call("set_qa_context", channel=channel, text=text)

    async def ask(self, channel: str, text: str) -> Any:
        return await self.call("ask", channel=channel, text=text)

    async def speak(self, channel: str, text: str) -> Any:
        return await self.call("speak", channel=channel, text=text)

    async def leave(self, channel: str) -> Any:
        return await self.call("leave", channel=channel)

    async def remaining_coins(self) -> dict:
        data = await self.call("remaining_coins")
        return data if isinstance(data, dict) else {}

    async def wait_for(self, operation: str, task_id: str, **kw: Any) -> dict:
        """Follow the task that ``operation`` created until it ends; see :func:`tasks.wait_for`."""
        from .tasks import wait_for

        return await wait_for(self, operation, task_id, **kw)


def _query_value(row: Endpoint, name: str, value: Any) -> Any:
    """A query-string value: a string, a number or a boolean (httpx writes true/false), in valid Unicode."""
    if not isinstance(value, (str, int, float)):
        raise A2EInvalidInput(f"{name} must be a string or a number (it goes in the query string)",
                              field=name, operation=row.name)
    if isinstance(value, str) and not _is_unicode(value):
        raise A2EInvalidInput(f"{name} is not valid Unicode text", field=name, operation=row.name)
    return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800"
        return False
    return True


_JSON_ERRORS = (ValueError, TypeError, RecursionError)  # NaN/Infinity or a lone surrogate; not JSON; too deep


def _json_body(row: Endpoint, fields: dict[str, Any]) -> bytes:
    """Strict JSON, as httpx would encode it; a value JSON cannot carry is refused, by name."""

    def encode(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")

    try:
        return encode(fields)
    except _JSON_ERRORS:
        for name, value in fields.items():
            try:
                encode({name: value})
            except _JSON_ERRORS:
                raise A2EInvalidInput(f"{name} cannot be sent as JSON (NaN, Infinity, invalid Unicode or not JSON)",
                                      field=str(name), operation=row.name) from None
        raise A2EInvalidInput("the parameters cannot be sent as JSON", operation=row.name) from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
