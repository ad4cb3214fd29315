"""``/v1/a2e/{operation}``: the rest of A2E's REST API for trusted tenants, through the shared client.

A2E's media records (videos, voices, tasks) belong to the whole account, not to a tenant, so this
is off unless the tenant is listed in ``BRIDGE_PASSTHROUGH_TENANTS`` (development mode allows it).
Streaming operations are excluded: rooms go through ``/v1/rooms``, which tracks and always leaves
them. The body is the flat JSON object of the operation's fields; a field the endpoint table does
not list for the operation is refused (422), and the shared client refuses a path parameter that is
not an A2E id (422), so a caller reaches exactly the row it named and nothing else on A2E. Each
operation's body is a model built from its row (:func:`body_model`): types and A2E's rules are
checked before A2E is called, and ``/openapi.json`` lists every operation with that body.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.a2e.endpoints import ENDPOINTS, OBJECT_ID, Endpoint
from bridge.a2e.errors import A2EError
from bridge.errors import BadRequest, NotFound, Unauthorized, ValidationFailed, from_a2e
from bridge.settings import Settings

from .auth import Authenticator
from .models import A2EAnswer, Integer, OperationList, problems
from .openapi import A2E_STATUSES, Operation, operation
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


def _field(row: Endpoint, name: str, kind: str, required: bool) -> tuple[Any, Any]:
    """One body field of ``row`` as pydantic sees it: its JSON type and A2E's rules on it."""
    rules: dict[str, Any] = {}
    if name == "_id" or name in row.path_params:
        rules["pattern"] = f"^{OBJECT_ID.pattern}$"
    if required and kind in ("str", "list"):
        rules["min_length"] = 1  # A2E refuses an empty required field
    if name in row.limits:
        rules["max_length"] = row.limits[name]
    for keyword, value in row.rules.get(name, {}).items():
        rules[{"pattern": "pattern", "minimum": "ge", "maximum": "le"}[keyword]] = value
    return _TYPES[kind], Field(... if required else None, alias=name, **rules)


@functools.cache
def body_model(name: str) -> type[BaseModel]:
    """The body ``/v1/a2e/{name}`` takes, from the endpoint table's row (its fields, their types and
    A2E's rules): the pass-through validates with it and ``/openapi.json`` shows it."""
    row = ENDPOINTS[name]
    specs = [*((f, "str", True) for f in row.path_params), *((f, k, True) for f, k in row.required.items()),
             *((f, k, False) for f, k in row.optional.items())]
    # pydantic's names may not start with "_" (A2E's "_id"): the field is "id_", its JSON name the alias
    fields = {_py_name(f): _field(row, f, k, req) for f, k, req in specs}
    # "one of": present and not empty (A2E reads "" as absent)
    schema: list[Any] = [{"anyOf": [{"required": [f], "properties": {f: {"minLength": 1}}} for f in group]}
                         for group in row.one_of]
    schema += [{"not": {"required": list(group)}} for group in row.exclusive]

    def together(model: BaseModel) -> BaseModel:
        given = {model.__class__.model_fields[f].alias or f for f in model.model_fields_set}
        for group in row.one_of:
            if not any(f in given and getattr(model, _py_name(f)) != "" for f in group):
                raise ValueError(f"needs one of {', '.join(group)} (not empty)")
        for group in row.exclusive:
            if set(group) <= given:
                raise ValueError(f"takes at most one of {', '.join(group)}")
        return model

    config = ConfigDict(extra="forbid", strict=True, title=f"{name} body",
                        json_schema_extra={"allOf": schema} if schema else None)
    return create_model(f"A2E_{name}", __config__=config, __doc__=row.summary,  # type: ignore[call-overload,no-any-return]
                        __validators__={"together": model_validator(mode="after")(together)}, **fields)


def _py_name(field_name: str) -> str:
    return f"{field_name.lstrip('_')}_" if field_name.startswith("_") else field_name


_TYPES: dict[str, Any] = {"str": str, "int": Integer, "number": float, "bool": bool, "list": list[Any],
                          "dict": dict[str, Any], "any": Any}


@operation(summary="The A2E operations available through the pass-through", answer=OperationList, tag="a2e",
           errors={401: "also for a tenant not in BRIDGE_PASSTHROUGH_TENANTS"})
async def list_operations(request: Request) -> Response:
    require_trusted(request)
    rows = [
        {"name": r.name, "group": r.group, "method": r.method, "path": r.path, "certainty": r.certainty.value,
         "required": r.required, "optional": r.optional, "creates_task": r.creates_task, "summary": r.summary}
        for r in ENDPOINTS.values() if r.passthrough
    ]
    return JSONResponse(OperationList.model_validate({"operations": rows}).model_dump(mode="json"))


def _per_operation(settings: Settings) -> Iterator[tuple[str, str, Operation]]:
    """``/v1/a2e/{operation}`` in the document: one path per operation, each with its own body."""
    for row in ENDPOINTS.values():
        if row.passthrough:
            yield f"/v1/a2e/{row.name}", "post", Operation(
                summary=f"A2E: {row.summary}", body=body_model(row.name), body_required=bool(row.required or
                                                                                             row.path_params),
                answer=A2EAnswer, tag=f"a2e {row.group}",
                description=f"A2E's `{row.method} {row.path}` ({row.certainty.value}); the body is its fields, flat.",
                errors={401: "also for a tenant not in BRIDGE_PASSTHROUGH_TENANTS",
                        404: "A2E has no such record (`details[0].loc` names the field)",
                        422: "also when A2E refuses the input (`details[0].loc` names the field A2E named)",
                        429: "`cap_exceeded` `balance`: too few credits", **dict.fromkeys(A2E_STATUSES, "")},
                links={"status": {"operationId": f"post_v1_a2e_{row.status_op}", "description": "the task's status",
                                  "requestBody": {"_id": "$response.body#/data/_id"}}} if row.status_op else {})


@operation(summary="Call one A2E operation by name", expand=_per_operation)
async def call_operation(request: Request) -> Response:
    require_trusted(request)
    name = request.path_params["operation"]
    row = ENDPOINTS.get(name)
    if row is None or not row.passthrough:
        raise NotFound(f"no A2E operation {name!r} here; GET /v1/a2e lists them")
    raw = await request.body()
    try:
        params: Any = json.loads(raw, parse_constant=_no_constant) if raw else {}  # whitespace is not JSON
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply") from None
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(params, dict):
        raise BadRequest("the body must be a JSON object of the operation's fields")
    try:
        row.check_params(params)  # a field it does not take, a path parameter that is not an A2E id: by name
        body = body_model(name).model_validate(params)  # types and A2E's rules
        data = await request.app.state.a2e.call(name, body.model_dump(by_alias=True, exclude_unset=True))
    except A2EError as exc:
        raise from_a2e(exc) from None
    except ValidationError as exc:
        raise ValidationFailed(f"the body does not fit {name}'s fields", details=problems(exc)) from None
    return JSONResponse(A2EAnswer(data=data).model_dump(mode="json"))


routes: list[BaseRoute] = [
    Route("/v1/a2e", list_operations, methods=["GET"]),
    Route("/v1/a2e/{operation}", call_operation, methods=["POST"]),
]
