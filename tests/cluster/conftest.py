"""Fixtures of the many-instances tests: a fleet of real processes on the session's redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import Fleet


@pytest.fixture
def fleet(tmp_path: Path, redis_url: str) -> Iterator[Fleet]:
    """A simulator and no instance yet (``fleet.start("a", "b", "c")``); lease 1 s."""
    made = Fleet(tmp_path, redis_url, lease=1.0)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The fleet's Redis, read directly (who owns what)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
