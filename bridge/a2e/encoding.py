"""What a request to A2E may carry: query values and strict JSON bodies, refused by name
(:class:`A2EInvalidInput`, nothing sent) when they cannot be sent as they are."""

from __future__ import annotations

import json
from typing import Any

from .endpoints import Endpoint
from .errors import A2EInvalidInput


def query_value(row: Endpoint, name: str, value: Any) -> Any:
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


def json_body(row: Endpoint, fields: dict[str, Any]) -> bytes:
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
