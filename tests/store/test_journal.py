"""The operators' records in both stores: transcripts, the webhook outbox, the usage ledger; and the
v2 -> v3 migration of a database that already holds rooms."""

from __future__ import annotations

import json
import sqlite3

from bridge.rooms.journal import Delivery, TranscriptEntry, UsageRecord
from bridge.rooms.models import CloseReason, Room, RoomState
from bridge.store import SqliteRoomStore
from bridge.store.sqlite import MIGRATIONS, SCHEMA_VERSION, migrate


def entry(room_id: str, text: str, kind: str = "speak", **kw) -> TranscriptEntry:
    return TranscriptEntry(room_id=room_id, kind=kind, text=text, at=1000.0, **kw)  # type: ignore[arg-type]


def delivery(webhook_id: str, order_key: str, *, at: float = 0.0, tenant: str = "t") -> Delivery:
    return Delivery(webhook_id=webhook_id, tenant=tenant, event="room.opened", payload="{}", created_at=at,
                    order_key=order_key, room_id=order_key, next_attempt_at=at)


async def test_transcript_in_order_with_a_cursor_and_erasable(store):
    await store.add_transcript([entry("a", "one", origin="rest"), entry("b", "other")])
    await store.add_transcript([entry("a", "two", kind="ask", origin="ws-3"), entry("a", "hi", kind="reply")])
    got = await store.transcript("a")
    assert [(e.kind, e.text, e.origin) for e in got] == [("speak", "one", "rest"), ("ask", "two", "ws-3"),
                                                          ("reply", "hi", None)]
    assert got[0].id < got[1].id < got[2].id
    assert [e.text for e in await store.transcript("a", after=got[0].id)] == ["two", "hi"]
    assert [e.text for e in await store.transcript("a", after=got[0].id, limit=1)] == ["two"]
    assert await store.delete_transcript("a") == 3
    assert await store.transcript("a") == []
    assert [e.text for e in await store.transcript("b")] == ["other"]


async def test_a_big_batch_keeps_its_order_and_gives_each_entry_its_id(store):
    # more entries than one SQLite statement takes (bridge/store/sqlite_journal.py: ROWS_PER_INSERT)
    batch = [entry("a" if i % 3 else "b", f"line {i}") for i in range(700)]
    await store.add_transcript([entry("a", "before")])
    await store.add_transcript(batch)
    ids = [e.id for e in batch]
    assert ids == sorted(set(ids)) and ids[0] > 0
    for room in ("a", "b"):
        stored = await store.transcript(room, limit=1000)
        mine = [e for e in batch if e.room_id == room]
        assert [(e.id, e.text) for e in stored if e.text != "before"] == [(e.id, e.text) for e in mine]


async def test_outbox_is_idempotent_and_ordered_per_key(store):
    assert await store.enqueue(delivery("msg_1", "room-a", at=10))
    assert not await store.enqueue(delivery("msg_1", "room-a", at=10))  # the same event twice: once
    assert await store.enqueue(delivery("msg_2", "room-a", at=5))  # due earlier, but after msg_1 in its room
    assert await store.enqueue(delivery("msg_3", "room-b", at=20))
    assert [d.webhook_id for d in await store.due_deliveries(100, 10)] == ["msg_1", "msg_3"]
    assert [d.webhook_id for d in await store.due_deliveries(15, 10)] == ["msg_1"]
    assert await store.next_attempt_at() == 10
    first = (await store.due_deliveries(100, 10))[0]
    first.record_attempt(11.0, status=500, error="HTTP 500", seconds=0.01)
    first.next_attempt_at = 50.0
    await store.update_delivery(first)
    assert [d.webhook_id for d in await store.due_deliveries(40, 10)] == ["msg_3"]  # msg_2 still waits for msg_1
    first.status, first.delivered_at = "delivered", 60.0
    await store.update_delivery(first)
    assert [d.webhook_id for d in await store.due_deliveries(100, 10)] == ["msg_2", "msg_3"]
    listed = await store.deliveries(tenant="t", limit=10)
    assert [d.webhook_id for d in listed] == ["msg_3", "msg_2", "msg_1"]
    assert listed[2].attempts == 1 and listed[2].history[0]["status"] == 500
    assert [d.webhook_id for d in await store.deliveries(tenant="t", limit=10, before=listed[0].id)] == ["msg_2", "msg_1"]
    assert await store.deliveries(tenant="other", limit=10) == []


async def test_usage_ledger_charges_once(store):
    rec = UsageRecord(room_id="r1", tenant="t", opened_at=100.0, expire_seconds=600, charged=10)
    assert await store.charge(rec)
    assert not await store.charge(UsageRecord(room_id="r1", tenant="t", opened_at=200.0, expire_seconds=60,
                                              charged=1))  # a resumed room is not charged again
    rec.refunded, rec.closed_at, rec.used_seconds, rec.close_reason = 7, 250.0, 150.0, "client"
    await store.put_usage(rec)
    assert await store.get_usage("r1") == rec
    await store.charge(UsageRecord(room_id="r2", tenant="u", opened_at=300.0, expire_seconds=60, charged=1))
    assert [r.room_id for r in await store.usage_records(tenant=None, since=0, until=1000)] == ["r1", "r2"]
    assert [r.room_id for r in await store.usage_records(tenant="t", since=0, until=1000)] == ["r1"]
    assert await store.usage_records(tenant=None, since=100.5, until=300) == []


async def test_purge_takes_the_rooms_records_along(store):
    old = Room.new(tenant="t", avatar_id="av", expire_seconds=60, now=1.0)
    old.state = RoomState.CLOSING
    old.transition(RoomState.CLOSED, reason=CloseReason.CLIENT, now=50.0)
    kept = Room.new(tenant="t", avatar_id="av", expire_seconds=60, now=1.0)
    for room in (old, kept):
        await store.put(room)
        await store.add_transcript([entry(room.id, "hello")])
        await store.charge(UsageRecord(room_id=room.id, tenant="t", opened_at=1.0, expire_seconds=60, charged=1))
    settled = delivery("msg_old", old.id, at=10)
    await store.enqueue(settled)
    settled.status = "delivered"
    await store.update_delivery(settled)
    await store.enqueue(delivery("msg_pending", "x", at=10))
    assert await store.delete_closed_before(100.0) == 1
    assert await store.transcript(old.id) == [] and await store.get_usage(old.id) is None
    assert len(await store.transcript(kept.id)) == 1 and await store.get_usage(kept.id) is not None
    assert [d.webhook_id for d in await store.deliveries(tenant=None, limit=10)] == ["msg_pending"]


async def test_sqlite_migrates_a_v2_database_with_rooms(tmp_path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in MIGRATIONS[0] + MIGRATIONS[1]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 2")
    room = Room.new(tenant="t", avatar_id="av", expire_seconds=60, now=1.0)
    rec = room.to_record()
    conn.execute("INSERT INTO rooms VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (room.id, "t", "creating", 1.0, None, None, 0, json.dumps(rec)))
    conn.close()
    store = SqliteRoomStore(path)
    await store.open()
    try:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert (await store.get(room.id)) == room
        await store.add_transcript([entry(room.id, "after the upgrade")])
        assert [e.text for e in await store.transcript(room.id)] == ["after the upgrade"]
        assert await store.enqueue(delivery("msg_1", room.id))
    finally:
        await store.close()
    again = sqlite3.connect(path, isolation_level=None)
    assert migrate(again) == SCHEMA_VERSION  # nothing left to do
    again.close()
