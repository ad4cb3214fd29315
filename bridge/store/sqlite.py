"""SQLite RoomStore: survives ``kill -9`` so recovery can give back live rooms.

Why stdlib ``sqlite3`` in ``asyncio.to_thread`` rather than aiosqlite:
aiosqlite is the same stdlib module on a worker thread, so it would add a
dependency without adding capability; and ``put`` needs a read-check-write
transaction (the version check) that must not interleave with other
coroutines on the shared connection, which would need our own lock anyway.
Every call here is a single small statement or transaction, so one connection
(``check_same_thread=False``) serialised by a ``threading.Lock`` is enough.

Durability: WAL journal + ``synchronous=FULL`` makes each commit fsync the
WAL before ``put`` returns; ``busy_timeout`` covers another process (e.g. an
admin CLI) briefly holding the write lock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from bridge.rooms.models import LIVE_STATES, TERMINAL_STATES, Room, RoomState
from bridge.rooms.store import StaleRoomError

from .sqlite_base import transaction
from .sqlite_journal import SqliteTranscript, SqliteUsage
from .sqlite_outbox import SqliteOutbox
from .sqlite_schema import MIGRATIONS, SCHEMA_VERSION, migrate

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteRoomStore", "migrate"]

def _in(values: Iterable[str]) -> tuple[str, list[str]]:
    vals = list(values)
    return ",".join("?" * len(vals)), vals


class SqliteRoomStore(SqliteTranscript, SqliteOutbox, SqliteUsage):
    """Rooms here; transcripts and the ledger in ``sqlite_journal.py``, the outbox in ``sqlite_outbox.py``."""

    async def put(self, room: Room) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT version FROM rooms WHERE id = ?", (room.id,)).fetchone()
                if row is not None and row[0] != room.version:
                    raise StaleRoomError(room.id, room.version, row[0])
                new_version = room.version + 1
                rec = room.to_record()
                rec["version"] = new_version
                conn.execute(
                    """INSERT INTO rooms
                         (id, tenant, state, created_at, expires_at, closed_at, version, data)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (id) DO UPDATE SET
                         tenant = excluded.tenant, state = excluded.state,
                         created_at = excluded.created_at, expires_at = excluded.expires_at,
                         closed_at = excluded.closed_at, version = excluded.version,
                         data = excluded.data""",
                    (
                        room.id,
                        room.tenant,
                        room.state.value,
                        room.created_at,
                        room.expires_at,
                        room.closed_at,
                        new_version,
                        json.dumps(rec, separators=(",", ":")),
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Bumped here, after the commit, so the object matches the store even
            # if the awaiting task was cancelled meanwhile.
            room.version = new_version

        await self._run(do)

    async def get(self, room_id: str) -> Room | None:
        row = await self._run(
            lambda c: c.execute("SELECT data FROM rooms WHERE id = ?", (room_id,)).fetchone()
        )
        return Room.from_record(json.loads(row[0])) if row else None

    async def _select(self, where: str, params: list[object], limit: int | None = None) -> list[Room]:
        sql = f"SELECT data FROM rooms {where} ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [Room.from_record(json.loads(r[0])) for r in rows]

    async def list_rooms(
        self, *, tenant: str | None = None, states: Iterable[RoomState] | None = None
    ) -> list[Room]:
        clauses: list[str] = []
        params: list[object] = []
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if states is not None:
            marks, vals = _in(RoomState(s).value for s in states)
            clauses.append(f"state IN ({marks})")
            params.extend(vals)
        return await self._select("WHERE " + " AND ".join(clauses) if clauses else "", params)

    async def page(
        self, *, tenant: str, limit: int, states: Iterable[RoomState] | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Room]:
        clauses: list[str] = ["tenant = ?"]
        params: list[object] = [tenant]
        if states is not None:
            marks, vals = _in(RoomState(s).value for s in states)
            clauses.append(f"state IN ({marks})")
            params.extend(vals)
        if before is not None:
            clauses.append("(created_at, id) < (?, ?)")  # a row value: walks the index from the cursor
            params.extend(before)
        return await self._select("WHERE " + " AND ".join(clauses), params, limit)

    async def list_live(self) -> list[Room]:
        return await self.list_rooms(states=LIVE_STATES)

    async def usage_seconds(self, tenant: str, since: float) -> float:
        # Only rooms that can have cost something after `since`; the math
        # itself lives in Room.usage_seconds so both stores agree.
        marks, live = _in(s.value for s in LIVE_STATES)
        rooms = await self._select(
            f"WHERE tenant = ? AND (state IN ({marks}) OR (state = ? AND closed_at > ?))",
            [tenant, *live, RoomState.CLOSED.value, since],
        )
        return sum(r.usage_seconds(since) for r in rooms)

    async def delete_closed_before(self, ts: float) -> int:
        marks, terminal = _in(s.value for s in TERMINAL_STATES)
        doomed = f"SELECT id FROM rooms WHERE state IN ({marks}) AND closed_at < ?"

        def purge(conn: sqlite3.Connection) -> int:
            conn.execute(f"DELETE FROM transcript WHERE room_id IN ({doomed})", [*terminal, ts])
            conn.execute(f"DELETE FROM usage_ledger WHERE room_id IN ({doomed})", [*terminal, ts])
            conn.execute("DELETE FROM webhook_outbox WHERE status != 'pending' AND created_at < ?", [ts])
            return conn.execute(f"DELETE FROM rooms WHERE state IN ({marks}) AND closed_at < ?",
                                [*terminal, ts]).rowcount

        return await self._run(lambda c: transaction(c, purge))
