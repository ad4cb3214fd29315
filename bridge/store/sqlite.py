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

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from bridge.rooms.models import LIVE_STATES, TERMINAL_STATES, Room, RoomState
from bridge.rooms.store import StaleRoomError

T = TypeVar("T")

_SCHEMA_V1 = [
    """CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        closed_at REAL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX rooms_tenant_created ON rooms (tenant, created_at)",
    "CREATE INDEX rooms_state ON rooms (state)",
]

# v2: the keyset (created_at, id) of GET /v1/rooms pages, per tenant, in one index
_SCHEMA_V2 = [
    "CREATE INDEX rooms_tenant_created_id ON rooms (tenant, created_at, id)",
    "DROP INDEX rooms_tenant_created",  # a prefix of the new one
]

# MIGRATIONS[n] upgrades a database at user_version n to n + 1. Append only.
MIGRATIONS: list[list[str]] = [_SCHEMA_V1, _SCHEMA_V2]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; each step commits with its user_version.

    Expects an autocommit connection (``isolation_level=None``). Refuses a
    database written by a newer bridge rather than guessing at its layout.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"room database schema v{current} is newer than this bridge (v{SCHEMA_VERSION})"
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[version]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _in(values: Iterable[str]) -> tuple[str, list[str]]:
    vals = list(values)
    return ",".join("?" * len(vals)), vals


class SqliteRoomStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("SqliteRoomStore is not open")
                return fn(self._conn)

        return await asyncio.to_thread(locked)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"could not enable WAL on {self.path} (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._conn = conn

    def _close_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- RoomStore --------------------------------------------------------

    async def open(self) -> None:
        if self._conn is None:
            await asyncio.to_thread(self._open_sync)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except (RuntimeError, sqlite3.Error):
            return False

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
        return await self._run(
            lambda c: c.execute(
                f"DELETE FROM rooms WHERE state IN ({marks}) AND closed_at < ?", [*terminal, ts]
            ).rowcount
        )
