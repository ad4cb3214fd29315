"""``/openapi.json``: generated from the models the handlers use, it declares every route's parameters,
bodies, answers and error statuses; undeclared methods are 405 with ``Allow``; ``/docs`` serves an
offline reference. schemathesis (all checks, all phases) finds nothing (a bounded run here; the full
run is ``scripts/schemathesis_run.py``)."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from starlette.routing import Route

from bridge.a2e.endpoints import ENDPOINTS
from bridge.frames import ErrorCode
from scripts.schemathesis_run import run as schemathesis_run
from tests.helpers import assert_error, create_room

pytestmark = pytest.mark.in_process

HTTP_METHODS = {"get", "post", "put", "delete", "patch"}
KEYS = {"key-acme": "acme"}
ACME = {"Authorization": "Bearer key-acme"}


async def fetch(bridge: Any) -> dict[str, Any]:
    r = await bridge.http.get("/openapi.json")  # public: no client key needed to read the contract
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return json.loads(r.text)


def served(app: Any) -> set[tuple[str, str]]:
    """(path, method) of every HTTP /v1 and probe route the app serves, the pass-through per operation."""
    routes = set()
    for route in app.routes:
        if isinstance(route, Route) and (route.path.startswith("/v1") or route.path in ("/healthz", "/readyz")):
            for method in route.methods or ():
                if method.lower() in HTTP_METHODS:
                    routes.add((route.path, method.lower()))
    routes.discard(("/v1/a2e/{operation}", "post"))
    return routes | {(f"/v1/a2e/{name}", "post") for name, row in ENDPOINTS.items() if row.passthrough}


async def test_every_route_is_declared_with_its_parameters_and_errors(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=KEYS)
    doc = await fetch(bridge)
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "a2e-bridge"
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert documented == served(bridge.app)
    assert not any(p.startswith(("/_a2e", "/static", "/docs")) for p in doc["paths"])
    schemas = doc["components"]["schemas"]
    codes = set(schemas["ErrorCode"]["enum"])
    assert codes == {c.value for c in ErrorCode} and "outcome_unknown" in codes
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and op["operationId"], where
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), where
            for status, answer in op["responses"].items():
                if int(status) >= 400:  # every error has the one error shape
                    assert answer["content"]["application/json"]["schema"] in (
                        {"$ref": "#/components/schemas/ErrorBody"},
                        {"anyOf": [{"$ref": "#/components/schemas/Ready"}, {"$ref": "#/components/schemas/ErrorBody"}]},
                    ), where
            if path.startswith("/v1"):
                assert op["security"] == [{"bearer": []}] and "401" in op["responses"], where
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert {"400", "413", "422"} <= set(op["responses"]), where
            elif "requestBody" in op:  # text, read as it comes: not UTF-8 or too long
                assert {"400", "413"} <= set(op["responses"]), where
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "a client key (BRIDGE_API_KEYS)"}
    rooms = doc["paths"]["/v1/rooms"]
    assert {"201", "401", "404", "422", "429", "502", "503", "504"} <= set(rooms["post"]["responses"])
    speak = doc["paths"]["/v1/rooms/{room_id}/speak"]["post"]
    assert {"403", "404", "409", "429", "504"} <= set(speak["responses"])
    assert "origin_not_allowed" in speak["responses"]["403"]["description"]
    assert doc["paths"]["/v1/rooms"]["get"]["responses"]["403"]["description"].count("forbidden") == 1
    # the streamed speak takes text; utterances and the operators' records answer with their models
    stream = doc["paths"]["/v1/rooms/{room_id}/speak/stream"]["post"]
    assert list(stream["requestBody"]["content"]) == ["text/plain"] and {"400", "413"} <= set(stream["responses"])
    utterance = doc["paths"]["/v1/rooms/{room_id}/utterances/{uid}"]
    assert utterance["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("UtteranceView")
    transcript = doc["paths"]["/v1/rooms/{room_id}/transcript"]["get"]
    assert set(transcript["responses"]["200"]["content"]) == {"application/json", "text/plain"}
    assert {p["name"] for p in transcript["parameters"]} == {"room_id", "after", "limit", "format"}
    usage = {p["name"]: p["schema"] for p in doc["paths"]["/v1/usage"]["get"]["parameters"]}
    assert usage["from"]["anyOf"] == [{"format": "date", "type": "string"}, {"format": "date-time", "type": "string"}]
    assert {"brain", "forward_events"} <= set(schemas["CreateRoom"]["properties"])
    for path in ("/v1/webhooks/deliveries", "/v1/operator/rooms"):
        assert "200" in doc["paths"][path]["get"]["responses"], path
    # the websocket and the event stream are described, the frames from bridge.frames
    assert doc["x-websocket"]["path"] == "/v1/rooms/{room_id}/ws" and "ClientFrame" in schemas and "ServerFrame" in schemas
    events = doc["paths"]["/v1/rooms/{room_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"] and "addEventListener" in events["summary"]
    assert {p["name"] for p in events["parameters"]} == {"room_id", "ticket", "last_event_id", "events", "Last-Event-ID"}


async def test_the_schema_says_what_the_handlers_enforce(bridge_factory: Any) -> None:
    """The limits in the document are the handlers' (from settings), and the handlers refuse past them."""
    bridge = await bridge_factory(api_keys=KEYS, headers=ACME, max_text_chars=300, leave_before_expiry=20)
    doc = await fetch(bridge)
    schemas = doc["components"]["schemas"]
    speak, ask = schemas["SpeakBody"]["properties"]["text"], schemas["AskBody"]["properties"]["text"]
    assert (speak["minLength"], speak["maxLength"], ask["maxLength"]) == (1, 300, 300)
    assert schemas["QaContextBody"]["properties"]["text"]["maxLength"] == 5000
    assert schemas["CreateRoom"]["properties"]["expire_seconds"]["minimum"] == 21
    room = await create_room(bridge)
    # whitespace as the handler reads it (Python's), whatever the regex dialect: U+0085 is not visible, U+FEFF is
    for text, status in (("x" * 300, 200), ("x" * 301, 422), ("   ", 422), ("", 422), ("\u0085\u3000", 422),
                         ("\ufeff", 200)):
        r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": text})
        assert r.status_code == status, (text, r.text)
        body_schema = jsonschema_rs.validator_for({**schemas["SpeakBody"], "$defs": schemas})
        assert body_schema.is_valid({"text": text}) == (status == 200)
    assert_error(await bridge.http.post("/v1/rooms", json={"expire_seconds": 20}), 422, "invalid_input")
    assert (await bridge.http.post("/v1/rooms", json={"expire_seconds": 21.0})).status_code == 201  # JSON's integer
    assert_error(await bridge.http.get("/v1/rooms", params={"state": "dead"}), 422, "invalid_input")
    # the pass-through's bodies come from the endpoint table
    tts = schemas["A2E_tts_generate"]
    assert tts["properties"]["msg"]["maxLength"] == 1000 and tts["additionalProperties"] is False
    assert schemas["A2E_voice_get"]["properties"]["_id"]["pattern"] == "^[0-9a-fA-F]{24}$"
    link = doc["paths"]["/v1/a2e/dubbing_start"]["post"]["responses"]["200"]["links"]["status"]
    assert link["operationId"] == "post_v1_a2e_dubbing_get"
    assert {op["operationId"] for ops in doc["paths"].values() for op in ops.values()} >= {link["operationId"]}


async def test_undeclared_methods_are_405_with_allow(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=KEYS, headers=ACME)
    room = await create_room(bridge)
    cases = [("/v1/rooms", "GET, HEAD, POST"), (f"/v1/rooms/{room['id']}", "DELETE, GET, HEAD"),
             (f"/v1/rooms/{room['id']}/qa-context", "GET, HEAD, PUT"), ("/v1/a2e/remaining_coins", "POST"),
             ("/openapi.json", "GET, HEAD"), ("/healthz", "GET, HEAD")]
    for path, allowed in cases:
        for method in ("TRACE", "PATCH", "OPTIONS"):
            r = await bridge.http.request(method, path)
            error = assert_error(r, 405, "method_not_allowed")
            assert r.headers["allow"] == allowed, (method, path)
            assert allowed in error["message"]


async def test_docs_are_served_from_the_package(bridge_factory: Any) -> None:
    bridge = await bridge_factory()
    page = await bridge.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text.replace(" ", "")  # no inline script: the CSP would block it
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
        r = await bridge.http.get(asset)
        assert r.status_code == 200 and len(r.content) > 100, asset
        assert asset in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.real_server
def test_schemathesis_finds_nothing(tmp_path: Any) -> None:
    """Every check, every phase, against a real ``a2e-bridge serve`` (bounded: a few examples each)."""
    result = schemathesis_run(max_examples=3, seed=7, log_path=tmp_path / "server.log", timeout=240)
    assert result.ok, result.output[-6000:]
    assert result.operations >= 60 and result.cases > 500, result.output[-2000:]
    assert "Stateful" in result.output and "Coverage" in result.output and "Fuzzing" in result.output
    server_log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in server_log, server_log[-4000:]
