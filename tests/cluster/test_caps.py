"""Fleet-wide caps: instances racing for a tenant's last room slot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.helpers import ACME, Fleet, create_room_sync, poll_sync


def test_three_instances_racing_for_the_last_room_exactly_one_wins(tmp_path: Path, redis_url: str) -> None:
    fleet = Fleet(tmp_path, redis_url, lease=1.0, BRIDGE_MAX_ROOMS_PER_TENANT="2")
    try:
        fleet.start("a", "b", "c")
        create_room_sync(fleet.urls["a"], ACME)
        with ThreadPoolExecutor(3) as pool:
            for _ in range(3):
                answers = list(pool.map(lambda name: httpx.post(f"{fleet.urls[name]}/v1/rooms", json={},
                                                                headers=ACME, timeout=10), "abc"))
                assert sorted(r.status_code for r in answers) == [201, 429, 429], [r.text for r in answers]
                assert all(r.json()["error"]["details"]["cap"] == "concurrent_rooms"
                           for r in answers if r.status_code == 429)
                won = next(r.json() for r in answers if r.status_code == 201)
                assert httpx.delete(f"{fleet.urls['c']}/v1/rooms/{won['id']}", headers=ACME, timeout=10).status_code == 200
                poll_sync(lambda channel=won["channel"]: channel not in fleet.open_channels(), timeout=10,
                          what="the winner left")
        assert len(fleet.open_channels()) == 1  # the first room; the winners were left, the losers never minted
        assert len(fleet.sim_state()["rooms"]) == 4
    finally:
        fleet.stop()
