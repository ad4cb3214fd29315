"""One A2E operation: the type of a row of the table in :mod:`bridge.a2e.endpoints`, with the shape
of its path parameters and the one way its path is filled.

A2E's ids are MongoDB ObjectIds: 24 hex digits (see the notes). Every path parameter must have a
shape here; a value outside it never reaches a URL (no "../", no "/", no "%2F", no CR/LF).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote

from .errors import A2EInvalidInput

__all__ = ["OBJECT_ID", "PATH_PARAM_SHAPES", "Certainty", "Endpoint", "Method"]

Method = Literal["GET", "POST", "PUT", "DELETE"]

_PATH_PARAM = re.compile(r"{(\w+)}")

OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
PATH_PARAM_SHAPES: dict[str, re.Pattern[str]] = {"_id": OBJECT_ID}
_SHAPE_NAMES = {"_id": "a 24-hex-digit A2E id"}


def _shown(name: object) -> str:
    """A caller-chosen name, quoted and cut short, for an error message."""
    text = repr(name)
    return text if len(text) <= 66 else text[:60] + "…" + text[-5:]


class Certainty(str, Enum):
    """How sure we are of a row's method, path and body."""

    DOCUMENTED = "documented"
    CODE = "seen in code"
    GUESSED = "guessed"


@dataclass(frozen=True)
class Endpoint:
    """One A2E operation.

    ``required`` and ``optional`` map body/query field names to their JSON type ("str", "int",
    "number", "bool", "list", "dict", "any"); together with the path parameters they are every
    field the operation takes (:meth:`check_params`; the pass-through refuses any other). The
    simulator enforces ``required`` and the CLI shows it. ``retry_safe`` says whether re-sending
    the request after a failure that may have reached A2E can do no harm (reads, ``leave``).
    ``status_op`` names the operation that reports progress of the task this one creates.
    ``limits`` maps text fields to the most characters A2E accepts in them.
    """

    name: str
    group: str
    method: Method
    path: str
    certainty: Certainty
    summary: str
    retry_safe: bool = False
    required: dict[str, str] = field(default_factory=dict)
    status_op: str | None = None
    deprecated: bool = False
    optional: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    # offered through the bridge's /v1/a2e pass-through; rooms and account tokens never are (rooms are
    # tracked and always left by /v1/rooms; tokens would hand out the account)
    passthrough: bool = True
    # other methods A2E answers on the same path (newer documents and public callers use them; the
    # client sends ``method``, the simulator answers all of them: a GET's fields in the query string)
    also: tuple[Method, ...] = ()
    # A2E's rules beyond a field's type, as JSON-schema keywords ("pattern", "minimum"); the bridge's
    # pass-through enforces them and documents them in /openapi.json, the simulator refuses like A2E
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    one_of: tuple[tuple[str, ...], ...] = ()  # each group: at least one of these fields
    exclusive: tuple[tuple[str, ...], ...] = ()  # each group: not all of these fields together

    @property
    def methods(self) -> tuple[Method, ...]:
        """Every method A2E answers on this path, ``method`` first."""
        return (self.method, *self.also)

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def deletes(self) -> bool:
        """Removes a record: once it is gone, "not found" on a resend means the first attempt worked."""
        return self.method == "DELETE" or self.name.endswith(("_delete", "_remove"))

    @property
    def creates_task(self) -> bool:
        return self.status_op is not None

    @property
    def fields(self) -> frozenset[str]:
        """Every field this operation takes: path parameters, required and optional fields."""
        return frozenset((*self.path_params, *self.required, *self.optional))

    @cached_property
    def path_pattern(self) -> re.Pattern[str]:
        """The paths this row may produce: its template with each parameter in its shape."""
        parts = _PATH_PARAM.split(self.path)  # literal, name, literal, name, ..., literal
        return re.compile("".join(re.escape(part) if i % 2 == 0 else PATH_PARAM_SHAPES[part].pattern
                                  for i, part in enumerate(parts)))

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Refuse a bad path parameter, then a field this operation does not take
        (:class:`A2EInvalidInput` naming it). The client always checks the path; this is for
        callers that must not pass anything the table does not list (the pass-through)."""
        self.render_path(params)
        for name in params:
            if name not in self.fields:
                accepted = ", ".join(sorted(self.fields)) or "none"
                raise A2EInvalidInput(f"takes no field {_shown(name)} (it takes: {accepted})",
                                      field=str(name), operation=self.name)

    def render_path(self, params: Mapping[str, Any]) -> str:
        """The path with its parameters filled from ``params``: each checked against its shape,
        then percent-encoded. Raises :class:`A2EInvalidInput` naming a missing or bad parameter."""
        values: dict[str, str] = {}
        for name in self.path_params:
            value = params.get(name)
            if value is None or value == "":
                raise A2EInvalidInput(f"needs {name} (a path parameter)", field=name,
                                      operation=self.name)
            if not isinstance(value, str) or not PATH_PARAM_SHAPES[name].fullmatch(value):
                raise A2EInvalidInput(f"{name} must be {_SHAPE_NAMES[name]}, not {_shown(value)}",
                                      field=name, operation=self.name)
            values[name] = quote(value, safe="")
        path = _PATH_PARAM.sub(lambda m: values[m.group(1)], self.path)
        if not self.path_pattern.fullmatch(path):  # cannot happen with the shapes above; kept as the invariant
            raise A2EInvalidInput(f"the path does not fit its template {self.path}",
                                  operation=self.name)
        return path
