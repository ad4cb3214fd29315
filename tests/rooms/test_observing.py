"""Which event source a room uses, and when the bridge must not join a room's channel itself."""

import asyncio
from typing import Any

import pytest

from bridge.rooms.observing import RoomObserving, choose_source, token_bound_uid
from bridge.rtc.accesstoken import ROLE_PUBLISHER, build_rtc_token

APP, CERT = "a2e5a2e5000000000000000000000001", "ce27ce27000000000000000000000001"

pytestmark = pytest.mark.in_process


def test_auto_picks_the_simulator_feed_on_the_simulator() -> None:
    assert choose_source("auto", on_simulator=True) == "simulator"
    assert choose_source("browser", on_simulator=True) == "browser"


def test_auto_without_the_agora_sdk_falls_back_to_browser_forwarding() -> None:
    assert choose_source("auto", on_simulator=False) == "browser"  # the SDK is not installable here


def test_token_binding_is_read_from_the_token() -> None:
    bound = build_rtc_token(APP, CERT, "ch", 4321, ROLE_PUBLISHER, 600)
    wildcard = build_rtc_token(APP, CERT, "ch", 0, ROLE_PUBLISHER, 600)
    assert token_bound_uid(bound) == "4321"
    assert token_bound_uid(wildcard) is None
    assert token_bound_uid("not a token") is None and token_bound_uid(None) is None


class RecordingObserver:
    name = "agora"

    def __init__(self) -> None:
        self.targets: list[Any] = []

    async def observe(self, target: Any) -> Any:
        self.targets.append(target)
        raise AssertionError("must not join a channel whose token is bound to the viewer")

    async def aclose(self) -> None:
        pass


async def test_agora_observer_does_not_join_with_a_uid_bound_token(bridge_factory: Any) -> None:
    bridge = await bridge_factory(event_source="none")  # so the only observer is the one below
    observer = RecordingObserver()
    bridge.rooms.lifecycle.on_open.append(RoomObserving(observer, "agora").start)  # hooked into the running app
    room = (await bridge.http.post("/v1/rooms", json={"expire_seconds": 60})).json()
    assert token_bound_uid(room["token"]) == str(room["uid"])  # the simulator binds tokens like A2E
    live = bridge.rooms.registry.live[room["id"]]
    agora_tasks = [t for t in live.tasks if t.get_name() == f"observe-{room['id']}"]
    await asyncio.wait_for(asyncio.gather(*agora_tasks, return_exceptions=True), 5)
    assert observer.targets == []
