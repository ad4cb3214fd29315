"""Transcripts and the usage ledger in Redis (mixed into :class:`RedisRoomStore`).

A room's transcript is a sorted set scored by entry id (ids from one counter, so they only grow):
``?after=`` is a range read. Ledger records are strings, indexed by opened_at overall and per tenant."""

from __future__ import annotations

from bridge.rooms.journal import TranscriptEntry, UsageRecord

from .redis_base import RedisBase, chunks, guarded


class RedisTranscript(RedisBase):
    @guarded
    async def add_transcript(self, entries: list[TranscriptEntry]) -> None:
        if not entries:
            return
        last = int(await self.redis.incrby(self.keys.transcript_ids, len(entries)))
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry_id, entry in enumerate(entries, start=last - len(entries) + 1):
                pipe.zadd(self.keys.transcript(entry.room_id), {f"{entry_id} {entry.data()}": entry_id})
            await pipe.execute()
        for entry_id, entry in enumerate(entries, start=last - len(entries) + 1):
            entry.id = entry_id

    @guarded
    async def transcript(self, room_id: str, *, after: int = 0, limit: int = 1000) -> list[TranscriptEntry]:
        members = await self.redis.zrangebyscore(self.keys.transcript(room_id), f"({after}", "+inf",
                                                 start=0, num=limit)
        found = []
        for member in members:
            entry_id, data = member.split(" ", 1)
            found.append(TranscriptEntry.load(int(entry_id), data))
        return found

    @guarded
    async def delete_transcript(self, room_id: str) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self.keys.transcript(room_id))
            pipe.delete(self.keys.transcript(room_id))
            count, _ = await pipe.execute()
        return int(count)


class RedisUsage(RedisBase):
    @guarded
    async def charge(self, record: UsageRecord) -> bool:
        k = self.keys
        return bool(await self.script("CHARGE")(
            keys=[k.usage(record.room_id), k.usage_opened, k.usage_tenant(record.tenant)],
            args=[record.data(), repr(record.opened_at), record.room_id]))

    @guarded
    async def get_usage(self, room_id: str) -> UsageRecord | None:
        data = await self.redis.get(self.keys.usage(room_id))
        return UsageRecord.load(data) if data is not None else None

    @guarded
    async def put_usage(self, record: UsageRecord) -> None:
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(k.usage(record.room_id), record.data())
            pipe.zadd(k.usage_opened, {record.room_id: record.opened_at})
            pipe.zadd(k.usage_tenant(record.tenant), {record.room_id: record.opened_at})
            await pipe.execute()

    @guarded
    async def usage_records(self, *, tenant: str | None, since: float, until: float) -> list[UsageRecord]:
        index = self.keys.usage_opened if tenant is None else self.keys.usage_tenant(tenant)
        # equal opened_at: by room id, as the zset orders them
        ids: list[str] = await self.redis.zrangebyscore(index, repr(since), f"({until!r}")
        records = []
        for batch in chunks(ids):
            for data in await self.redis.mget([self.keys.usage(i) for i in batch]):
                if data is not None:
                    records.append(UsageRecord.load(data))
        return records
