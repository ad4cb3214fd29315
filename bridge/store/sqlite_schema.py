"""The SQLite schema, as an append-only list of migrations (``PRAGMA user_version`` counts them)."""

from __future__ import annotations

import sqlite3

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

# v3: what operators read about rooms: transcripts, the webhook outbox, the usage ledger
_SCHEMA_V3 = [
    """CREATE TABLE transcript (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id TEXT NOT NULL,
        at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX transcript_room ON transcript (room_id, id)",
    # AUTOINCREMENT: ids never come back after a purge, so a delivery's id orders it for good
    """CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        order_key TEXT NOT NULL,
        status TEXT NOT NULL,
        next_attempt_at REAL NOT NULL,
        created_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX webhook_outbox_order ON webhook_outbox (status, order_key, id)",
    "CREATE INDEX webhook_outbox_tenant ON webhook_outbox (tenant, id)",
    """CREATE TABLE usage_ledger (
        room_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        opened_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX usage_ledger_opened ON usage_ledger (opened_at, tenant)",
]

# MIGRATIONS[n] upgrades a database at user_version n to n + 1. Append only.
MIGRATIONS: list[list[str]] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3]
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
