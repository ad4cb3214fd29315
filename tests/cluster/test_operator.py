"""The operators' live-room list on a fleet: every live room of the fleet from whichever instance is
asked, each with the instance running it; what only that instance knows (clients, queue) from it alone."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cluster.test_forwarding import open_room_ws
from tests.helpers import ACME, Fleet, create_room_sync


async def live(fleet: Fleet, via: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        got = await http.get(f"{fleet.urls[via]}/v1/operator/rooms", headers=ACME)
    assert got.status_code == 200, got.text
    return {row["id"]: row for row in got.json()["rooms"]}


async def test_every_instance_lists_the_fleets_live_rooms(fleet: Fleet) -> None:
    fleet.start("a", "b")
    on_a, on_b = create_room_sync(fleet.urls["a"], ACME), create_room_sync(fleet.urls["b"], ACME)
    ws = await open_room_ws(fleet, "a", on_a["id"])  # a client of a's room, on a
    try:
        from_b, from_a = await live(fleet, "b"), await live(fleet, "a")
        assert set(from_b) == set(from_a) == {on_a["id"], on_b["id"]}
        assert from_a[on_a["id"]] | {"age_seconds": 0} == from_b[on_a["id"]] | {
            "age_seconds": 0, "clients": 1, "queue_depth": 0}  # b does not know a's clients and queue
        assert (from_a[on_a["id"]]["instance"], from_a[on_a["id"]]["clients"]) == ("a", 1)
        assert (from_b[on_a["id"]]["instance"], from_b[on_a["id"]]["clients"]) == ("a", None)
        assert (from_b[on_b["id"]]["instance"], from_b[on_b["id"]]["clients"]) == ("b", 0)
        assert from_a[on_b["id"]]["state"] == "open" and from_a[on_b["id"]]["instance"] == "b"
    finally:
        await ws.close()
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.delete(f"{fleet.urls['b']}/v1/rooms/{on_a['id']}", headers=ACME)).status_code == 200
    assert set(await live(fleet, "a")) == set(await live(fleet, "b")) == {on_b["id"]}  # closed through b: gone everywhere
