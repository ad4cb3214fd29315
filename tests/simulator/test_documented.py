"""The simulator against A2E's documents: every documented answer (``documented.py``) in its documented
shape, the seed's exchange of coins for diamonds, and the list operations public callers send as GET.
Over loopback, through the shared A2E client; the simulator's clock is moved, never waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS, Certainty
from bridge.a2e.errors import A2EInsufficientCredits
from bridge.simulator.state import AVATARS
from tests.helpers import FakeClock, Sim

from .documented import EXAMPLES, Documented, json_type, mismatches

MEDIA = "https://media.example.com"
AVATAR = AVATARS[0]["_id"]


class World:
    def __init__(self, sim: Sim, a2e: A2EClient, clock: FakeClock) -> None:
        self.sim, self.a2e, self.clock = sim, a2e, clock

    async def envelope(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.a2e.call_envelope(operation, params)

    async def call(self, operation: str, **params: Any) -> Any:
        return (await self.envelope(operation, **params))["data"]


@pytest.fixture
async def world(sim_factory: Callable[..., Awaitable[Sim]]) -> AsyncIterator[World]:
    clock = FakeClock()
    sim = await sim_factory(clock=clock, task_step_seconds=1.0)
    async with A2EClient("test-key", sim.url, timeout=5, backoff_max=0.01) as a2e:
        yield World(sim, a2e, clock)


async def answer(world: World, operation: str) -> dict[str, Any]:
    """The simulator's answer to ``operation`` in the state its documented example shows."""
    w = world
    if operation == "ask":
        room = await w.call("agora_token", avatar_id=AVATAR, expire_seconds=60)
        return await w.envelope("ask", channel=room["channel"], text="hello")
    if operation == "face_swap_task_status":  # one task, processing
        await w.call("face_swap_task_add", name="xxxx", face_url=f"{MEDIA}/f.jpg", video_url=f"{MEDIA}/v.mp4")
        w.clock.advance(1.5)
        return await w.envelope("face_swap_task_status")
    if operation == "face_swap_task_list":  # one task, completed
        await w.call("face_swap_task_add", name="xxxx", face_url=f"{MEDIA}/f.jpg", video_url=f"{MEDIA}/v.mp4")
        w.clock.advance(5)
        return await w.envelope("face_swap_task_list", pageNum=1, pageSize=10)
    if operation == "video_status":
        task = await w.call("video_generate", anchor_id=AVATAR, anchor_type=0, audioSrc=f"{MEDIA}/a.mp3")
        w.clock.advance(42)
        return await w.envelope("video_status", _id=task["_id"])
    if operation == "image_to_video_get":
        task = await w.call("image_to_video_start", name="Test name", image_url=f"{MEDIA}/i.png", prompt="p",
                            negative_prompt="n")
        w.clock.advance(5)
        return await w.envelope("image_to_video_get", _id=task["_id"])
    params: dict[str, Any] = {
        "agora_token": {"avatar_id": AVATAR, "expire_seconds": 60},
        "api_token_generate": {"alias": "any string for your record"},
        "exchange_diamonds": {"diamonds": 1},
        "save_url": {"url": f"{MEDIA}/file.mp4"},
        "face_swap_image_add": {"face_url": f"{MEDIA}/ab2f.jpg"},
        "face_swap_preview_add": {"face_url": f"{MEDIA}/f.jpg", "video_url": f"{MEDIA}/x.jpeg"},
        "face_swap_task_add": {"name": "xxxx", "face_url": f"{MEDIA}/f.jpg", "video_url": f"{MEDIA}/v.mp4"},
        "image_to_video_start": {"name": "Test name", "image_url": f"{MEDIA}/i.png", "prompt": "p",
                                 "negative_prompt": "n"},
    }.get(operation, {})
    return await w.envelope(operation, **params)


@pytest.mark.parametrize("doc", EXAMPLES, ids=lambda d: d.operation)
async def test_the_documented_answer(doc: Documented, world: World) -> None:
    got = await answer(world, doc.operation)
    assert got["code"] == 0
    if "trace_id" in doc.example:
        assert isinstance(got["trace_id"], str) and got["trace_id"]
    problems = mismatches(doc.example["data"], got["data"], doc.also, doc.complete)
    assert not problems, f"{doc.operation} ({doc.source}): {problems}\nanswered: {got['data']}"


def test_the_comparison_catches_what_the_documents_forbid() -> None:
    """The fixtures bite: A2E's spellings and types, not near misses."""
    [doc] = [d for d in EXAMPLES if d.operation == "face_swap_task_add"]
    row = dict(doc.example["data"])
    assert mismatches(doc.example["data"], row, doc.also, doc.complete) == []
    row["failed_message"] = row.pop("faild_message")  # the "fixed" spelling is not A2E's
    assert mismatches(doc.example["data"], row, doc.also, doc.complete) == [
        "data: no 'faild_message'", "data: 'failed_message' is not documented"]
    [status] = [d for d in EXAMPLES if d.operation == "face_swap_task_status"]
    as_string = [{**status.example["data"][0], "error_code": "0"}]
    assert mismatches(status.example["data"], as_string, status.also, status.complete) == [
        "data[0].error_code: a str, documented ['int', 'null']"]
    [video] = [d for d in EXAMPLES if d.operation == "video_status"]
    as_int = [{**video.example["data"][0], "anchor_type": 0}]
    assert mismatches(video.example["data"], as_int, video.also, video.complete) == [
        "data[0].anchor_type: a int, documented ['str']"]


async def test_face_swap_failures_keep_a2es_spelling(world: World) -> None:
    preview = await world.call("face_swap_preview_add", face_url=f"{MEDIA}/fail.jpg", video_url=f"{MEDIA}/x.jpeg")
    task = await world.call("face_swap_task_add", name="fail", face_url=f"{MEDIA}/f.jpg", video_url=f"{MEDIA}/v.mp4")
    world.clock.advance(5)
    [failed] = await world.call("face_swap_preview_status", _id=preview["_id"])
    assert failed["current_status"] == "failed" and failed["faild_message"] and "failed_message" not in failed
    record = await world.call("face_swap_task_get", _id=task["_id"])
    assert record["current_status"] == "failed" and record["error_code"] == "1" and record["faild_message"]
    assert record["completed_time"] is not None and record["processing_time"] is not None


# -- exchangeDiamonds: coins spent for diamonds -------------------------------------------------------------------
async def test_exchange_diamonds_spends_100_coins_each(world: World) -> None:
    assert ENDPOINTS["exchange_diamonds"].certainty is Certainty.DOCUMENTED
    before = await world.call("remaining_coins")
    envelope = await world.envelope("exchange_diamonds", diamonds=2)
    assert envelope["code"] == 0 and envelope["data"] == {}
    after = await world.call("remaining_coins")
    assert after == {"coins": before["coins"] - 200, "diamonds": before["diamonds"] + 2}


async def test_too_few_coins_for_diamonds_is_refused_as_a2e_refuses(world: World) -> None:
    world.sim.state.coins = 150
    async with httpx.AsyncClient(base_url=world.sim.url, headers={"Authorization": "Bearer k"}) as http:
        r = await http.post("/api/v1/user/exchangeDiamonds", json={"diamonds": 2})
    body = r.json()
    assert r.status_code == 200 and body["code"] != 0 and "coins" in body["msg"]  # A2E's envelope refusal
    with pytest.raises(A2EInsufficientCredits):
        await world.call("exchange_diamonds", diamonds=2)
    assert await world.call("remaining_coins") == {"coins": 150, "diamonds": world.sim.state.diamonds}
    assert world.sim.state.coins == 150  # nothing spent
    assert await world.call("exchange_diamonds", diamonds=1) == {}
    assert world.sim.state.coins == 50


# -- the list operations newer documents and public callers send as GET --------------------------------------------
@pytest.mark.parametrize("operation", ["character_list", "video_list", "voice_list"])
async def test_lists_answer_get_and_post_alike(operation: str, world: World) -> None:
    row = ENDPOINTS[operation]
    assert row.method == "POST" and "GET" in row.methods
    await world.call("video_generate", anchor_id=AVATAR, anchor_type=0, audioSrc=f"{MEDIA}/a.mp3")
    params = {"character_list": {"type": "default"}, "video_list": {"current": 1, "pageSize": 5}}.get(operation, {})
    async with httpx.AsyncClient(base_url=world.sim.url, headers={"Authorization": "Bearer k"}) as http:
        posted = (await http.post(row.path, json=params)).json()
        got = await http.get(row.path, params=params)
    assert got.status_code == 200, got.text
    assert got.json()["code"] == 0 and got.json()["data"] == posted["data"]
    assert json_type(got.json()["data"]) in ("list", "dict")
    if operation == "character_list":  # the query string filters as the body does
        assert {a["type"] for a in got.json()["data"]} == {"default"}


async def test_remaining_coins_answers_post_too(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.sim.url, headers={"Authorization": "Bearer k"}) as http:
        r = await http.post("/api/v1/user/remainingCoins")
    assert r.json()["code"] == 0 and set(r.json()["data"]) == {"coins", "diamonds"}
