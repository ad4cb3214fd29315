"""The shared async client for A2E's REST API.

One instance per process (built by :meth:`A2EClient.from_settings`) holds one pooled
:class:`~.transport.Transport`; every call goes through :meth:`A2EClient.call` with an operation
name from the endpoint table. :meth:`A2EClient._prepare` is the one place a request to A2E is made:
path parameters checked and encoded, the body encoded as strict JSON, and the transport checks the
final URL against the row's template. What fails there raises :class:`A2EInvalidInput` and is
never sent. Retries (tenacity) and the envelope check live here; HTTP lives in ``transport.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from .encoding import json_body, query_value
from .endpoints import Endpoint, endpoint
from .errors import (
    A2EError,
    A2EInvalidInput,
    A2ENotFound,
    A2ERateLimited,
    A2EUnavailable,
    error_from_reply,
)
from .tasks import TaskStatus, wait_for
from .transport import HttpPool, Prepared, Transport

__all__ = ["A2EClient", "DEFAULT_BASE_URL", "CHINA_BASE_URL"]

DEFAULT_BASE_URL = "https://video.a2e.ai"
CHINA_BASE_URL = "https://video.a2e.com.cn"

log = logging.getLogger("bridge.a2e")


def _retryable(row: Endpoint, backoff_max: float, exc: BaseException) -> bool:
    """Retry transient failures of safe operations, and anything that never reached A2E.

    A rate limit whose Retry-After is longer than one backoff may wait is not retried: the caller
    gets the A2ERateLimited (with ``retry_after``) at once rather than after hammering A2E.
    """
    if not isinstance(exc, A2EError) or isinstance(exc, A2EInvalidInput):
        return False
    if not exc.request_sent:
        return True
    if isinstance(exc, A2ERateLimited) and exc.retry_after is not None and exc.retry_after > backoff_max:
        return False
    return row.retry_safe and isinstance(exc, (A2EUnavailable, A2ERateLimited))


def _wait(backoff_max: float) -> Callable[[RetryCallState], float]:
    """Jittered exponential backoff, but never shorter than the Retry-After A2E asked for."""
    jitter = wait_random_exponential(multiplier=0.1, max=backoff_max)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, A2ERateLimited) else None
        return max(jitter(state), retry_after or 0.0)

    return wait


class SecretLike(Protocol):
    def get_secret_value(self) -> str: ...


class A2ESettings(Protocol):
    """What :meth:`A2EClient.from_settings` reads (the bridge's Settings has these fields)."""

    @property
    def a2e_api_key(self) -> SecretLike | None: ...
    @property
    def a2e_base_url(self) -> str: ...
    @property
    def a2e_timeout(self) -> float: ...
    @property
    def a2e_max_attempts(self) -> int: ...


CallHook = Callable[[str, str, float], None]
"""Called after every call with (operation, outcome, seconds): outcome is ``ok`` or the error's
class name. The bridge records its metrics with it; the client itself knows no metrics library."""


class A2EClient:
    """Calls A2E operations by name and returns the envelope's ``data``.

    Args:
        api_key: the bearer key; kept in the transport's headers, never logged or raised.
        base_url: ``https://video.a2e.ai`` (global) or ``https://video.a2e.com.cn`` (China).
        http: an injected connection pool (tests, or sharing one); created when None.
        max_attempts: tries per call for retryable failures.
        backoff_max: upper bound in seconds of one jittered backoff wait.
        on_call: a :data:`CallHook` (metrics).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: HttpPool | None = None,
        timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_max: float = 2.0,
        on_call: CallHook | None = None,
    ) -> None:
        self.transport = Transport(base_url, api_key, timeout=timeout, http=http)
        self.base_url = self.transport.base_url
        self.max_attempts = max_attempts
        self.backoff_max = backoff_max
        self.on_call = on_call

    @classmethod
    def from_settings(cls, settings: A2ESettings, *, api_key: str | None = None, base_url: str | None = None,
                      on_call: CallHook | None = None) -> A2EClient:
        """The client the settings describe; ``api_key``/``base_url`` override them (the embedded
        simulator's per-process key, the CLI's ``--base-url``)."""
        if api_key is None:
            secret = settings.a2e_api_key
            api_key = secret.get_secret_value() if secret is not None else ""
        return cls(api_key, base_url or settings.a2e_base_url, timeout=settings.a2e_timeout,
                   max_attempts=settings.a2e_max_attempts, on_call=on_call)

    def __repr__(self) -> str:  # the key must not leak through a repr in a log line
        return f"A2EClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self.transport.aclose()

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

    async def call_envelope(self, operation: str, params: dict[str, Any] | None = None, *,
                            written: Callable[[], None] | None = None, **fields: Any) -> dict[str, Any]:
        """Like :meth:`call` but returns the whole envelope (``code``, ``data``, ``trace_id``).
        ``written``: called when a request of this call is on the wire (each attempt's)."""
        row = endpoint(operation)
        if row.deprecated:
            log.warning("A2E operation %s is deprecated upstream", operation)
        request = self._prepare(row, {**(params or {}), **fields})
        started = time.perf_counter()
        outcome, failure = "ok", None
        seen: dict[str, Any] = {}
        unanswered = False  # an earlier attempt was sent and got no answer: it may have been carried out

        async def attempt() -> dict[str, Any]:
            nonlocal unanswered
            try:
                status, envelope = await self._send(row, request, written)
            except A2ENotFound:
                if unanswered and row.deletes:
                    # the unanswered attempt deleted it: that is the outcome the caller asked for
                    log.info("A2E %s: the unanswered attempt was carried out (the record is gone)", row.name)
                    return {"code": 0, "data": {}, "trace_id": None}
                raise
            except A2EError as exc:
                unanswered = unanswered or exc.outcome_unknown
                raise
            seen.update(status=status, code=envelope.get("code"), trace_id=envelope.get("trace_id"))
            return envelope

        try:
            # The first attempt without the retry machinery (building and stepping it cost about as
            # much as the rest of a call's own work); tenacity takes over from its failure, which it
            # sees as its own first attempt's: same waits, same log lines, same number of attempts.
            try:
                return await attempt()
            except A2EError as exc:
                first: A2EError | None = exc
                if self.max_attempts <= 1 or not _retryable(row, self.backoff_max, exc):
                    raise
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=_wait(self.backoff_max),
                retry=retry_if_exception(lambda e: _retryable(row, self.backoff_max, e)),
                before_sleep=self._log_retry,
                reraise=True,
            )
            async for tried in retrying:
                with tried:
                    if first is not None:
                        failed, first = first, None
                        raise failed
                    return await attempt()
        except A2EError as exc:
            outcome, failure = type(exc).__name__, exc
            seen = {"status": exc.status, "code": exc.code, "trace_id": exc.trace_id}
            raise
        finally:
            seconds = time.perf_counter() - started
            if self.on_call is not None:
                self.on_call(operation, outcome, seconds)
            # Standard logging only (this package stands alone); the operator's log setup adds the context.
            if log.isEnabledFor(logging.INFO):
                what = f"failed: {failure} ({outcome})" if failure is not None else outcome
                log.info("A2E %s %s in %.0f ms", operation, what, seconds * 1000,
                         extra={"operation": operation, "outcome": outcome, "latency_ms": round(seconds * 1000, 1),
                                **{k: v for k, v in seen.items() if isinstance(v, (str, int))}})
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying A2E call (attempt %d, again in %.2fs): %s", state.attempt_number,
                    state.upcoming_sleep, exc)

    def _prepare(self, row: Endpoint, params: dict[str, Any]) -> Prepared:
        """The request for ``row``; :class:`A2EInvalidInput` if it would not be exactly that row's."""
        path = row.render_path(params)  # shapes checked, percent-encoded
        rest = {k: v for k, v in params.items() if k not in row.path_params}
        query: dict[str, Any] | None = None
        body: bytes | None = None
        if row.method == "GET":
            query = {k: query_value(row, k, v) for k, v in rest.items() if v is not None}
        elif rest or row.method in ("POST", "PUT"):
            body = json_body(row, rest)
        return self.transport.prepare(row.name, row.method, path, allowed=row.path_pattern, query=query,
                                      json_body=body)

    async def _send(self, row: Endpoint, request: Prepared,
                    written: Callable[[], None] | None = None) -> tuple[int, dict[str, Any]]:
        """One attempt: (HTTP status, envelope), or the A2EError it comes to."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("A2E %s request: %s %s %s", row.name, request.method, request.url.path,
                      _shown(request.content), extra={"operation": row.name})
        reply = await self.transport.send(row.name, request, written=written)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("A2E %s reply: HTTP %d %s", row.name, reply.status, _shown(json.dumps(reply.body)),
                      extra={"operation": row.name, "status": reply.status})
        error = error_from_reply(status=reply.status, body=reply.body, operation=row.name,
                                 retry_after=reply.retry_after)
        if error is not None:
            raise error
        body: dict[str, Any] = reply.body
        return reply.status, body

    # -- streaming-avatar conveniences used by the bridge ------------------------------------
    async def streaming_avatars(self) -> list[dict[str, Any]]:
        data = await self.call("streaming_avatars")
        return data if isinstance(data, list) else []

    async def agora_token(self, avatar_id: str, expire_seconds: int) -> dict[str, Any]:
        data = await self.call("agora_token", avatar_id=avatar_id, expire_seconds=expire_seconds)
        return data if isinstance(data, dict) else {}

    async def set_qa_context(self, channel: str, text: str) -> Any:
        return await self.call("set_qa_context", channel=channel, text=text)

    async def ask(self, channel: str, text: str, *, written: Callable[[], None] | None = None) -> Any:
        return (await self.call_envelope("ask", channel=channel, text=text, written=written)).get("data")

    async def speak(self, channel: str, text: str, *, written: Callable[[], None] | None = None) -> Any:
        """``written``: see :meth:`call_envelope` (the bridge holds the sender's frames until then)."""
        return (await self.call_envelope("speak", channel=channel, text=text, written=written)).get("data")

    async def leave(self, channel: str) -> Any:
        return await self.call("leave", channel=channel)

    async def remaining_coins(self) -> dict[str, Any]:
        data = await self.call("remaining_coins")
        return data if isinstance(data, dict) else {}

    async def wait_for(self, operation: str, task_id: str, **kw: Any) -> TaskStatus:
        """Follow the task that ``operation`` created until it ends; see :func:`tasks.wait_for`."""
        return await wait_for(self, operation, task_id, **kw)


def _shown(body: bytes | str, most: int = 2000) -> str:
    """A body for a DEBUG line, cut at ``most`` characters (the log filter redacts secrets in it)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= most else text[:most] + f"... ({len(text)} characters)"
