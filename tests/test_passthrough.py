"""The A2E pass-through: trusted tenants call any non-streaming operation by name (bridge in-process)."""

from typing import Any

import pytest

from bridge.a2e.endpoints import ENDPOINTS
from tests.helpers import assert_error

pytestmark = pytest.mark.in_process


async def test_dev_mode_lists_and_calls_operations(bridge: Any) -> None:
    listing = (await bridge.http.get("/v1/a2e")).json()["operations"]
    names = {op["name"] for op in listing}
    assert "video_generate" in names and "remaining_coins" in names
    assert not names & {"agora_token", "leave", "speak", "api_token_generate"}
    assert names == {r.name for r in ENDPOINTS.values() if r.group not in ("streaming", "tokens")}
    r = await bridge.http.post("/v1/a2e/remaining_coins")
    assert r.status_code == 200 and isinstance(r.json()["data"]["coins"], int)
    r = await bridge.http.post("/v1/a2e/dubbing_start", json={"source_url": "https://x/v.mp4", "target_lang": "de"})
    task_id = r.json()["data"]["_id"]
    r = await bridge.http.post("/v1/a2e/dubbing_get", json={"_id": task_id})
    assert r.json()["data"]["_id"] == task_id


async def test_streaming_and_unknown_operations_are_not_exposed(bridge: Any) -> None:
    for name in ("agora_token", "leave", "nope"):
        r = await bridge.http.post(f"/v1/a2e/{name}", json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a2e_errors_and_bad_bodies_are_structured(bridge: Any) -> None:
    # A2E refuses the caller's input: a 4xx naming the field A2E named (not a 502: nothing is wrong upstream)
    r = await bridge.http.post("/v1/a2e/dubbing_start", json={"source_url": "https://x/v.mp4"})
    error = assert_error(r, 422, "invalid_input")
    assert error["details"][0]["loc"] == ["target_lang"] and "target_lang" in error["message"]
    r = await bridge.http.post("/v1/a2e/dubbing_get", json={})  # a missing path parameter: refused before A2E
    assert r.status_code == 422 and "_id" in r.json()["error"]["message"]
    r = await bridge.http.post("/v1/a2e/remaining_coins", content=b"[1]")
    assert r.status_code == 400
    r = await bridge.http.post("/v1/a2e/remaining_coins", content=b"{nope")
    assert r.status_code == 400


async def test_only_listed_tenants_may_use_it(bridge_factory: Any) -> None:
    b = await bridge_factory(api_keys={"k1": "acme", "k2": "globex"}, passthrough_tenants=["acme"])
    acme = b.client(headers={"Authorization": "Bearer k1"})
    globex = b.client(headers={"Authorization": "Bearer k2"})
    assert (await acme.post("/v1/a2e/remaining_coins")).status_code == 200
    r = await globex.post("/v1/a2e/remaining_coins")
    assert r.status_code == 401 and "PASSTHROUGH" in r.json()["error"]["message"]
    assert (await b.http.get("/v1/a2e")).status_code == 401
