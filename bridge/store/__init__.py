"""Room persistence: implementations of :class:`bridge.rooms.store.RoomStore`.

``open_store(url)`` picks the backend from a URL or path. This package imports the room domain, never the
reverse.
"""

from __future__ import annotations

from bridge.rooms.store import RoomStore, StaleRoomError
from bridge.store.memory import MemoryRoomStore
from bridge.store.redis import RedisRoomStore
from bridge.store.sqlite import SqliteRoomStore

__all__ = ["MemoryRoomStore", "RedisRoomStore", "RoomStore", "SqliteRoomStore", "StaleRoomError", "open_store"]


def open_store(url: str) -> RoomStore:
    """Build (not yet open: ``await store.open()``) the store named by ``url``.

    - ``memory://`` or ``:memory:``: in-process, lost on restart
    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path: SQLite
    - ``redis://host:port/db`` or ``rediss://`` (TLS): Redis, shared by the instances of a fleet
    """
    url = url.strip()
    if not url:
        raise ValueError("empty room store URL")
    if url in ("memory://", ":memory:"):
        return MemoryRoomStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise ValueError(f"{url!r}: give a file path (use memory:// for an in-memory store)")
        return SqliteRoomStore(path)
    if url.startswith(("redis://", "rediss://")):
        return RedisRoomStore(url)
    if "://" in url:
        raise ValueError(f"unsupported room store URL {url!r}")
    return SqliteRoomStore(url)
