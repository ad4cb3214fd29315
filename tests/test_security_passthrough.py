"""The A2E pass-through reaches exactly the row it names, and nothing else on A2E.

Path parameters must be A2E ids (24 hex digits) and are percent-encoded; the URL is checked against
the row's template in the client (the one place URLs are made); the body may hold only the row's
fields. Every attack is replayed against a real bridge in front of the simulator over loopback, and
the simulator's counters show that nothing reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS, Endpoint
from bridge.a2e.errors import A2EInvalidInput
from tests.helpers import ROOT, assert_error

KEYS = {"k-acme": "acme", "k-globex": "globex"}
ACME = {"Authorization": "Bearer k-acme"}  # trusted: BRIDGE_PASSTHROUGH_TENANTS=acme
GLOBEX = {"Authorization": "Bearer k-globex"}
QA_SECRET = "globex internal: the discount code is GX-7781"
GOOD_ID = "0123456789abcdef01234567"
CHANNEL = "<globex's channel>"  # replaced by the real channel

# _id values that must never reach a URL
BAD_IDS: list[Any] = [
    "../streaming-avatar/get-qa-context",
    "../token/list",
    "../../../../_sim/state",
    "../streaming-avatar/leave",
    "..%2Ftoken%2Flist",
    "%2e%2e/token/list",
    f"{GOOD_ID}/../../token/list",
    f"{GOOD_ID}/",
    f"{GOOD_ID}?channel=x",
    f"{GOOD_ID}#x",
    f"{GOOD_ID}\n",
    f"{GOOD_ID}\r\nX-Injected: 1",
    "0123456789abcdef0123456\r",
    "abc\u0000def",
    "\t" + GOOD_ID[1:],
    "g" * 24,
    GOOD_ID + "0",
    "/api/v1/token/list",
    "http://evil.example/x",
    123456789012345678901234,
    [GOOD_ID],
    {"$ne": None},
    True,
]


@pytest.fixture
async def bridge(bridge_factory: Any) -> Any:
    """Two tenants, acme trusted with the pass-through; no event observer, so the simulator only
    sees what the tests send."""
    return await bridge_factory(api_keys=KEYS, passthrough_tenants=["acme"], headers=ACME, event_source="none")


async def globex_room(bridge: Any) -> dict[str, Any]:
    r = await bridge.http.post("/v1/rooms", json={"expire_seconds": 300, "qa_context": QA_SECRET}, headers=GLOBEX)
    assert r.status_code == 201, r.text
    return r.json()


def seen(bridge: Any) -> tuple[int, dict[str, int]]:
    """Everything that reached the simulator: requests of any path, and A2E operations by name."""
    return bridge.sim.state.requests, dict(bridge.sim.state.counters)


def with_channel(params: dict[str, Any], channel: str) -> dict[str, Any]:
    return {k: channel if v == CHANNEL else v for k, v in params.items()}


# -- the reported attacks, and their variants ------------------------------------------------------
@pytest.mark.parametrize(("operation", "params"), [
    ("voice_get", {"_id": "../streaming-avatar/get-qa-context", "channel": CHANNEL}),
    ("voice_get", {"_id": "../token/list"}),
    ("voice_get", {"_id": "../../../../_sim/state"}),
    ("voice_delete", {"_id": "../streaming-avatar/leave", "channel": CHANNEL}),
    ("voice_delete", {"_id": "../streaming-avatar/leave"}),
    ("dubbing_get", {"_id": "..%2F..%2Fstreaming-avatar%2Fget-qa-context", "channel": CHANNEL}),
    ("face_swap_image_delete", {"_id": "../../streaming-avatar/leave"}),
])
async def test_reported_traversals_are_refused_and_reach_nothing(bridge: Any, operation: str,
                                                                 params: dict[str, Any]) -> None:
    room = await globex_room(bridge)
    before = seen(bridge)
    r = await bridge.http.post(f"/v1/a2e/{operation}", json=with_channel(params, room["channel"]))
    error = assert_error(r, 422, "invalid_input")
    assert "_id" in error["message"] and error["details"] == [{"loc": ["_id"], "msg": error["message"]}]
    assert QA_SECRET not in r.text
    assert seen(bridge) == before, "the request reached the simulator"
    # globex's room is untouched: still open on A2E, its QA context unread and unchanged
    (sim_room,) = [x for x in bridge.sim.state.rooms.values() if x.channel == room["channel"]]
    assert sim_room.status == "open" and sim_room.qa_context == QA_SECRET
    async with httpx.AsyncClient(base_url=bridge.url, headers=GLOBEX) as globex:
        assert (await globex.get(f"/v1/rooms/{room['id']}")).json()["state"] == "open"


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_no_malformed_id_reaches_a2e(bridge: Any, bad: Any) -> None:
    before = seen(bridge)
    for operation in ("voice_get", "voice_delete", "image_to_video_get"):
        r = await bridge.http.post(f"/v1/a2e/{operation}", json={"_id": bad})
        error = assert_error(r, 422, "invalid_input")
        assert error["details"][0]["loc"] == ["_id"]
    assert seen(bridge) == before


async def test_control_characters_in_a_raw_body_id_are_a_clear_422(bridge: Any) -> None:
    before = seen(bridge)
    for raw in (b'{"_id": "0123456789abcdef0123456\\r\\nHost: evil"}', b'{"_id": "\\u0000"}',
                b'{"_id": "\\ud800\\udc00\\ud800"}'):
        r = await bridge.http.post("/v1/a2e/voice_get", content=raw, headers={"content-type": "application/json"})
        assert_error(r, 422, "invalid_input")
    assert seen(bridge) == before


async def test_unexpected_fields_are_refused_by_name(bridge: Any) -> None:
    room = await globex_room(bridge)
    before = seen(bridge)
    cases = [
        ("voice_get", {"_id": GOOD_ID, "channel": room["channel"]}, "channel"),  # GET: would be a query field
        ("dubbing_list", {"pageNum": 1, "channel": room["channel"]}, "channel"),
        ("dubbing_start", {"source_url": "https://media.example.com/v.mp4", "target_lang": "de",
                           "callback": "https://evil.example/"}, "callback"),
        ("remaining_coins", {"avatar_id": "68af59a86eeedd0042ca7e27"}, "avatar_id"),
        ("video_status", {"_id": GOOD_ID, "__proto__": {}}, "__proto__"),
        ("add_user", {"email": "x@example.com", "role": "admin"}, "role"),
        ("language_detect", {"text": "hi", "te\r\nxt": "x"}, "te\r\nxt"),
    ]
    for operation, params, field in cases:
        r = await bridge.http.post(f"/v1/a2e/{operation}", json=params)
        error = assert_error(r, 422, "invalid_input")
        assert error["details"] == [{"loc": [field], "msg": error["message"]}], (operation, error)
        assert repr(field) in error["message"] and "it takes:" in error["message"]
    assert seen(bridge) == before


async def test_bodies_that_are_not_flat_json_objects_are_a_clear_4xx(bridge: Any) -> None:
    before = seen(bridge)
    for raw in (b"[" * 100_000, b'{"text": ' + b"[" * 100_000, b"{" * 100_000, b'{"text": NaN}',
                b'{"text": Infinity}', b"[1]", b'"text"', b"{nope", b"\xff\xfe"):
        r = await bridge.http.post("/v1/a2e/language_detect", content=raw, headers={"content-type": "application/json"})
        error = assert_error(r, 400, "bad_request")
        assert "Traceback" not in r.text and len(r.text) < 500, error
    # a lone surrogate is JSON but not Unicode text: the client refuses it by name
    r = await bridge.http.post("/v1/a2e/language_detect", content=b'{"text": "\\ud800"}',
                               headers={"content-type": "application/json"})
    assert assert_error(r, 422, "invalid_input")["details"][0]["loc"] == ["text"]
    assert seen(bridge) == before


async def test_honest_calls_still_work(bridge: Any) -> None:
    listing = {op["name"]: op for op in (await bridge.http.get("/v1/a2e")).json()["operations"]}
    assert "webhook_url" in listing["dubbing_start"]["optional"] and listing["voice_get"]["optional"] == {}
    r = await bridge.http.post("/v1/a2e/dubbing_start", json={
        "source_url": "https://media.example.com/talk.mp4", "target_lang": "de", "name": "talk",
        "source_lang": "en", "num_speakers": 2, "drop_background_audio": False})
    assert r.status_code == 200, r.text
    task_id = r.json()["data"]["_id"]
    r = await bridge.http.post("/v1/a2e/dubbing_get", json={"_id": task_id})
    assert r.status_code == 200 and r.json()["data"]["_id"] == task_id and r.json()["data"]["name"] == "talk"
    voice = (await bridge.http.post("/v1/a2e/voice_clone_train", json={
        "name": "mine", "voice_urls": ["https://media.example.com/v.mp3"], "gender": "male"})).json()["data"]
    assert (await bridge.http.post("/v1/a2e/voice_get", json={"_id": voice["_id"]})).json()["data"]["_id"] == voice["_id"]
    before = bridge.sim.state.counters.get("voice_delete", 0)
    assert (await bridge.http.post("/v1/a2e/voice_delete", json={"_id": voice["_id"]})).status_code == 200
    assert bridge.sim.state.counters["voice_delete"] == before + 1
    r = await bridge.http.post("/v1/a2e/dubbing_list", json={"pageNum": 1, "pageSize": 5})
    assert r.status_code == 200 and r.json()["data"]["count"] >= 1
    # an id of the right shape that A2E does not know is A2E's answer, not ours: 404 naming it
    r = await bridge.http.post("/v1/a2e/voice_get", json={"_id": GOOD_ID.upper()})
    assert assert_error(r, 404, "not_found")["details"][0]["loc"] == ["_id"]


async def test_dev_mode_is_protected_too(bridge_factory: Any) -> None:
    dev = await bridge_factory(event_source="none")
    before = seen(dev)
    r = await dev.http.post("/v1/a2e/voice_get", json={"_id": "../token/list"})
    assert_error(r, 422, "invalid_input")
    assert seen(dev) == before


# -- the CLI goes through the same client ----------------------------------------------------------
async def cli_call(sim_url: str, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("A2E_", "SIM_", "BRIDGE_"))}
    env.update({"A2E_API_KEY": "sk_cli_key", "A2E_BASE_URL": sim_url, "A2E_TIMEOUT": "3"})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bridge", "call", *args, env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_prints_a_clear_error_for_a_bad_id(sim: Any) -> None:
    before = sim.state.requests
    for payload, expected in [({"_id": "../token/list"}, "_id must be a 24-hex-digit A2E id"),
                              ({"_id": f"{GOOD_ID}\r\n"}, "_id must be a 24-hex-digit A2E id"),
                              ({"_id": 5}, "_id must be a 24-hex-digit A2E id"),
                              ({}, "needs _id")]:
        code, out = await cli_call(sim.url, "voice_get", "--json", json.dumps(payload))
        assert code == 2 and expected in out and "Traceback" not in out, out
    code, out = await cli_call(sim.url, "language_detect", "--json", "[" * 100_000)
    assert code == 2 and "nested too deeply" in out and "Traceback" not in out, out
    code, out = await cli_call(sim.url, "language_detect", "--json", '{"text": NaN}')
    assert code == 2 and "text cannot be sent as JSON" in out and "Traceback" not in out, out
    assert sim.state.requests == before
    code, out = await cli_call(sim.url, "voice_get", "--json", json.dumps({"_id": GOOD_ID}))
    assert code == 1 and "A2ENotFound" in out  # a well-formed id does reach A2E
    assert sim.state.requests == before + 1


# -- unit: building URLs ---------------------------------------------------------------------------
ID_ROWS = [row for row in ENDPOINTS.values() if row.path_params]


def test_every_path_parameter_is_an_object_id_and_fills_its_template() -> None:
    assert ID_ROWS and all(row.path_params == ("_id",) for row in ID_ROWS)
    for row in ID_ROWS:
        path = row.render_path({"_id": GOOD_ID})
        assert path == row.path.replace("{_id}", GOOD_ID) and row.path_pattern.fullmatch(path)
        for bad in BAD_IDS:
            with pytest.raises(A2EInvalidInput) as info:
                row.render_path({"_id": bad})
            assert info.value.field == "_id" and info.value.operation == row.name and not info.value.request_sent
        with pytest.raises(A2EInvalidInput, match="needs _id"):
            row.render_path({})


def test_the_template_pattern_accepts_only_the_row_path() -> None:
    row = ENDPOINTS["voice_get"]
    assert row.path_pattern.fullmatch(f"/api/v1/userVoice/{GOOD_ID}")
    for path in ("/api/v1/userVoice/../token/list", f"/api/v1/userVoice/{GOOD_ID}/x", "/api/v1/token/list",
                 f"/api/v1/userVoice/{GOOD_ID[:-1]}%2F", f"/api/v1/userVoice/{GOOD_ID}?a=1", f"//api/v1/userVoice/{GOOD_ID}"):
        assert not row.path_pattern.fullmatch(path), path
    assert ENDPOINTS["remaining_coins"].path_pattern.pattern == "/api/v1/user/remainingCoins"


async def recorded(base_url: str, operation: str, params: dict[str, Any]) -> httpx.Request:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"code": 0, "data": {}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await A2EClient("k", base_url, http=http).call(operation, params)
    (request,) = sent
    return request


@pytest.mark.parametrize("base_url", ["https://video.a2e.ai", "http://127.0.0.1:8100/prefix/"])
async def test_the_client_sends_exactly_the_row_url(base_url: str) -> None:
    prefix = httpx.URL(base_url).path.rstrip("/")
    for row in ENDPOINTS.values():
        params = {"_id": GOOD_ID} if row.path_params else {}
        request = await recorded(base_url, row.name, params)
        assert request.method == row.method
        assert request.url.raw_path.split(b"?")[0].decode() == prefix + row.path.replace("{_id}", GOOD_ID)
    request = await recorded(base_url, "get_qa_context", {"channel": "a/../b?c=d&e\r\n"})
    assert request.url.path == prefix + "/api/v1/streaming-avatar/get-qa-context"
    assert request.url.params["channel"] == "a/../b?c=d&e\r\n"  # a query value stays a query value


async def test_the_client_checks_the_final_url_whoever_built_the_path() -> None:
    """The template check does not trust render_path: a row that renders a foreign path is refused."""

    class Sneaky(Endpoint):
        def render_path(self, params: Any) -> str:
            return params["path"]

    base = ENDPOINTS["voice_get"]
    row = Sneaky(base.name, base.group, base.method, base.path, base.certainty, base.summary)
    client = A2EClient("k", "http://a2e.test/prefix")
    try:
        for path in ("/api/v1/userVoice/../token/list", "/api/v1/token/list", f"/api/v1/userVoice/{GOOD_ID}/x",
                     f"/api/v1/userVoice/{GOOD_ID[:20]}%2F..", "/../../_sim/state", f"@evil.example/api/v1/userVoice/{GOOD_ID}",
                     f":1/api/v1/userVoice/{GOOD_ID}"):
            with pytest.raises(A2EInvalidInput, match="refusing to send|cannot make a URL"):
                client._prepare(row, {"path": path})
        assert client._prepare(row, {"path": f"/api/v1/userVoice/{GOOD_ID}"}).url.path.endswith(GOOD_ID)
    finally:
        await client.aclose()
