"""Hand-over: SIGTERM with peers alive gives the rooms to them (no leave), clients reconnect at once."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from a2e_bridge_client import BridgeClient, CommandError, ConnectionLost, ConnectionState, Reconnect, Room

from tests.helpers import Balancer, Fleet, poll


def test_a_rolling_restart_leaves_nothing_and_loses_no_acked_command(fleet: Fleet) -> None:
    """SIGTERM, start again, one instance at a time, all three, with six rooms live and a client of
    each speaking through a load balancer: every instance exits 0, no room is left or minted again,
    everything acked was said (in order), and every client is back."""
    fleet.start("a", "b", "c")
    acked: dict[str, list[str]] = defaultdict(list)
    refused: list[str] = []

    async def scenario() -> list[dict[str, str]]:
        async with Balancer(list(fleet.urls.values())) as lb, BridgeClient(
                lb.url, "key-acme", reconnect=Reconnect(initial_delay=0.05, max_delay=0.5), connect_timeout=15) as client:
            rooms = [await client.create_room() for _ in range(6)]  # spread over the instances by the balancer
            for room in rooms:
                await room.connect()
            stop = asyncio.Event()

            async def speaker(room: Room) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    text = f"Line {n}."
                    try:
                        await room.speak(text)
                        acked[room.id].append(text)
                    except (CommandError, ConnectionLost) as exc:  # not acked: the client may say it again
                        refused.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.05)

            speakers = [asyncio.create_task(speaker(room)) for room in rooms]

            def acked_counts() -> dict[str, int]:
                return {r.id: len(acked[r.id]) for r in rooms}

            def progressed(since: dict[str, int], by: int) -> bool:
                return all(len(acked[r.id]) >= since[r.id] + by for r in rooms)

            await poll(lambda: progressed(defaultdict(int), 2), timeout=15, what="every room speaking")
            for name in ("a", "b", "c"):
                status = await asyncio.to_thread(fleet.terminate, name)
                assert status == 0, fleet.instances[name].tail()
                assert "handing" in fleet.instances[name].output, fleet.instances[name].tail()
                await asyncio.to_thread(fleet.start, name)
                since = {r.id: len(acked[r.id]) for r in rooms}
                await poll(lambda: progressed(since, 2), timeout=20,  # noqa: B023 - polled at once
                           what=f"every room speaking again after {name}'s restart: {dict(acked_counts())} "
                                f"{[r.state for r in rooms]} {refused[-5:]}\n{fleet.logs()}")
            stop.set()
            await asyncio.gather(*speakers)
            assert all(room.state is ConnectionState.OPEN for room in rooms)  # every client back
            return [room.info for room in rooms]

    infos = asyncio.run(scenario())
    state = fleet.sim_state()
    assert len(state["rooms"]) == 6  # none minted again
    assert fleet.open_channels() == {i["channel"] for i in infos}  # none left
    for info in infos:
        said = fleet.said(info["channel"])
        lines = acked[info["id"]]
        assert lines, info["id"]
        # every acked line was said, in the order it was acked (a refused one may be said or not)
        position = {text: i for i, text in enumerate(said)}
        assert all(text in position for text in lines), (set(lines) - set(said), refused)
        assert [position[t] for t in lines] == sorted(position[t] for t in lines)
