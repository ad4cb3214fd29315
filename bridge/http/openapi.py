"""``/openapi.json``, generated from the models that validate requests and build answers
(:mod:`bridge.http.models`, the pass-through's per-operation models), and ``/docs``, an API reference
that works offline (Swagger UI's files from the ``swagger-ui-bundle-v2`` package, no CDN).

Each handler declares its operation with :func:`operation` (summary, body, query, answer, the error
statuses it can give); :func:`document` walks the app's routes. Hand-written rather than a framework
(FastAPI, spectree): the handlers stay Starlette's, and the whole generator is this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import swagger_ui_bundle  # type: ignore[import-untyped]
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bridge import frames
from bridge.settings import Settings

from .models import PATH_PATTERNS, ErrorBody
from .responses import JSONResponse

E = TypeVar("E", bound=Callable[..., Any])
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

ERRORS: dict[int, str] = {  # status -> the codes it carries (frames.ErrorCode)
    400: "`bad_request`:",
    401: "`unauthorized`: missing or unknown key (or ticket)",
    403: "`origin_not_allowed`: a web page on an `Origin` the allowlist does not name (BRIDGE_ALLOWED_ORIGINS), or a "
         "browser key without one",
    404: "`not_found`",
    409: "`room_not_open`: the room is closing or closed; `flushed`: dropped by a flush before it was sent; "
         "`cancelled`: cancelled by a client",
    413: "`payload_too_large`: the body is over the limit (`details.max_bytes`)",
    422: "`invalid_input`: the request does not fit the schema (`details`: where), or A2E refused its input",
    429: "`cap_exceeded` (`details.cap`), `queue_full`",
    502: "`upstream_error`: A2E failed; `upstream_auth`: A2E refuses the bridge's key; `brain_error`: the room's "
         "brain failed",
    503: "`no_avatar_host`, `upstream_unavailable`, `upstream_rate_limited` (with `Retry-After`); "
         "`too_many_connections`",
    504: "`outcome_unknown`: sent to A2E and no answer came: it may or may not have been carried out, and was "
         "not sent again; `brain_timeout`: the room's brain was too slow",
}
A2E_STATUSES = (502, 503, 504)
JSON_400 = "the body is not JSON, or nested deeper than 200 levels"


@dataclass(frozen=True)
class Operation:
    """What ``/openapi.json`` says about one handler (see :func:`operation`)."""

    summary: str
    answer: type[BaseModel] | None = None
    ok: int = 200
    body: type[BaseModel] | Callable[[Settings], type[BaseModel]] | None = None
    body_required: bool = True
    body_media: str = "application/json"  # another type: the body is that text, read as it comes (no model)
    query: type[BaseModel] | None = None
    errors: dict[int, str] = field(default_factory=dict)  # status -> what it means here
    description: str = ""
    auth: bool = True
    media: str = "application/json"  # of the answer
    also_media: tuple[str, ...] = ()  # other types the answer may come in (text, as asked for by a query)
    headers: tuple[dict[str, Any], ...] = ()  # header parameters
    tag: str = "rooms"
    also_answers: tuple[int, ...] = ()  # statuses whose body is the answer too (or an error, e.g. 503)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAPI links of the answer
    expand: Callable[[Settings], Iterator[tuple[str, str, Operation]]] | None = None  # one route, many operations


def operation(**spec: Any) -> Callable[[E], E]:
    """Declare a handler's operation (the keywords of :class:`Operation`)."""

    def mark(endpoint: E) -> E:
        endpoint.__openapi__ = Operation(**spec)  # type: ignore[attr-defined]
        return endpoint

    return mark


def _operations(routes: list[BaseRoute], settings: Settings) -> Iterator[tuple[str, str, Operation]]:
    for route in routes:
        spec: Operation | None = getattr(getattr(route, "endpoint", None), "__openapi__", None)
        if not isinstance(route, Route) or spec is None:
            continue
        if spec.expand is not None:
            yield from spec.expand(settings)
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield route.path, method.lower(), spec


def _resolve(model: type[BaseModel] | Callable[[Settings], type[BaseModel]], settings: Settings) -> type[BaseModel]:
    return model if isinstance(model, type) else model(settings)


def document(routes: list[BaseRoute], settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` as served with ``settings`` (limits, keys)."""
    ops = list(_operations(routes, settings))
    keyed: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
    for _, _, spec in ops:
        if spec.body is not None:
            keyed.append((_resolve(spec.body, settings), "validation"))
        if spec.answer is not None:
            keyed.append((spec.answer, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(keyed)), ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            _flatten_nullable(prop)
            if prop.get("default", 0) is None:
                del prop["default"]  # absent means unset, whether or not null is allowed too
    secured = bool(settings.api_keys)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec in ops:
        paths.setdefault(path, {})[method] = _path_item(path, method, spec, settings, refs, secured)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "a2e-bridge", "version": "0.1.0", "description": _DESCRIPTION},
        "paths": paths,
        "components": {"schemas": {**schemas, **_frame_schemas()}},
        "x-websocket": {"path": "/v1/rooms/{room_id}/ws", "client_frames": {"$ref": "#/components/schemas/ClientFrame"},
                        "server_frames": {"$ref": "#/components/schemas/ServerFrame"}},
    }
    if secured:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "a client key (BRIDGE_API_KEYS)"}}
    return doc


def _flatten_nullable(prop: dict[str, Any]) -> None:
    """``anyOf: [{type: integer, minimum: 16}, {type: null}]`` (pydantic's ``int | None``) as the
    equivalent ``{type: [integer, null], minimum: 16}``: the same values, and generators (schemathesis'
    coverage phase) read the bounds of the one-type form right."""
    branches = prop.get("anyOf")
    if not (isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches):
        return
    other = next(b for b in branches if b != {"type": "null"})
    if isinstance(other.get("type"), str) and "$ref" not in other and "anyOf" not in other:
        del prop["anyOf"]
        prop.update({**other, "type": [other["type"], "null"]})


def _path_item(path: str, method: str, spec: Operation, settings: Settings, refs: dict[Any, Any],
               secured: bool) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": spec.summary, "operationId": f"{method}{path}".replace("/", "_")
                          .replace("{", "").replace("}", ""), "tags": [spec.tag]}
    if spec.description:
        op["description"] = spec.description
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": PATH_PATTERNS[name]}}
              for name in re.findall(r"\{(\w+)\}", path)]
    if spec.query is not None:
        schema = spec.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            prop.pop("title", None)
            if prop.get("default", 0) is None:  # a query value is never null: absent is the default
                del prop["default"]
                branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
                prop.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
            params.append({"name": name, "in": "query", "required": name in schema.get("required", ()),
                           "schema": prop, **({"description": prop["description"]} if "description" in prop else {})})
    params += list(spec.headers)
    if params:
        op["parameters"] = params
    statuses = dict(spec.errors)
    if spec.body is not None:
        op["requestBody"] = {"required": spec.body_required, "content": {"application/json": {
            "schema": refs[(_resolve(spec.body, settings), "validation")]}}}
        statuses.update({400: statuses.get(400, JSON_400), 413: statuses.get(413, ""), 422: statuses.get(422, "")})
    elif spec.body_media != "application/json":
        op["requestBody"] = {"required": spec.body_required, "content": {spec.body_media: {"schema": {"type": "string"}}}}
        statuses.update({400: statuses.get(400, ""), 413: statuses.get(413, "")})
    if spec.query is not None:
        statuses.setdefault(422, "")
    if "{room_id}" in path:
        statuses.setdefault(404, "no such room for this tenant")
    if spec.auth:
        statuses.setdefault(403, "")  # the origin allowlist, checked before any key
    if spec.auth and secured:
        statuses.setdefault(401, "")
        op["security"] = [{"bearer": []}]
    elif secured:
        op["security"] = []
    statuses.setdefault(503, "")  # the connection cap (too_many_connections), whatever the route
    content: dict[str, Any] = ({spec.media: {"schema": refs[(spec.answer, "serialization")]}} if spec.answer
                               else {spec.media: {"schema": {"type": "string"}}})
    content.update({media: {"schema": {"type": "string"}} for media in spec.also_media})
    responses: dict[str, Any] = {str(spec.ok): {"description": "OK", "content": content}}
    if spec.links:
        responses[str(spec.ok)]["links"] = spec.links
    for status in sorted(statuses):
        if status == spec.ok:
            continue
        text = " ".join(t for t in (ERRORS.get(status, ""), statuses[status]) if t)
        body: dict[str, Any] = {"$ref": "#/components/schemas/ErrorBody"}
        if status in spec.also_answers and spec.answer is not None:
            body = {"anyOf": [refs[(spec.answer, "serialization")], body]}
        responses[str(status)] = {"description": text or "error", "content": {"application/json": {"schema": body}}}
    op["responses"] = responses
    return op


def _frame_schemas() -> dict[str, Any]:
    """The websocket's frames, from :mod:`bridge.frames` (the one protocol)."""
    client = TypeAdapter(frames.ClientFrame).json_schema(ref_template="#/components/schemas/{model}")
    server_defs: dict[str, Any] = {}
    one_of = []
    for model in frames.SERVER_FRAMES:
        name = f"Server{model.__name__}"
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        server_defs.update(schema.pop("$defs", {}))
        server_defs[name] = schema
        one_of.append({"$ref": f"#/components/schemas/{name}"})
    defs = {**client.pop("$defs", {}), **server_defs}
    return {**defs, "ClientFrame": client, "ServerFrame": {"oneOf": one_of}}


_DESCRIPTION = """\
Streaming A2E avatars behind one API. Errors are always `{"error": {"code", "message", "details"?}}`.

**Room events (SSE)**: `GET /v1/rooms/{room_id}/events` is `text/event-stream`: events are *named*
by their type (`room`, `command`, `utterance`, `reply`, `speaking_started`, `speaking_stopped`,
`room_closed`): listen with `addEventListener(type, ...)`, not `onmessage`. Each stream starts with
the room as it is (`room`); `Last-Event-ID` resumes; an ended room answers its final `room_closed`.
`?events=command,reply` (also on the websocket): only those events (`room`, `room_closed` always).

**Websocket**: `GET /v1/rooms/{room_id}/ws` (key in `Authorization`, or `?ticket=`). Client frames
are `ClientFrame` (`speak`, `ask`, `speak_delta`/`speak_end` for streamed text, `cancel`, `flush`,
`set_qa_context`, `ping`, `rtc_event`), server frames `ServerFrame` (components; `x-websocket`).
Close codes: 1008 an unknown type in `?events=` (after an `invalid_input` error frame), 4000 room
closed, 4008 slow consumer, 4009 room not open, 4401 unauthorized, 4404 no such room, 4429 flood or
a client cap; a page on an origin not allowed is refused with a plain 403.
"""


async def openapi(request: Request) -> Response:
    """The document, built once per app (settings do not change while it runs)."""
    state = request.app.state
    if getattr(state, "openapi_document", None) is None:
        state.openapi_document = document(request.app.routes, state.settings)
    return JSONResponse(state.openapi_document)


async def docs(request: Request) -> Response:
    """Swagger UI over /openapi.json; its script is a file (the CSP forbids inline script)."""
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    Route("/docs", docs, methods=["GET"], include_in_schema=False),
    Mount("/docs/assets", app=StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"),
]
