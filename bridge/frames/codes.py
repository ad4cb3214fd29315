"""Websocket close codes and error codes: the one list of each (the clients are tested against them)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Websocket close codes (4000-4999 is the application range); a browser sees CloseEvent.code."""

    BAD_QUERY = 1008  # refused at the handshake: a bad query parameter (?events=); an error frame says which
    ROOM_CLOSED = 4000  # the room ended; a room_closed frame came first
    SLOW_CONSUMER = 4008  # the client did not read its events; its buffer overflowed
    ROOM_NOT_OPEN = 4009  # the room exists but is no longer open
    RECONNECT = 4012  # this instance stops serving the room (hand-over, lost lease): reconnect at once
    UNAUTHORIZED = 4401  # missing/bad key, bad or expired ticket
    NOT_FOUND = 4404  # no such room for this tenant
    FLOOD = 4429  # more frames than the rate limit allows
    CAP_EXCEEDED = 4429  # refused at the handshake: too many clients (reason "cap_exceeded: <cap> ...")


class ErrorCode(StrEnum):
    """Every ``code`` the bridge sends, in REST error bodies and websocket ``error`` frames."""

    BAD_REQUEST = "bad_request"
    INVALID_INPUT = "invalid_input"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"  # authenticated, but not allowed this action
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"  # a web page's Origin that the allowlist does not name
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"  # any other HTTP error of the routing layer
    ROOM_NOT_OPEN = "room_not_open"
    ROOM_MOVED = "room_moved"  # another instance serves the room now, or none could be reached: retry
    FLUSHED = "flushed"
    CANCELLED = "cancelled"  # a queued utterance (or a stream) cancelled by a client
    NOT_CANCELLABLE = "not_cancellable"  # already sent to A2E: it cannot be taken back
    BRAIN_ERROR = "brain_error"  # the room's brain failed or answered something unreadable
    BRAIN_TIMEOUT = "brain_timeout"  # the room's brain was too slow
    PAYLOAD_TOO_LARGE = "payload_too_large"
    CAP_EXCEEDED = "cap_exceeded"
    QUEUE_FULL = "queue_full"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    NO_AVATAR_HOST = "no_avatar_host"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    STORE_UNAVAILABLE = "store_unavailable"  # the room store (Redis) cannot be reached: retry shortly
    INTERNAL_ERROR = "internal_error"
    OUTCOME_UNKNOWN = "outcome_unknown"  # sent to A2E, no answer: it may or may not have been carried out
    # frames the websocket cannot act on (the connection stays open)
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    INVALID_TEXT = "invalid_text"
    FRAME_TOO_LARGE = "frame_too_large"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
