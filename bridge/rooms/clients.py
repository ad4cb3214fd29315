"""Connected clients (websockets and SSE streams together), counted per room, ticket chain and tenant.

Every client of a room keeps it from going idle, so an unbounded number of them is a way to keep a
paid room open and to exhaust the process. :class:`ClientRegistry` is the one place that counts
them and refuses past the caps (``BRIDGE_MAX_CLIENTS_PER_ROOM`` / ``_PER_TICKET`` / ``_PER_TENANT``).
``acquire`` checks and counts in one synchronous step (no ``await`` in between), so concurrent
handshakes on the event loop cannot overshoot; the :class:`ClientLease` it returns gives the slot
back exactly once, whichever way the connection ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from bridge.errors import CapExceeded


class ClientLease:
    """One counted client; :meth:`release` (idempotent) gives its slots back."""

    __slots__ = ("_registry", "_keys", "_on_release", "released")  # one per connected client

    def __init__(self, registry: ClientRegistry, keys: tuple[tuple[str, str], ...]) -> None:
        self._registry = registry
        self._keys = keys
        self._on_release: list[Callable[[], None]] = []
        self.released = False

    def on_release(self, callback: Callable[[], None]) -> None:
        self._on_release.append(callback)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._registry._release(self._keys)
        for callback in self._on_release:
            callback()


class ClientRegistry:
    """Counts clients and refuses (429 ``cap_exceeded``, ``details.cap`` naming the cap) past a cap."""

    def __init__(self, *, per_room: int, per_ticket: int, per_tenant: int) -> None:
        self.limits = {"clients_per_ticket": per_ticket, "clients_per_room": per_room,
                       "clients_per_tenant": per_tenant}
        self._counts: Counter[tuple[str, str]] = Counter()

    def count(self, cap: str, key: str) -> int:
        """Clients counted now under ``cap`` (e.g. ``clients_per_room``) for ``key`` (a room id...)."""
        return self._counts[(cap, key)]

    @property
    def total(self) -> int:
        return sum(n for (cap, _), n in self._counts.items() if cap == "clients_per_tenant")

    def acquire(self, *, room_id: str, tenant: str, ticket_chain: str | None = None) -> ClientLease:
        """Count one more client, or raise :class:`CapExceeded` (then nothing was counted)."""
        keys = [("clients_per_room", room_id), ("clients_per_tenant", tenant)]
        if ticket_chain is not None:
            keys.insert(0, ("clients_per_ticket", ticket_chain))
        for cap, key in keys:
            limit = self.limits[cap]
            if self._counts[(cap, key)] >= limit:
                what = {"clients_per_ticket": "this ticket", "clients_per_room": "this room",
                        "clients_per_tenant": "this tenant"}[cap]
                raise CapExceeded(cap, f"{what} already has {limit} connected clients (websocket and SSE), "
                                       f"the most allowed")
        for entry in keys:
            self._counts[entry] += 1
        return ClientLease(self, tuple(keys))

    def _release(self, keys: tuple[tuple[str, str], ...]) -> None:
        for entry in keys:
            self._counts[entry] -= 1
            if self._counts[entry] <= 0:
                del self._counts[entry]
