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
    # the caller's mistakes are 4xx naming the field (not a 502: nothing is wrong upstream); what the endpoint
    # table knows is checked before A2E is called
    before = bridge.sim.state.counters.get("dubbing_start", 0)
    r = await bridge.http.post("/v1/a2e/dubbing_start", json={"source_url": "https://x/v.mp4"})
    assert assert_error(r, 422, "invalid_input")["details"][0]["loc"] == ["target_lang"]
    r = await bridge.http.post("/v1/a2e/dubbing_start", json={"source_url": "https://x/v.mp4", "target_lang": 7})
    assert assert_error(r, 422, "invalid_input")["details"][0]["loc"] == ["target_lang"]
    assert bridge.sim.state.counters.get("dubbing_start", 0) == before
    r = await bridge.http.post("/v1/a2e/tts_generate", json={"msg": "hi"})  # needs tts_id or user_voice_id
    assert "tts_id" in assert_error(r, 422, "invalid_input")["details"][0]["msg"]
    r = await bridge.http.post("/v1/a2e/exchange_diamonds", json={"diamonds": 0})
    assert assert_error(r, 422, "invalid_input")["details"][0]["loc"] == ["diamonds"]
    # what only A2E knows is A2E's answer: a task still running cannot be deleted
    task = (await bridge.http.post("/v1/a2e/dubbing_start", json={"source_url": "https://x/slow.mp4",
                                                                  "target_lang": "de"})).json()["data"]
    sim = bridge.sim.state
    sim.config.task_step_seconds, created = 1.0, sim.tasks[task["_id"]].created_at
    sim.clock = lambda: created + 1.5  # processing
    r = await bridge.http.post("/v1/a2e/dubbing_delete", json={"_id": task["_id"]})
    assert assert_error(r, 422, "invalid_input")["details"][0]["a2e_code"] == 400
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
