"""Instances and room leases in Redis: who is alive, and which instance owns each live room.

An instance's heartbeat is its deadline in the ``instances`` zset; a room's lease is a key holding
its owner's id with a time to live of ``BRIDGE_LEASE_SECONDS``, taken with SET NX and renewed (or
released) only by its holder, in one Lua script each: a check and a write that no other instance's
write can come between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from . import keys

# For each lease: still mine (or gone, e.g. Redis restarted empty: taken again) -> 1; another's -> 0.
RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2]); out[i] = 1
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2]); out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Leases:
    def __init__(self, redis: Redis, me: str, lease_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.me, self.lease, self.clock = redis, me, lease_seconds, clock
        self._px = max(1, int(lease_seconds * 1000))
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)

    # -- instances -----------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        now = self.clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.INSTANCES, {self.me: now + self.lease})
            pipe.zremrangebyscore(keys.INSTANCES, "-inf", now - 3600)  # long dead: forgotten
            await pipe.execute()

    async def depart(self) -> None:
        await self.redis.zrem(keys.INSTANCES, self.me)

    async def peers_alive(self) -> list[str]:
        """The other instances whose heartbeat deadline has not passed."""
        alive = await self.redis.zrangebyscore(keys.INSTANCES, self.clock(), "+inf")
        return [str(i) for i in alive if i != self.me]

    # -- leases --------------------------------------------------------------------------------
    async def take(self, room_id: str) -> bool:
        return bool(await self.redis.set(keys.lease(room_id), self.me, nx=True, px=self._px))

    async def renew(self, room_ids: Sequence[str]) -> list[str]:
        """Renew this instance's leases; the rooms whose lease another instance holds now."""
        if not room_ids:
            return []
        kept = await self._renew(keys=[keys.lease(r) for r in room_ids], args=[self.me, self._px])
        return [r for r, ok in zip(room_ids, kept, strict=True) if not ok]

    async def release(self, room_id: str) -> None:
        await self._release(keys=[keys.lease(room_id)], args=[self.me])

    async def owners(self, room_ids: Sequence[str]) -> list[str | None]:
        if not room_ids:
            return []
        return [None if o is None else str(o) for o in await self.redis.mget([keys.lease(r) for r in room_ids])]

    async def owner(self, room_id: str) -> str | None:
        found = await self.redis.get(keys.lease(room_id))
        return None if found is None else str(found)
