"""Leaving a room at A2E, retried until A2E confirms or the room has expired upstream anyway.

A2E charges a room's whole ``expire_seconds`` when it is minted and refunds only on ``leave``: a leave
that fails is retried (with jittered backoff) until a minute past the room's expiry.
"""

from __future__ import annotations

import logging

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from bridge import metrics
from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError, A2ENotFound

from .models import Room
from .registry import Clock

log = logging.getLogger("bridge.rooms")


def reason_of(room: Room) -> str:
    return room.close_reason.value if room.close_reason else "client"


async def leave_upstream(a2e: A2EClient, room: Room, clock: Clock) -> None:
    """Leave the room's channel (``room.left_at`` once A2E confirmed; ``room.error`` if it never did)."""
    deadline = (room.expires_at or room.reserved_until) + 60
    try:
        async for attempt in AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.2, max=15),
            retry=retry_if_exception_type(A2EError),
            stop=lambda state: clock() > deadline,
            reraise=True,
        ):
            with attempt:
                try:
                    await a2e.leave(room.channel or "")
                    room.left_at = clock()
                except A2ENotFound:
                    pass  # A2E no longer knows the channel: nothing is being charged
    except A2EError as exc:
        room.error = f"leave never confirmed, room has expired upstream: {exc}"
        metrics.LEAVES_UNCONFIRMED.inc()
        log.error("room %s: %s", room.id, room.error, extra={"close_reason": reason_of(room)})
