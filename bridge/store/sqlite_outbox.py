"""The SQLite webhook outbox (mixed into :class:`SqliteRoomStore`): an event is durable once
enqueued, so a crash loses none; each ``order_key`` (a room) is delivered oldest first."""

from __future__ import annotations

import sqlite3

from bridge.rooms.journal import Delivery

from .sqlite_base import SqliteBase

# The oldest pending delivery of each order key: a later event of a room waits for the earlier ones.
_HEADS = """FROM webhook_outbox o WHERE status = 'pending'
            AND id = (SELECT MIN(id) FROM webhook_outbox p WHERE p.status = 'pending' AND p.order_key = o.order_key)"""


class SqliteOutbox(SqliteBase):
    async def enqueue(self, delivery: Delivery) -> bool:
        def insert(conn: sqlite3.Connection) -> int | None:
            cur = conn.execute(
                """INSERT OR IGNORE INTO webhook_outbox
                     (webhook_id, tenant, order_key, status, next_attempt_at, created_at, data)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (delivery.webhook_id, delivery.tenant, delivery.order_key, delivery.status,
                 delivery.next_attempt_at, delivery.created_at, delivery.data()))
            return cur.lastrowid if cur.rowcount == 1 else None

        row_id = await self._run(insert)
        if row_id is None:
            return False
        delivery.id = row_id
        return True

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT id, data {_HEADS} AND next_attempt_at <= ? ORDER BY id LIMIT ?", (now, limit)).fetchall())
        return [Delivery.load(r[0], r[1]) for r in rows]

    async def next_attempt_at(self) -> float | None:
        row = await self._run(lambda c: c.execute(f"SELECT MIN(next_attempt_at) {_HEADS}").fetchone())
        return float(row[0]) if row and row[0] is not None else None

    async def update_delivery(self, delivery: Delivery) -> None:
        await self._run(lambda c: c.execute(
            "UPDATE webhook_outbox SET status = ?, next_attempt_at = ?, data = ? WHERE id = ?",
            (delivery.status, delivery.next_attempt_at, delivery.data(), delivery.id)))

    async def deliveries(self, *, tenant: str | None, limit: int, before: int | None = None,
                         status: str | None = None) -> list[Delivery]:
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (("tenant = ?", tenant), ("id < ?", before), ("status = ?", status)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._run(lambda c: c.execute(
            f"SELECT id, data FROM webhook_outbox {where} ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall())
        return [Delivery.load(r[0], r[1]) for r in rows]
