"""The webhook outbox in Redis (mixed into :class:`RedisRoomStore`).

Each order key (a room) has a queue of its pending delivery ids; ``outbox:heads`` scores each order
key by when its oldest pending delivery is next due, so ``due_deliveries`` reads only what may be sent
now, and a later event of a room waits for the earlier ones. Enqueue and update are Lua scripts: the
queue and its head change together."""

from __future__ import annotations

from bridge.rooms.journal import Delivery

from .redis_base import RedisBase, chunks, guarded


class RedisOutbox(RedisBase):
    @guarded
    async def enqueue(self, delivery: Delivery) -> bool:
        k = self.keys
        new_id = int(await self.script("ENQUEUE")(
            keys=[k.outbox_ids, k.outbox_webhook_ids, k.outbox_data, k.outbox_all, k.outbox_tenant(delivery.tenant),
                  k.outbox_queue(delivery.order_key), k.outbox_heads, k.outbox_next, k.outbox_settled],
            args=[delivery.webhook_id, delivery.data(), delivery.order_key, delivery.status,
                  repr(delivery.next_attempt_at), repr(delivery.created_at)]))
        if not new_id:
            return False
        delivery.id = new_id
        return True

    async def _load(self, ids: list[str]) -> list[Delivery]:
        found = []
        for batch in chunks(ids):
            for delivery_id, data in zip(batch, await self.redis.hmget(self.keys.outbox_data, batch)):
                if data is not None:
                    found.append(Delivery.load(int(delivery_id), data))
        return found

    @guarded
    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        order_keys: list[str] = await self.redis.zrangebyscore(self.keys.outbox_heads, "-inf", repr(now))
        if not order_keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in order_keys:
                pipe.zrange(self.keys.outbox_queue(key), 0, 0)
            heads = [ids[0] for ids in await pipe.execute() if ids]
        due = sorted(await self._load(heads), key=lambda d: d.id)
        return [d for d in due if d.status == "pending" and d.next_attempt_at <= now][:limit]

    @guarded
    async def next_attempt_at(self) -> float | None:
        first = await self.redis.zrange(self.keys.outbox_heads, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    @guarded
    async def update_delivery(self, delivery: Delivery) -> None:
        k = self.keys
        await self.script("UPDATE_DELIVERY")(
            keys=[k.outbox_data, k.outbox_queue(delivery.order_key), k.outbox_heads, k.outbox_next,
                  k.outbox_settled],
            args=[delivery.id, delivery.data(), delivery.status, delivery.order_key,
                  repr(delivery.next_attempt_at), repr(delivery.created_at)])

    @guarded
    async def deliveries(self, *, tenant: str | None, limit: int, before: int | None = None,
                         status: str | None = None) -> list[Delivery]:
        index = self.keys.outbox_all if tenant is None else self.keys.outbox_tenant(tenant)
        top = "+inf" if before is None else f"({before}"
        found: list[Delivery] = []
        offset = 0
        while len(found) < limit:
            ids: list[str] = await self.redis.zrevrangebyscore(index, top, "-inf", start=offset,
                                                               num=max(limit, 50))
            if not ids:
                break
            offset += len(ids)
            found += [d for d in await self._load(ids) if status is None or d.status == status]
        return found[:limit]

    async def _purge_outbox(self, before: float) -> None:
        """Forget settled (delivered or failed) deliveries created before ``before``."""
        k = self.keys
        ids: list[str] = await self.redis.zrangebyscore(k.outbox_settled, "-inf", f"({before!r}")
        for batch in chunks(ids):
            settled = await self._load(batch)
            async with self.redis.pipeline(transaction=True) as pipe:
                for d in settled:
                    pipe.hdel(k.outbox_webhook_ids, d.webhook_id)
                    pipe.zrem(k.outbox_tenant(d.tenant), d.id)
                pipe.hdel(k.outbox_data, *batch)
                pipe.hdel(k.outbox_next, *batch)
                pipe.zrem(k.outbox_all, *batch)
                pipe.zrem(k.outbox_settled, *batch)
                await pipe.execute()
