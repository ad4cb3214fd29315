"""SQLite tables of transcripts and of the usage ledger (mixed into :class:`SqliteRoomStore`)."""

from __future__ import annotations

import sqlite3

from bridge.rooms.journal import TranscriptEntry, UsageRecord

from .sqlite_base import SqliteBase, transaction

ROWS_PER_INSERT = 300  # 3 parameters a row, well under SQLite's 32,766 per statement


class SqliteTranscript(SqliteBase):
    async def add_transcript(self, entries: list[TranscriptEntry]) -> None:
        """One multi-row INSERT per 300 entries, not one per entry: each statement releases and takes
        back the GIL, so a batch of lines cost the event loop a thread switch per line (issue 12).
        Under the transaction's write lock AUTOINCREMENT gives a statement's rows consecutive ids."""
        def add(conn: sqlite3.Connection) -> list[int]:
            rows = [(e.room_id, e.at, e.data()) for e in entries]
            ids: list[int] = []
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start:start + ROWS_PER_INSERT]
                values = ", ".join(["(?, ?, ?)"] * len(chunk))
                last = int(conn.execute(f"INSERT INTO transcript (room_id, at, data) VALUES {values}",
                                        [value for row in chunk for value in row]).lastrowid or 0)
                ids.extend(range(last - len(chunk) + 1, last + 1))
            return ids

        ids = await self._run(lambda c: transaction(c, add))
        for entry, entry_id in zip(entries, ids):
            entry.id = entry_id

    async def transcript(self, room_id: str, *, after: int = 0, limit: int = 1000) -> list[TranscriptEntry]:
        rows = await self._run(lambda c: c.execute(
            "SELECT id, data FROM transcript WHERE room_id = ? AND id > ? ORDER BY id LIMIT ?",
            (room_id, after, limit)).fetchall())
        return [TranscriptEntry.load(r[0], r[1]) for r in rows]

    async def delete_transcript(self, room_id: str) -> int:
        return await self._run(lambda c: c.execute("DELETE FROM transcript WHERE room_id = ?", (room_id,)).rowcount)


class SqliteUsage(SqliteBase):
    async def charge(self, record: UsageRecord) -> bool:
        return await self._run(lambda c: c.execute(
            "INSERT OR IGNORE INTO usage_ledger (room_id, tenant, opened_at, data) VALUES (?, ?, ?, ?)",
            (record.room_id, record.tenant, record.opened_at, record.data())).rowcount == 1)

    async def get_usage(self, room_id: str) -> UsageRecord | None:
        row = await self._run(lambda c: c.execute("SELECT data FROM usage_ledger WHERE room_id = ?",
                                                  (room_id,)).fetchone())
        return UsageRecord.load(row[0]) if row else None

    async def put_usage(self, record: UsageRecord) -> None:
        await self._run(lambda c: c.execute(
            """INSERT INTO usage_ledger (room_id, tenant, opened_at, data) VALUES (?, ?, ?, ?)
               ON CONFLICT (room_id) DO UPDATE SET data = excluded.data""",
            (record.room_id, record.tenant, record.opened_at, record.data())))

    async def usage_records(self, *, tenant: str | None, since: float, until: float) -> list[UsageRecord]:
        sql = "SELECT data FROM usage_ledger WHERE opened_at >= ? AND opened_at < ?"
        params: list[object] = [since, until]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        rows = await self._run(lambda c: c.execute(sql + " ORDER BY opened_at, room_id", params).fetchall())
        return [UsageRecord.load(r[0]) for r in rows]
