"""In-process transcripts, webhook outbox and usage ledger (mixed into :class:`MemoryRoomStore`).
Records are kept as their JSON text, so callers cannot mutate what is stored."""

from __future__ import annotations

import itertools

from bridge.rooms.journal import Delivery, TranscriptEntry, UsageRecord


class MemoryJournal:
    def __init__(self) -> None:
        self._transcript: dict[int, tuple[str, str]] = {}  # id -> (room id, data)
        self._outbox: dict[int, tuple[str, str]] = {}  # id -> (webhook id, data)
        self._usage: dict[str, str] = {}  # room id -> data
        self._ids = itertools.count(1)

    # -- transcripts -------------------------------------------------------------------------
    async def add_transcript(self, entries: list[TranscriptEntry]) -> None:
        for entry in entries:
            entry.id = next(self._ids)
            self._transcript[entry.id] = (entry.room_id, entry.data())

    async def transcript(self, room_id: str, *, after: int = 0, limit: int = 1000) -> list[TranscriptEntry]:
        found = (TranscriptEntry.load(i, data) for i, (rid, data) in sorted(self._transcript.items())
                 if rid == room_id and i > after)
        return list(itertools.islice(found, limit))

    async def delete_transcript(self, room_id: str) -> int:
        doomed = [i for i, (rid, _) in self._transcript.items() if rid == room_id]
        for i in doomed:
            del self._transcript[i]
        return len(doomed)

    # -- the webhook outbox ------------------------------------------------------------------
    async def enqueue(self, delivery: Delivery) -> bool:
        if any(wid == delivery.webhook_id for wid, _ in self._outbox.values()):
            return False
        delivery.id = next(self._ids)
        self._outbox[delivery.id] = (delivery.webhook_id, delivery.data())
        return True

    def _heads(self) -> list[Delivery]:
        heads: dict[str, Delivery] = {}
        for i, (_, data) in sorted(self._outbox.items()):
            delivery = Delivery.load(i, data)
            if delivery.status == "pending":
                heads.setdefault(delivery.order_key, delivery)
        return sorted(heads.values(), key=lambda d: d.id)

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        return [d for d in self._heads() if d.next_attempt_at <= now][:limit]

    async def next_attempt_at(self) -> float | None:
        return min((d.next_attempt_at for d in self._heads()), default=None)

    async def update_delivery(self, delivery: Delivery) -> None:
        self._outbox[delivery.id] = (delivery.webhook_id, delivery.data())

    async def deliveries(self, *, tenant: str | None, limit: int, before: int | None = None,
                         status: str | None = None) -> list[Delivery]:
        found = (Delivery.load(i, data) for i, (_, data) in sorted(self._outbox.items(), reverse=True)
                 if before is None or i < before)
        return list(itertools.islice((d for d in found if (tenant is None or d.tenant == tenant)
                                      and (status is None or d.status == status)), limit))

    # -- the usage ledger --------------------------------------------------------------------
    async def charge(self, record: UsageRecord) -> bool:
        if record.room_id in self._usage:
            return False
        self._usage[record.room_id] = record.data()
        return True

    async def get_usage(self, room_id: str) -> UsageRecord | None:
        data = self._usage.get(room_id)
        return UsageRecord.load(data) if data is not None else None

    async def put_usage(self, record: UsageRecord) -> None:
        self._usage[record.room_id] = record.data()

    async def usage_records(self, *, tenant: str | None, since: float, until: float) -> list[UsageRecord]:
        records = [UsageRecord.load(data) for data in self._usage.values()]
        return sorted((r for r in records if since <= r.opened_at < until and (tenant is None or r.tenant == tenant)),
                      key=lambda r: (r.opened_at, r.room_id))

    def _purge_journal(self, room_ids: list[str], before: float) -> None:
        """Forget the transcripts and ledger records of purged rooms, and settled deliveries before ``before``."""
        gone = set(room_ids)
        for i in [i for i, (rid, _) in self._transcript.items() if rid in gone]:
            del self._transcript[i]
        for rid in gone & set(self._usage):
            del self._usage[rid]
        for i, (_, data) in list(self._outbox.items()):
            delivery = Delivery.load(i, data)
            if delivery.status != "pending" and delivery.created_at < before:
                del self._outbox[i]
