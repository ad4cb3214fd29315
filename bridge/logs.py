"""Logging for the service: one configuration for our loggers and uvicorn's, and a filter that
keeps secrets out of every log line: websocket tickets and keys in URLs, bearer keys, and the value
of every credential header whatever its scheme, in the shapes libraries log them at DEBUG:
``Authorization: Basic x`` (websockets/uvicorn handshake lines), ``'authorization': 'Token x'``
(dict reprs), ``(b'authorization', b'Basic x')`` (httpcore/h11/ASGI header lists)."""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

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
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._~+-]*\s+(?=\S)")  # "Basic ", "Bearer ", "Token ": not secret


def _redact_header(m: re.Match[str]) -> str:
    scheme = _SCHEME.match(m["value"]) if m["name"].lower().endswith("authorization") else None
    return m["head"] + (scheme.group() if scheme else "") + "<redacted>"


def redact(text: str) -> str:
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


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the bridge and uvicorn (pass it to uvicorn as log_config)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}, "client_faults": {"()": ClientFaultsAsInfo}},
        "formatters": {"plain": {"()": RedactingFormatter,
                                 "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "plain", "filters": ["redact"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level, "filters": ["client_faults"]},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            "httpx": {"level": "WARNING"},  # its request lines repeat what bridge.a2e logs
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))
