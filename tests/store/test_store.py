import asyncio
import signal
import sqlite3
import sys
import textwrap

import pytest

from bridge.rooms.models import CloseReason, Room, RoomState
from bridge.store import (
    MemoryRoomStore,
    RedisRoomStore,
    RoomStore,
    SqliteRoomStore,
    StaleRoomError,
    open_store,
)
from bridge.store.sqlite import MIGRATIONS, SCHEMA_VERSION, migrate

S = RoomState



def room(
    created_at: float,
    *,
    tenant: str = "t1",
    state: RoomState = S.OPEN,
    expire: int = 600,
    rid: str | None = None,
) -> Room:
    r = Room.new(tenant=tenant, avatar_id="av", expire_seconds=expire, now=created_at)
    if rid:
        r.id = rid
    r.state = state
    if state is not S.CREATING:
        r.expires_at = created_at + expire
    return r


def closed(created_at: float, closed_at: float, **kw) -> Room:
    r = room(created_at, state=S.CLOSING, **kw)
    r.transition(S.CLOSED, reason=CloseReason.CLIENT, now=closed_at)
    return r


def test_protocol(tmp_path):
    assert isinstance(MemoryRoomStore(), RoomStore)
    assert isinstance(SqliteRoomStore(tmp_path / "x.db"), RoomStore)
    assert isinstance(RedisRoomStore("redis://127.0.0.1:1/0"), RoomStore)


async def test_put_get_round_trip(store):
    r = room(1000.0)
    r.channel, r.app_id, r.token, r.uid = "ch", "app", "tok", 9
    r.qa_context, r.error = "ctx", "err"
    await store.put(r)
    assert r.version == 1
    got = await store.get(r.id)
    assert got == r
    assert got is not r
    assert got.state is S.OPEN
    assert await store.get("rm_nope") is None


async def test_copies_in_and_out(store):
    r = room(1000.0)
    await store.put(r)
    r.token = "mutated after put"
    got = await store.get(r.id)
    assert got.token is None
    got.token = "mutated after get"
    assert (await store.get(r.id)).token is None


async def test_replace_bumps_version_and_rejects_stale(store):
    r = room(1000.0)
    await store.put(r)
    other = await store.get(r.id)
    r.transition(S.CLOSING, reason=CloseReason.IDLE, now=1100.0)
    await store.put(r)
    assert r.version == 2
    await store.put(r)  # same object again is fine
    assert (await store.get(r.id)).state is S.CLOSING
    other.transition(S.CLOSING, reason=CloseReason.CLIENT, now=1101.0)
    with pytest.raises(StaleRoomError):
        await store.put(other)
    stored = await store.get(r.id)
    assert stored.close_reason is CloseReason.IDLE and stored.version == 3


async def test_list_filters_and_order(store):
    a = room(1000.0, tenant="t1")
    b = room(3000.0, tenant="t2", state=S.CREATING)
    c = closed(2000.0, 2100.0, tenant="t1")
    d = room(2000.0, tenant="t1", rid="rm_zzz")  # same created_at as c: id breaks the tie
    c.id = "rm_aaa"
    for r in (a, b, c, d):
        await store.put(r)
    ids = lambda rooms: [x.id for x in rooms]  # noqa: E731
    assert ids(await store.list_rooms()) == [b.id, d.id, c.id, a.id]
    assert ids(await store.list_rooms(tenant="t1")) == [d.id, c.id, a.id]
    assert ids(await store.list_rooms(states=[S.OPEN])) == [d.id, a.id]
    assert ids(await store.list_rooms(tenant="t1", states={S.CLOSED, S.CREATING})) == [c.id]
    assert await store.list_rooms(states=[]) == []
    assert await store.list_rooms(tenant="nobody") == []


async def test_page_walks_a_tenant_newest_first_by_keyset(store):
    rooms = [room(1000.0 + i // 3, rid=f"rm_{i:03d}") for i in range(10)]  # ties on created_at: id decides
    rooms += [room(1000.0, tenant="t2"), closed(1001.0, 1050.0, rid="rm_x")]
    for r in rooms:
        await store.put(r)
    everything = [x.id for x in await store.list_rooms(tenant="t1")]
    pages, before = [], None
    while True:
        page = await store.page(tenant="t1", limit=4, before=before)
        if not page:
            break
        assert len(page) <= 4
        pages.append([x.id for x in page])
        before = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [4, 4, 3]
    assert sum(pages, []) == everything  # same order as list(), nothing twice, nothing missed
    live = await store.page(tenant="t1", limit=100, states=[S.OPEN])
    assert "rm_x" not in [x.id for x in live] and len(live) == 10
    assert await store.page(tenant="t1", limit=5, before=(0.0, "")) == []
    assert [x.id for x in await store.page(tenant="t1", limit=2, before=(1002.0, "rm_006"))] == ["rm_x", "rm_005"]


async def test_sqlite_page_reads_through_the_index(tmp_path):
    """The keyset query is an index search (no scan, no sort of every room of the tenant)."""
    s = SqliteRoomStore(tmp_path / "rooms.db")
    await s.open()
    try:
        for sql, args in [("tenant = ? AND (created_at, id) < (?, ?)", ["t", 1.0, "x"]),
                          ("tenant = ? AND state IN (?) AND (created_at, id) < (?, ?)", ["t", "open", 1.0, "x"])]:
            plan = " ".join(r[3] for r in s._conn.execute(
                f"EXPLAIN QUERY PLAN SELECT data FROM rooms WHERE {sql} ORDER BY created_at DESC, id DESC LIMIT 5",
                args))
            assert "USING INDEX rooms_tenant_created_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        await s.close()


def test_sqlite_migrates_a_v1_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    assert migrate(conn) == SCHEMA_VERSION
    idx = {r[1] for r in conn.execute("PRAGMA index_list(rooms)")}
    assert "rooms_tenant_created_id" in idx and "rooms_tenant_created" not in idx
    conn.close()


async def test_list_live(store):
    live = [room(1.0, state=S.CREATING), room(2.0, state=S.OPEN), room(3.0, state=S.CLOSING)]
    failed = room(4.0, state=S.CREATING)
    failed.transition(S.FAILED, reason=CloseReason.ERROR, now=5.0)
    for r in [*live, failed, closed(6.0, 7.0)]:
        await store.put(r)
    assert [r.id for r in await store.list_live()] == [r.id for r in reversed(live)]


async def test_usage_seconds(store):
    since = 10_000.0
    await store.put(closed(9_000.0, 9_500.0))  # ended before since: 0
    await store.put(closed(9_900.0, 10_100.0))  # straddles: 100
    await store.put(closed(10_200.0, 10_500.0))  # inside: 300
    await store.put(closed(10_600.0, 99_999.0, expire=60))  # late leave, capped: 60
    await store.put(room(10_700.0, state=S.OPEN, expire=600))  # live: full 600
    await store.put(room(9_800.0, state=S.CLOSING, expire=600))  # live, straddles: 400
    await store.put(room(10_800.0, state=S.CREATING, expire=120))  # not minted yet: 120
    await store.put(room(1_000.0, state=S.OPEN, expire=600))  # long expired, never left: 0
    failed = room(10_900.0, state=S.CREATING)
    failed.transition(S.FAILED, now=10_901.0)
    await store.put(failed)  # mint failed: 0
    await store.put(room(10_000.0, tenant="t2", expire=5000))  # other tenant
    assert await store.usage_seconds("t1", since) == pytest.approx(100 + 300 + 60 + 600 + 400 + 120)
    assert await store.usage_seconds("t2", since) == pytest.approx(5000)
    assert await store.usage_seconds("t3", since) == 0


async def test_tenants_isolated(store):
    a, b = room(1.0, tenant="a"), room(2.0, tenant="b")
    await store.put(a)
    await store.put(b)
    assert [r.id for r in await store.list_rooms(tenant="a")] == [a.id]
    assert [r.id for r in await store.list_rooms(tenant="b")] == [b.id]


async def test_delete_closed_before(store):
    old = closed(1.0, 50.0)
    new = closed(1.0, 150.0)
    live = room(1.0, state=S.CLOSING)
    failed = room(1.0, state=S.CREATING)
    failed.transition(S.FAILED, now=60.0)
    for r in (old, new, live, failed):
        await store.put(r)
    assert await store.delete_closed_before(100.0) == 2
    assert {r.id for r in await store.list_rooms()} == {new.id, live.id}
    assert await store.delete_closed_before(100.0) == 0


async def test_ping(store):
    assert await store.ping() is True


async def test_concurrent_puts(store):
    rooms = [room(float(i)) for i in range(50)]
    await asyncio.gather(*(store.put(r) for r in rooms))
    assert len(await store.list_rooms()) == 50


# -- SQLite specifics ------------------------------------------------------


async def test_sqlite_pragmas_and_schema(tmp_path):
    s = SqliteRoomStore(tmp_path / "sub" / "dir" / "rooms.db")
    await s.open()
    try:
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        idx = {r[1] for r in conn.execute("PRAGMA index_list(rooms)")}
        assert {"rooms_tenant_created_id", "rooms_state"} <= idx
    finally:
        await s.close()
    assert await s.ping() is False
    with pytest.raises(RuntimeError):
        await s.get("x")


async def test_sqlite_reopen_keeps_rooms_and_migration_is_idempotent(tmp_path):
    path = tmp_path / "rooms.db"
    s = SqliteRoomStore(path)
    await s.open()
    r = room(1.0)
    await s.put(r)
    await s.close()
    s2 = SqliteRoomStore(path)
    await s2.open()
    assert await s2.get(r.id) == r
    await s2.close()


def test_sqlite_refuses_newer_schema(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        migrate(conn)
    conn.close()


async def test_sqlite_durable_without_close(tmp_path):
    """A second store on the same file sees a put at once, with the first never closed."""
    path = tmp_path / "rooms.db"
    writer = SqliteRoomStore(path)
    await writer.open()
    r = room(1.0, state=S.CLOSING)
    await writer.put(r)

    reader = SqliteRoomStore(path)
    await reader.open()
    assert [x.id for x in await reader.list_live()] == [r.id]
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT state FROM rooms WHERE id = ?", (r.id,)).fetchone() == ("closing",)
    raw.close()
    await reader.close()
    await writer.close()


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from bridge.rooms.models import Room, RoomState
    from bridge.store.sqlite import SqliteRoomStore

    async def main():
        store = SqliteRoomStore(sys.argv[1])
        await store.open()
        room = Room.new(tenant="t1", avatar_id="av", expire_seconds=600, now=1.0)
        room.id = "rm_killed"
        room.transition(RoomState.OPEN, now=2.0)
        await store.put(room)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_sqlite_survives_sigkill(tmp_path):
    path = tmp_path / "rooms.db"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(path), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    s = SqliteRoomStore(path)
    await s.open()
    try:
        got = await s.get("rm_killed")
        assert got is not None and got.state is S.OPEN and got.version == 1
        assert [r.id for r in await s.list_live()] == ["rm_killed"]
    finally:
        await s.close()


# -- open_store ------------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", ":memory:"])
def test_open_store_memory(url):
    assert isinstance(open_store(url), MemoryRoomStore)


def test_open_store_sqlite(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/a.db")  # absolute path -> sqlite:////...
    assert isinstance(s, SqliteRoomStore) and s.path == tmp_path / "a.db"
    rel = open_store("sqlite:///data/rooms.db")
    assert isinstance(rel, SqliteRoomStore) and str(rel.path) == "data/rooms.db"
    plain = open_store(str(tmp_path / "b.db"))
    assert isinstance(plain, SqliteRoomStore) and plain.path == tmp_path / "b.db"


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:secret@h:6380/2"])
def test_open_store_redis(url):
    assert isinstance(open_store(url), RedisRoomStore)


@pytest.mark.parametrize(
    "url,match",
    [
        ("postgres://x", "unsupported"),
        ("", "empty"),
        ("sqlite:///", "file path"),
    ],
)
def test_open_store_rejects(url, match):
    with pytest.raises(ValueError, match=match):
        open_store(url)
