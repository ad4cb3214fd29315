"""The ``store`` fixture: each store test runs on every RoomStore (memory, SQLite, Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.store import MemoryRoomStore, RedisRoomStore, RoomStore, SqliteRoomStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RoomStore]:
    s: RoomStore
    if request.param == "memory":
        s = MemoryRoomStore()
    elif request.param == "sqlite":
        s = SqliteRoomStore(tmp_path / "rooms.db")
    else:
        s = RedisRoomStore(request.getfixturevalue("redis_url"))
    await s.open()
    yield s
    await s.close()
