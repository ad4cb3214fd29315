"""SimState on its own, with a hand-driven clock; and isolation between simulator instances."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.a2e.client import A2EClient
from bridge.simulator.state import AVATARS, SimConfig, SimError, SimState

AVATAR = AVATARS[0]["_id"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def test_ledger_charges_up_front_and_refunds_whole_unused_minutes() -> None:
    clock = Clock()
    state = SimState(SimConfig(coins=100), clock=clock)
    room = state.mint(AVATAR, 600)
    assert state.coins == 90 and state.rooms[room["channel"]].charged == 10
    clock.now += 150  # 450 s unused: 7.5 minutes, refunded 7
    state.leave(room["channel"])
    assert state.rooms[room["channel"]].refunded == 7 and state.coins == 97
    clock.now += 1000
    state.leave(room["channel"])  # again: nothing changes
    assert state.coins == 97


def test_expiry_is_exact_and_frees_capacity() -> None:
    clock = Clock()
    state = SimState(SimConfig(max_channels=1), clock=clock)
    channel = state.mint(AVATAR, 60)["channel"]
    clock.now += 59.999
    with pytest.raises(SimError) as info:
        state.mint(AVATAR, 60)
    assert info.value.code == 1001
    clock.now += 0.001
    assert [r.channel for r in state.refresh()] == [channel]
    assert state.refresh() == []  # reported once
    with pytest.raises(SimError) as info:
        state.command("speak", channel, "hi")
    assert info.value.code == 404
    state.mint(AVATAR, 60)


def test_cost_rounds_up_to_whole_minutes() -> None:
    state = SimState(SimConfig(coins=10), clock=Clock())
    state.mint(AVATAR, 1)
    assert state.coins == 9
    state.mint(AVATAR, 61)
    assert state.coins == 7


async def test_simulators_do_not_share_state(sim_factory: Any) -> None:
    first, second = await sim_factory(), await sim_factory()
    async with A2EClient("k", first.url) as a, A2EClient("k", second.url) as b:
        token = await a.call("api_token_generate", alias="only here")
        await a.call("background_add", img_url="https://media.example.com/bg.jpg")
        await a.agora_token(AVATAR, 60)
        assert [t["_id"] for t in await a.call("api_token_list")] == [token["_id"]]
        assert await b.call("api_token_list") == []
        assert len(await b.call("background_list")) == len(await a.call("background_list")) - 1
        assert second.state.rooms == {} and second.state.coins == second.state.config.coins


def test_running_tasks_cannot_be_deleted_but_settled_ones_can() -> None:
    clock = Clock()
    state = SimState(SimConfig(task_step_seconds=10), clock=clock)
    task_id = state.create_task("dubbing", {"source_url": "https://media.example.com/x.mp4"})["_id"]
    clock.now += 15  # "processing"
    with pytest.raises(SimError, match="processing") as info:
        state.delete_task("dubbing", task_id, only_settled=True)
    assert info.value.http_status == 400
    clock.now += 100  # completed
    state.delete_task("dubbing", task_id, only_settled=True)
    with pytest.raises(SimError) as info:
        state.task("dubbing", task_id)
    assert info.value.code == 404


def test_system_backgrounds_cannot_be_deleted() -> None:
    state = SimState(SimConfig(), clock=Clock())
    system = next(b for b in state.list_assets("background") if b["type"] == "default")
    with pytest.raises(SimError, match="system backgrounds"):
        state.delete_asset("background", system["_id"])
    custom = state.add_asset("background", {"img_url": "https://media.example.com/bg.jpg", "type": "custom"})
    state.delete_asset("background", custom["_id"])
    assert custom["_id"] not in {b["_id"] for b in state.list_assets("background")}
