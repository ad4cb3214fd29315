"""Logging for the service: one configuration for our loggers and uvicorn's, and a filter that
keeps secrets (websocket tickets in URLs, bearer keys) out of every log line."""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

_SECRETS = re.compile(r"((?:ticket|ws_ticket|token|api_key|key)=)[^&\s\"']+|(Bearer\s+)\S+", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "<redacted>", text)


class RedactSecrets(logging.Filter):
    """Rewrites the message and its string arguments (uvicorn's access formatter reads the args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the bridge and uvicorn (pass it to uvicorn as log_config)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "plain", "filters": ["redact"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            "httpx": {"level": "WARNING"},  # its request lines repeat what bridge.a2e logs
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))
