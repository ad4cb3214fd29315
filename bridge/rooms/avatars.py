"""Which streaming avatars A2E offers, so that a room for an avatar A2E does not have is refused
(404 naming ``avatar_id``) before anything is minted or recorded.

The list is A2E's (``all_avatars``), kept ``TTL`` seconds; an avatar missing from it makes one
fresh read (at most every ``MISS_REFRESH`` seconds), so a new avatar is found at once. When A2E
cannot list them, no check is made: A2E decides at the mint.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.a2e.client import A2EClient
from bridge.a2e.errors import A2EError
from bridge.errors import NotFound, ValidationFailed, from_a2e

TTL = 300.0
MISS_REFRESH = 5.0


class AvatarCatalogue:
    def __init__(self, a2e: A2EClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.a2e, self.clock = a2e, clock
        self._ids: list[str] = []
        self._read_at = -float("inf")

    async def _read(self) -> list[str]:
        avatars = await self.a2e.streaming_avatars()
        self._ids = [str(a["_id"]) for a in avatars if isinstance(a, dict) and a.get("_id")]
        self._read_at = self.clock()
        return self._ids

    async def first(self) -> str:
        """A2E's first avatar (a room that names none); A2E's failure is the caller's answer."""
        try:
            ids = await self._read()
        except A2EError as exc:
            raise from_a2e(exc) from None
        if not ids:
            raise ValidationFailed("avatar_id is required: A2E lists no streaming avatars")
        return ids[0]

    async def check(self, avatar_id: str) -> None:
        """:class:`NotFound` (naming ``avatar_id``) if A2E surely has no such avatar."""
        age = self.clock() - self._read_at
        if avatar_id in self._ids and age < TTL:
            return
        if age >= MISS_REFRESH:
            try:
                await self._read()
            except A2EError:
                return  # cannot tell: A2E decides at the mint
        if avatar_id not in self._ids:
            raise NotFound(f"no streaming avatar {avatar_id!r} (GET /v1/avatars lists them)",
                           details=[{"loc": ["avatar_id"], "msg": "no such streaming avatar"}])
