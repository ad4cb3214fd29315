"""Fixtures for the websocket endpoint tests (helpers: ``tests/helpers.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import ACME, KEYS


@pytest.fixture
async def acme(bridge_factory: Callable[..., Any]) -> Any:
    """A bridge with two tenants (acme, globex); its HTTP client speaks as acme."""
    return await bridge_factory(api_keys=dict(KEYS), headers=ACME)
