"""``/v1/a2e/{operation}``: the rest of A2E's REST API for trusted tenants, through the shared client.

A2E's media records (videos, voices, tasks) belong to the whole account, not to a tenant, so this
is off unless the tenant is listed in ``BRIDGE_PASSTHROUGH_TENANTS`` (development mode allows it).
Streaming operations are excluded: rooms go through ``/v1/rooms``, which tracks and always leaves
them. The body is the flat JSON object of the operation's fields; a field the endpoint table does
not list for the operation is refused (422), and the shared client refuses a path parameter that is
not an A2E id (422), so a caller reaches exactly the row it named and nothing else on A2E.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.errors import A2EError
from bridge.errors import BadRequest, NotFound, Unauthorized, from_a2e

from .auth import Authenticator
from .responses import JSONResponse


def require_trusted(conn: HTTPConnection, what: str = "the A2E pass-through") -> None:
    """Only tenants of ``BRIDGE_PASSTHROUGH_TENANTS`` (they act on the whole A2E account); anyone in
    development mode; never a browser key (403). Raises :class:`Unauthorized`."""
    auth: Authenticator = conn.app.state.auth
    who = auth.authenticate(conn)
    who.deny_browser(f"use {what}")
    if not auth.dev_mode and who.tenant not in conn.app.state.settings.passthrough_tenants:
        raise Unauthorized(f"this tenant may not use {what} (BRIDGE_PASSTHROUGH_TENANTS)")


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's json would accept them."""
    raise ValueError(f"{name} is not valid JSON")


async def list_operations(request: Request) -> Response:
    """
    summary: The A2E operations available through the pass-through
    responses:
      200: {description: "{operations: [{name, group, method, path, certainty, required, optional, creates_task}]}"}
    """
    require_trusted(request)
    rows = [
        {"name": r.name, "group": r.group, "method": r.method, "path": r.path, "certainty": r.certainty.value,
         "required": r.required, "optional": r.optional, "creates_task": r.creates_task, "summary": r.summary}
        for r in ENDPOINTS.values() if r.passthrough
    ]
    return JSONResponse({"operations": rows})


async def call_operation(request: Request) -> Response:
    """
    summary: Call one A2E operation by name; the body is the flat JSON object of its fields; answers A2E's data
    responses:
      200: {description: "{data: <A2E's data>}"}
      400: {description: The body is not a JSON object}
      404: {description: Unknown or excluded operation}
      422: {description: "A field the operation does not take, or a path parameter that is not an A2E id"}
    """
    require_trusted(request)
    name = request.path_params["operation"]
    row = ENDPOINTS.get(name)
    if row is None or not row.passthrough:
        raise NotFound(f"no A2E operation {name!r} here; GET /v1/a2e lists them")
    raw = await request.body()
    try:
        params: Any = json.loads(raw, parse_constant=_no_constant) if raw.strip() else {}
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply") from None
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(params, dict):
        raise BadRequest("the body must be a JSON object of the operation's fields")
    try:
        row.check_params(params)
        data = await request.app.state.a2e.call(name, params)
    except A2EError as exc:
        raise from_a2e(exc) from None
    return JSONResponse({"data": data})


routes: list[BaseRoute] = [
    Route("/v1/a2e", list_operations, methods=["GET"]),
    Route("/v1/a2e/{operation}", call_operation, methods=["POST"]),
]
