"""Logging for the service: one configuration for our loggers and uvicorn's, as text or as one JSON
object a line (``BRIDGE_LOG_FORMAT``), and a filter that keeps secrets out of every log line:
websocket tickets and keys in URLs, bearer keys, and the value of every credential header whatever
its scheme, in the shapes libraries log them at DEBUG: ``Authorization: Basic x`` (websockets/uvicorn
handshake lines), ``'authorization': 'Token x'`` (dict reprs), ``(b'authorization', b'Basic x')``
(httpcore/h11/ASGI header lists).

What a line is about (``request_id``, ``tenant``, ``room_id``, ``channel``) lives in a context
variable: the edges and the room code :func:`bind` it, and every record logged in that context,
uvicorn's access lines included, carries it. Other fields come with the record (``extra=``).
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

# Regular expressions, not a library: no logging library knows these shapes of our dependencies.
_SECRETS = re.compile(r"((?:ticket|ws_ticket|token|api_key|key)=)[^&\s\"']+|(Bearer\s+)(?!<redacted>)[^\s\"']+",
                      re.IGNORECASE)
_CREDENTIAL_HEADERS = r"(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|api-key|x-auth-token|x-a2e-webhook-token"
# 'authorization': 'Token x'   "cookie": "a=b"   (b'authorization', b'Basic x')
_QUOTED_HEADER = re.compile(rf"""(?P<head>b?(['"])(?P<name>{_CREDENTIAL_HEADERS})\2\s*[:,]\s*b?(['"]))"""
                            r"""(?P<value>(?:\\.|(?!\4).)*)""", re.IGNORECASE)
# Authorization: Basic x   < cookie: a=b   (the value runs to the end of the line or a quote)
_HEADER_LINE = re.compile(rf"""(?P<head>(?<![\w-])(?P<name>{_CREDENTIAL_HEADERS})\s*:[ \t]*)(?P<value>[^\r\n"']+)""",
                          re.IGNORECASE)
# "token": "007…"   'ws_ticket': '…'   (JSON bodies and dict reprs: A2E replies logged at DEBUG)
_QUOTED_SECRET = re.compile(r"""(?P<head>(['"])(?:token|ws_ticket|ticket|api_key|secret|password)\2\s*:\s*(['"]))"""
                            r"""(?P<value>(?:\\.|(?!\3).)*)""", re.IGNORECASE)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._~+-]*\s+(?=\S)")  # "Basic ", "Bearer ", "Token ": not secret


def _redact_header(m: re.Match[str]) -> str:
    scheme = _SCHEME.match(m["value"]) if m["name"].lower().endswith("authorization") else None
    return m["head"] + (scheme.group() if scheme else "") + "<redacted>"


# Every pattern above needs one of these words: a text without any has nothing to redact (one search
# instead of four substitutions; most strings of most lines are such).
_MAYBE_SECRET = re.compile(r"token|ticket|key|secret|password|authorization|cookie|bearer", re.IGNORECASE)


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    text = _QUOTED_SECRET.sub(lambda m: m["head"] + "<redacted>", text)
    text = _QUOTED_HEADER.sub(_redact_header, text)
    text = _HEADER_LINE.sub(_redact_header, text)
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "<redacted>", text)


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if arg is None or isinstance(arg, (int, float)):
        return arg
    shown = str(arg)  # a dict, list or object whose text holds a secret is replaced by its redacted text
    clean = redact(shown)
    return arg if clean == shown else clean


class RedactSecrets(logging.Filter):
    """Rewrites the arguments one by one (uvicorn's access formatter reads the args), then, if the
    whole message still holds a secret (a header name and its value in separate arguments, as
    websockets logs them), replaces the message by its redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it when formatting
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class ClientFaultsAsInfo(logging.Filter):
    """uvicorn logs a websocket client's invalid UTF-8 text frame as an ERROR with a traceback (its
    decode is in ``websockets_sansio_impl``) and then closes the connection with 1007, as RFC 6455
    says: the client's fault, handled, so one INFO line without the traceback is what it is worth."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UnicodeDecodeError) and "Invalid UTF-8" in str(record.msg):
            record.msg, record.args = f"a websocket client sent invalid UTF-8 in a text frame (closed 1007): {exc}", None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the finished line too, tracebacks included (the filter cannot reach those)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# -- what a line is about ----------------------------------------------------------------------------
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("bridge_log_context",
                                                                             default=MappingProxyType({}))


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` to what this task (and the tasks it starts) logs from now on; None leaves a
    field out. The token resets it (:func:`reset`)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def start_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Like :func:`bind`, but forgetting what the task inherited (a room's own tasks must not carry
    the request that happened to start them)."""
    return _context.set({k: v for k, v in fields.items() if v is not None})


def reset(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


def context() -> dict[str, Any]:
    return dict(_context.get())


class ContextFields(logging.Filter):
    """Puts the bound context on every record (a field passed with ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# -- JSON lines -----------------------------------------------------------------------------------------
_DROPPED = {"color_message"}  # uvicorn's copy of the message with terminal colours


_SECRET_FIELDS = re.compile(r"token|ws_ticket|ticket|api_key|secret|password|(proxy-)?authorization|cookie",
                            re.IGNORECASE)


def _redact_value(value: Any, name: str = "") -> Any:
    """A field's value with its secrets redacted; the whole value of a field named like a secret."""
    if _SECRET_FIELDS.fullmatch(name) and value is not None:
        return "<redacted>"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _redact_value(v, str(k)) for k, v in value.items()}
    return value


class JsonLines(JsonFormatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the
    context and the record's own fields; every string value redacted like the text lines
    (python-json-logger does the record-to-object work)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"}, json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args  # uvicorn's access line, its args already redacted
            log_data.update(client=client, method=method, path=path, status=status)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: _redact_value(v, k) for k, v in log_data.items() if k not in _DROPPED and v is not None}


def log_format(configured: str | None, stream: IO[str] | None = None) -> str:
    """``BRIDGE_LOG_FORMAT``, or by default ``json`` unless the log goes to a terminal."""
    if configured:
        return configured
    stream = stream or sys.stderr
    return "text" if stream.isatty() else "json"


def log_config(level: str, fmt: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the bridge and uvicorn (pass it to uvicorn as log_config)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}, "context": {"()": ContextFields},
                    "client_faults": {"()": ClientFaultsAsInfo}},
        "formatters": {"text": {"()": RedactingFormatter,
                                "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
                       "json": {"()": JsonLines}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": log_format(fmt), "filters": ["redact", "context"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level, "filters": ["client_faults"]},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            "httpx": {"level": "WARNING"},  # its request lines repeat what bridge.a2e logs
        },
    }


def configure_logging(level: str, fmt: str | None = None) -> None:
    logging.config.dictConfig(log_config(level, fmt))
