"""Reconnect policy: exponential backoff with full jitter.

Hand-rolled on purpose (a dozen lines), after weighing the libraries:

* websockets' reconnecting ``async for ws in connect(uri)`` retries one fixed URI, but ticket
  auth needs a fresh single-use ticket in the URL for every attempt; it backs off only when the
  handshake fails, while the bridge accepts the handshake first and then closes (4401/4404/4009,
  or a restart loop), so a flapping server would be retried in a tight loop; per-connection
  delays (``reconnect_delays``) only exist in recent releases and the iterator is absent from
  websockets 13, which this package supports.
* tenacity would fit, but the distribution promises only ``websockets`` and ``httpx``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Reconnect"]


@dataclass(frozen=True)
class Reconnect:
    """How a room's websocket comes back after an unexpected drop.

    Attempt ``n`` (from 0) waits a random time in ``[0, min(max_delay, initial_delay * 2**n)]``
    ("full jitter", so that many clients dropped at once do not come back in step).
    ``give_up_after`` bounds the whole outage in seconds (``None``: keep trying until the bridge
    says the room is gone).
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    give_up_after: float | None = None

    def delays(self) -> Iterator[float]:
        attempt = 0
        while True:
            yield random.uniform(0, min(self.max_delay, self.initial_delay * 2 ** min(attempt, 32)))
            attempt += 1
