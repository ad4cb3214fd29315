"""The simulator's handler registry: one function per row of the endpoint table.

Each handler takes the state and the merged request params (path, query and JSON body) and returns
the envelope's ``data``, or raises :class:`SimError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .state import SimError, SimState

Params = dict[str, Any]
Handler = Callable[[SimState, Params], Any]

HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


def page(records: list[dict[str, Any]], p: Params, page_key: str = "pageNum") -> dict[str, Any]:
    """A2E's paginated shape: ``{rows, count}``, 1-based pages of at most 100."""
    try:
        number = max(1, int(p.get(page_key) or p.get("current") or 1))
        size = min(100, max(1, int(p.get("pageSize") or 10)))
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 parses as an infinite float
        raise SimError(400, "pageNum and pageSize must be integers", http_status=400) from None
    return {"rows": records[(number - 1) * size: number * size], "count": len(records)}
