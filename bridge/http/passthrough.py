"""``/v1/a2e/{operation}``: the rest of A2E's REST API for trusted tenants, through the shared client.

A2E's media records (videos, voices, tasks) belong to the whole account, not to a tenant, so this
is off unless the tenant is listed in ``BRIDGE_PASSTHROUGH_TENANTS`` (development mode allows it).
Streaming operations are excluded: rooms go through ``/v1/rooms``, which tracks and always leaves
them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.errors import A2EError
from bridge.errors import BadRequest, NotFound, Unauthorized, from_a2e

from .auth import Authenticator
from .responses import JSONResponse

EXCLUDED_GROUPS = frozenset({"streaming", "tokens"})


def _allowed(request: Request) -> None:
    auth: Authenticator = request.app.state.auth
    who = auth.authenticate(request)
    if not auth.dev_mode and who.tenant not in request.app.state.settings.passthrough_tenants:
        raise Unauthorized("this tenant may not use the A2E pass-through (BRIDGE_PASSTHROUGH_TENANTS)")


async def list_operations(request: Request) -> Response:
    """
    summary: The A2E operations available through the pass-through
    responses:
      200: {description: "{operations: [{name, group, method, path, certainty, required, creates_task}]}"}
    """
    _allowed(request)
    rows = [
        {"name": r.name, "group": r.group, "method": r.method, "path": r.path, "certainty": r.certainty.value,
         "required": r.required, "creates_task": r.creates_task, "summary": r.summary}
        for r in ENDPOINTS.values() if r.group not in EXCLUDED_GROUPS
    ]
    return JSONResponse({"operations": rows})


async def call_operation(request: Request) -> Response:
    """
    summary: Call one A2E operation by name with a JSON object of parameters; answers A2E's data
    responses:
      200: {description: "{data: <A2E's data>}"}
      404: {description: Unknown or excluded operation}
    """
    _allowed(request)
    name = request.path_params["operation"]
    row = ENDPOINTS.get(name)
    if row is None or row.group in EXCLUDED_GROUPS:
        raise NotFound(f"no A2E operation {name!r} here; GET /v1/a2e lists them")
    raw = await request.body()
    try:
        params: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(params, dict):
        raise BadRequest("the body must be a JSON object of parameters")
    try:
        data = await request.app.state.a2e.call(name, params)
    except A2EError as exc:
        raise from_a2e(exc) from None
    except ValueError as exc:  # a missing path parameter
        raise BadRequest(str(exc)) from None
    return JSONResponse({"data": data})


routes: list[BaseRoute] = [
    Route("/v1/a2e", list_operations, methods=["GET"]),
    Route("/v1/a2e/{operation}", call_operation, methods=["POST"]),
]
