"""``/openapi.json`` describes every /v1 route the bridge serves, as JSON (bridge in-process)."""

from __future__ import annotations

import json

import pytest
from starlette.routing import Route

pytestmark = pytest.mark.in_process

HTTP_METHODS = {"get", "post", "put", "delete", "patch"}


def served_v1_routes(app) -> set[tuple[str, str]]:
    """(path, method) of every HTTP /v1 route of the app, from its routing table."""
    routes = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/v1") and route.include_in_schema:
            for method in route.methods or ():
                if method.lower() in HTTP_METHODS:
                    routes.add((route.path, method.lower()))
    return routes


async def test_openapi_lists_every_v1_route(bridge_factory):
    bridge = await bridge_factory(api_keys={"k": "acme"})
    r = await bridge.http.get("/openapi.json")  # public: no client key needed to read the contract
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = json.loads(r.text)
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "a2e-bridge"
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops if method in HTTP_METHODS}
    served = served_v1_routes(bridge.app)
    assert {p for p, _ in served} >= {"/v1/rooms", "/v1/rooms/{room_id}", "/v1/rooms/{room_id}/speak",
                                      "/v1/rooms/{room_id}/ask", "/v1/rooms/{room_id}/flush",
                                      "/v1/rooms/{room_id}/qa-context", "/v1/rooms/{room_id}/tickets",
                                      "/v1/rooms/{room_id}/events", "/v1/avatars"}
    missing = served - documented
    assert not missing, f"undocumented routes: {sorted(missing)}"
    for path, method in served:
        operation = doc["paths"][path][method]
        assert operation.get("summary"), (path, method)
        assert operation.get("responses"), (path, method)
    assert not any(p.startswith("/_a2e") for p in doc["paths"])  # the simulator is not the bridge's API
    create = doc["paths"]["/v1/rooms"]["post"]
    assert {"201", "429", "503"} <= {str(code) for code in create["responses"]}
