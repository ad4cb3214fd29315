"""The bridge's one error tree; every error a client sees is one of these.

    BridgeError                 status, code, message, headers
     ├── BadRequest             400 bad_request
     ├── ValidationFailed       422 invalid_input (with details)
     ├── Unauthorized           401 unauthorized
     ├── Forbidden              403 forbidden (authenticated, but not allowed this action)
     │    └── OriginNotAllowed  403 origin_not_allowed (a browser page on an origin not listed)
     ├── NotFound               404 not_found (also for another tenant's room)
     ├── RoomNotOpen            409 room_not_open
     ├── RoomMoved              503 room_moved (many instances: the room changed owner; not carried out, retry)
     ├── Flushed                409 flushed (a pending command dropped by flush)
     ├── Cancelled              409 cancelled (a queued utterance or a stream cancelled by a client)
     ├── NotCancellable         409 not_cancellable (A2E has it already)
     ├── PayloadTooLarge        413 payload_too_large (request body over the configured limit)
     ├── CapExceeded            429 cap_exceeded (names the cap)
     ├── QueueFull              429 queue_full
     ├── UpstreamError          502 upstream_error (A2E failed), upstream_auth (the bridge's key refused)
     ├── UpstreamBusy           503 no_avatar_host / upstream_unavailable / upstream_rate_limited, Retry-After
     ├── OutcomeUnknown         504 outcome_unknown (sent to A2E, no answer: maybe carried out, not resent)
     ├── BrainFailed            502 brain_error (the room's brain failed or sent something unreadable)
     ├── BrainTimeout           504 brain_timeout (the room's brain was too slow)
     ├── TooManyConnections     503 too_many_connections (past BRIDGE_MAX_CONNECTIONS)
     └── StoreUnavailable       503 store_unavailable (the shared room store, Redis, cannot be reached), Retry-After

HTTP answers them as ``{"error": {"code": ..., "message": ...}}``; the websocket relay sends them
as ``error`` frames with the same code and message (both built in :mod:`bridge.frames`, whose
``ErrorCode`` is the one list of codes). :func:`from_a2e` is the one translation of A2E client errors.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.a2e import errors as a2e
from bridge.a2e.endpoints import ENDPOINTS
from bridge.frames import ErrorCode


class BridgeError(Exception):
    status = 500
    code = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None,
                 code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(BridgeError):
    status, code = 400, ErrorCode.BAD_REQUEST


class ValidationFailed(BridgeError):
    status, code = 422, ErrorCode.INVALID_INPUT


class Unauthorized(BridgeError):
    status, code = 401, ErrorCode.UNAUTHORIZED


class Forbidden(BridgeError):
    status, code = 403, ErrorCode.FORBIDDEN


class OriginNotAllowed(Forbidden):
    code = ErrorCode.ORIGIN_NOT_ALLOWED


class NotFound(BridgeError):
    status, code = 404, ErrorCode.NOT_FOUND


class RoomNotOpen(BridgeError):
    status, code = 409, ErrorCode.ROOM_NOT_OPEN


class RoomMoved(BridgeError):
    """Many instances: the room's owner changed (or could not be reached) before the command was
    acknowledged; it was not carried out. Retry (after reconnecting)."""

    status, code = 503, ErrorCode.ROOM_MOVED


class Flushed(BridgeError):
    status, code = 409, ErrorCode.FLUSHED


class Cancelled(BridgeError):
    status, code = 409, ErrorCode.CANCELLED


class NotCancellable(BridgeError):
    status, code = 409, ErrorCode.NOT_CANCELLABLE


class PayloadTooLarge(BridgeError):
    status, code = 413, ErrorCode.PAYLOAD_TOO_LARGE


class CapExceeded(BridgeError):
    status, code = 429, ErrorCode.CAP_EXCEEDED

    def __init__(self, cap: str, message: str) -> None:
        super().__init__(message, details={"cap": cap})
        self.cap = cap


class QueueFull(BridgeError):
    status, code = 429, ErrorCode.QUEUE_FULL


class UpstreamError(BridgeError):
    status, code = 502, ErrorCode.UPSTREAM_ERROR


class UpstreamBusy(BridgeError):
    status, code = 503, ErrorCode.UPSTREAM_UNAVAILABLE


class OutcomeUnknown(BridgeError):
    status, code = 504, ErrorCode.OUTCOME_UNKNOWN


class BrainFailed(BridgeError):
    status, code = 502, ErrorCode.BRAIN_ERROR


class BrainTimeout(BridgeError):
    status, code = 504, ErrorCode.BRAIN_TIMEOUT


class TooManyConnections(BridgeError):
    status, code = 503, ErrorCode.TOO_MANY_CONNECTIONS


class StoreUnavailable(BridgeError):
    """The room store cannot answer (Redis down or restarting): nothing was changed, retry shortly."""

    status, code = 503, ErrorCode.STORE_UNAVAILABLE

    def __init__(self, message: str = "the room store (Redis) cannot be reached; retry shortly") -> None:
        super().__init__(message, headers={"Retry-After": "1"})


RETRY_AFTER_BUSY = 10


def _named_field(exc: a2e.A2EError) -> str | None:
    """The field of the operation that A2E's message names ("text is required"), if one does."""
    row = ENDPOINTS.get(exc.operation or "")
    for name in (*row.path_params, *row.required, *row.optional) if row else ():
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", exc.msg):
            return name
    if row and isinstance(exc, a2e.A2ENotFound) and "_id" in row.fields:
        return "_id"  # the record the operation names
    return None


def from_a2e(exc: a2e.A2EError) -> BridgeError:
    """What a client is told when A2E fails; never includes the A2E key.

    A2E's refusal of the input (a bad request, an unknown record) is the caller's: 422 / 404 naming
    the field where A2E's message names one. A non-repeatable call that got no answer is
    ``outcome_unknown``: it was not sent again, and it may or may not have been carried out.
    """
    if isinstance(exc, a2e.A2EInvalidInput):  # refused by our own client: nothing reached A2E
        details_ = [{"loc": [exc.field], "msg": exc.msg}] if exc.field else None  # the shape of schema errors
        return ValidationFailed(exc.msg, details=details_)
    details = {"a2e_code": exc.code, "trace_id": exc.trace_id}
    row = ENDPOINTS.get(exc.operation or "")
    if exc.outcome_unknown and row is not None and not row.retry_safe:
        return OutcomeUnknown(f"A2E did not answer {row.name} ({exc.msg}): it may or may not have been carried out, "
                              "and the bridge did not send it again; check before repeating it", details=details)
    if isinstance(exc, a2e.A2ECapacityBusy):
        return UpstreamBusy("no avatar host free, retry later", code=ErrorCode.NO_AVATAR_HOST, details=details,
                            headers={"Retry-After": str(RETRY_AFTER_BUSY)})
    if isinstance(exc, a2e.A2ERateLimited):
        retry = str(int(exc.retry_after or RETRY_AFTER_BUSY))
        return UpstreamBusy("A2E rate limit reached, retry later", code=ErrorCode.UPSTREAM_RATE_LIMITED,
                            details=details, headers={"Retry-After": retry})
    if isinstance(exc, a2e.A2EUnavailable):
        return UpstreamBusy(f"A2E is unavailable: {exc.msg}", details=details, headers={"Retry-After": "5"})
    if isinstance(exc, a2e.A2EInsufficientCredits):
        what = "this room" if exc.operation == "agora_token" else exc.operation or "this"
        return CapExceeded("balance", f"the A2E account has too few credits for {what}: {exc.msg}")
    if isinstance(exc, a2e.A2EAuthError):
        return UpstreamError("the bridge's A2E key was refused; the operator must fix A2E_API_KEY",
                             code=ErrorCode.UPSTREAM_AUTH, details=details)
    if isinstance(exc, a2e.A2EBadRequest):
        field = _named_field(exc)
        refusal = [{"loc": [field] if field else [], "msg": exc.msg, **details}]
        if isinstance(exc, a2e.A2ENotFound):
            return NotFound(f"A2E has no such record: {exc.msg}", details=refusal)
        return ValidationFailed(f"A2E refused the input: {exc.msg}", details=refusal)
    return UpstreamError(f"A2E refused the request: {exc.msg}", details=details)
