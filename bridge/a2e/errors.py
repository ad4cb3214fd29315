"""The A2E client's one error tree, and the mapping from A2E's replies to it.

    A2EError                     code, msg, trace_id, status, operation
     ├── A2EAuthError            HTTP 401/403 or body code 401/403: missing or invalid key
     ├── A2EBadRequest           HTTP 400 or another non-zero body code: A2E refused the input
     │    └── A2ENotFound        HTTP 404 or body code 404: unknown task, record or channel
     ├── A2EInsufficientCredits  not enough coins for the request
     ├── A2ECapacityBusy         body code 1001 "hosts are occupied": no streaming host free
     ├── A2ERateLimited          HTTP 429 or body code 429
     ├── A2EUnavailable          5xx, connection refused or dropped (``outcome_unknown`` when the
     │    │                      request was sent and no answer came back)
     │    └── A2ETimeout         no answer in time
     └── A2EInvalidInput         the client's own refusal, before anything is sent: a path parameter
          │                      that is missing or not an A2E id, a field the operation does not
          │                      take, a value JSON cannot carry (``field`` names the culprit)
          └── A2EUnknownOperation  no such operation in the endpoint table

Messages never contain the API key: the client never puts request headers into them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "A2EAuthError",
    "A2EBadRequest",
    "A2ECapacityBusy",
    "A2EError",
    "A2EInsufficientCredits",
    "A2EInvalidInput",
    "A2ENotFound",
    "A2ERateLimited",
    "A2ETimeout",
    "A2EUnavailable",
    "A2EUnknownOperation",
    "CODE_CAPACITY_BUSY",
    "CODE_INSUFFICIENT_CREDITS",
    "error_from_reply",
]

# Body codes. 1001 is seen in public code; A2E's code for a short balance is not documented, so the
# simulator answers 1002 and the client also recognises the wording (see _looks_like_no_credits).
CODE_CAPACITY_BUSY = 1001
CODE_INSUFFICIENT_CREDITS = 1002


class A2EError(Exception):
    """A failed A2E call, with what A2E said about it."""

    def __init__(
        self,
        msg: str,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        status: int | None = None,
        operation: str | None = None,
        request_sent: bool = True,
    ) -> None:
        self.msg = msg
        self.code = code
        self.trace_id = trace_id
        self.status = status
        self.operation = operation
        # False only when the request provably never reached A2E (connection refused): then even
        # a non-idempotent call may be sent again.
        self.request_sent = request_sent
        super().__init__(msg)

    @property
    def outcome_unknown(self) -> bool:
        """Sent, and no answer came back (a timeout, a dropped connection): A2E may or may not have
        carried the request out. Only a retry-safe operation may then be sent again."""
        return isinstance(self, A2EUnavailable) and self.request_sent and self.status is None

    def __str__(self) -> str:
        parts = [self.msg]
        if self.operation:
            parts.insert(0, f"{self.operation}:")
        if self.code is not None:
            parts.append(f"(code {self.code})")
        if self.status is not None:
            parts.append(f"[HTTP {self.status}]")
        if self.trace_id:
            parts.append(f"trace_id={self.trace_id}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "code": self.code,
            "msg": self.msg,
            "trace_id": self.trace_id,
            "status": self.status,
            "operation": self.operation,
        }


class A2EAuthError(A2EError):
    """The key is missing, wrong or revoked."""


class A2EBadRequest(A2EError):
    """A2E refused the request's content."""


class A2ENotFound(A2EBadRequest):
    """The task, record or channel does not exist (or no longer)."""


class A2EInsufficientCredits(A2EError):
    """The account cannot pay for this request."""


class A2ECapacityBusy(A2EError):
    """No avatar host is free right now; retry later."""


class A2ERateLimited(A2EError):
    """Too many requests; ``retry_after`` seconds when A2E said so."""

    def __init__(self, msg: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(msg, **kw)
        self.retry_after = retry_after


class A2EUnavailable(A2EError):
    """A2E could not be reached or failed on its side."""


class A2ETimeout(A2EUnavailable):
    """A2E did not answer in time; the request may or may not have been carried out."""


class A2EInvalidInput(A2EError, ValueError):
    """The client refused the parameters before sending anything (nothing reached A2E).

    Also a ValueError, which is what the client raised for a missing path parameter before."""

    def __init__(self, msg: str, *, field: str | None = None, **kw: Any) -> None:
        kw.setdefault("request_sent", False)
        super().__init__(msg, **kw)
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field}


class A2EUnknownOperation(A2EInvalidInput, KeyError):
    """No row of the endpoint table has that name (also a KeyError: it is a failed lookup)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return A2EError.__str__(self)


def _looks_like_no_credits(msg: str) -> bool:
    text = msg.lower()
    return any(w in text for w in ("insufficient", "not enough", "balance")) and any(
        w in text for w in ("coin", "credit", "balance", "diamond")
    )


def error_from_reply(
    *,
    status: int,
    body: Any,
    operation: str | None,
    retry_after: float | None = None,
) -> A2EError | None:
    """The error an A2E reply stands for, or None when it is a success.

    Both the HTTP status and the envelope's ``code`` count: A2E often answers HTTP 200 with a
    non-zero code.
    """
    envelope = body if isinstance(body, dict) else {}
    code = envelope.get("code")
    msg = str(envelope.get("msg") or envelope.get("message") or "")
    trace_id = envelope.get("trace_id")
    if 200 <= status < 300 and code in (0, 200) and isinstance(body, dict):
        return None
    kw: dict[str, Any] = {
        "code": code if isinstance(code, int) else None,
        "trace_id": trace_id if isinstance(trace_id, str) else None,
        "status": status,
        "operation": operation,
    }
    if status in (401, 403) or code in (401, 403):
        return A2EAuthError(msg or "A2E refused the API key", **kw)
    if status == 429 or code == 429:
        return A2ERateLimited(msg or "A2E rate limit reached", retry_after=retry_after, **kw)
    if code == CODE_CAPACITY_BUSY:
        return A2ECapacityBusy(msg or "hosts are occupied", **kw)
    if code == CODE_INSUFFICIENT_CREDITS or _looks_like_no_credits(msg):
        return A2EInsufficientCredits(msg or "insufficient credits", **kw)
    if status >= 500:
        return A2EUnavailable(msg or f"A2E answered HTTP {status}", **kw)
    if status == 404 or code == 404:
        return A2ENotFound(msg or "not found", **kw)
    if not isinstance(body, dict):
        return A2EUnavailable(f"A2E answered HTTP {status} without a JSON envelope", **kw)
    return A2EBadRequest(msg or f"A2E refused the request (code {code})", **kw)
