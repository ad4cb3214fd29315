"""The one place the Redis store's key names live (all under a prefix, ``a2eb:`` by default, so a
Redis shared with other applications keeps them apart and ``--scan --pattern 'a2eb:*'`` finds them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "a2eb:"

    # -- rooms -------------------------------------------------------------------------------
    def room(self, room_id: str) -> str:
        """String: the room's record (JSON, with its version)."""
        return f"{self.prefix}room:{room_id}"

    @property
    def rooms(self) -> str:
        """Zset of every room id, score created_at (equal scores: by id), for list_rooms."""
        return f"{self.prefix}rooms"

    def tenant_rooms(self, tenant: str) -> str:
        """Zset of the tenant's room ids, score created_at: the keyset of ``page``."""
        return f"{self.prefix}rooms:tenant:{tenant}"

    @property
    def live(self) -> str:
        """Set of the ids of creating/open/closing rooms (``list_live``)."""
        return f"{self.prefix}rooms:live"

    @property
    def closed(self) -> str:
        """Zset of closed/failed room ids, score closed_at (the purge)."""
        return f"{self.prefix}rooms:closed"

    def browser_key_live(self, key_id: str) -> str:
        """Set of the live room ids a browser key opened: the fleet-wide count of its rooms cap."""
        return f"{self.prefix}browser-key:{key_id}:live"

    def tenant_live(self, tenant: str) -> str:
        """Set of the tenant's live room ids: the fleet-wide count of the rooms cap."""
        return f"{self.prefix}tenant:{tenant}:live"

    def tenant_closed(self, tenant: str) -> str:
        """Zset of the tenant's closed/failed room ids, score closed_at (``usage_seconds``)."""
        return f"{self.prefix}tenant:{tenant}:closed"

    def tenant_seconds(self, tenant: str, day: str) -> str:
        """Float: room-seconds reserved by the tenant on ``day`` (YYYY-MM-DD, UTC), less the unused
        part of its rooms that closed: the room-minutes cap reads this one key."""
        return f"{self.prefix}tenant:{tenant}:seconds:{day}"

    @property
    def reservations(self) -> str:
        """Hash room id -> "<tenant seconds key> <seconds reserved>" of rooms reserved through the
        caps and not closed yet: what to correct when they close."""
        return f"{self.prefix}reservations"

    # -- transcripts -------------------------------------------------------------------------
    def transcript(self, room_id: str) -> str:
        """Zset of the room's entries: member "<id> <json>", score id."""
        return f"{self.prefix}tx:{room_id}"

    @property
    def transcript_ids(self) -> str:
        return f"{self.prefix}seq:tx"

    # -- the webhook outbox ------------------------------------------------------------------
    @property
    def outbox_ids(self) -> str:
        return f"{self.prefix}seq:outbox"

    @property
    def outbox_data(self) -> str:
        """Hash delivery id -> JSON."""
        return f"{self.prefix}outbox:data"

    @property
    def outbox_webhook_ids(self) -> str:
        """Hash webhook id -> delivery id: an event is enqueued once."""
        return f"{self.prefix}outbox:webhook"

    @property
    def outbox_all(self) -> str:
        """Zset of every delivery id (score id): the listing, newest first."""
        return f"{self.prefix}outbox:all"

    def outbox_tenant(self, tenant: str) -> str:
        return f"{self.prefix}outbox:tenant:{tenant}"

    def outbox_queue(self, order_key: str) -> str:
        """Zset of the pending delivery ids of one order key (score id): the head is the oldest."""
        return f"{self.prefix}outbox:q:{order_key}"

    @property
    def outbox_heads(self) -> str:
        """Zset order key -> next_attempt_at of its head: what is due, without reading the rest."""
        return f"{self.prefix}outbox:heads"

    @property
    def outbox_next(self) -> str:
        """Hash delivery id -> next_attempt_at, as the caller wrote it (a head's score, exactly)."""
        return f"{self.prefix}outbox:next"

    @property
    def outbox_settled(self) -> str:
        """Zset of delivered/failed delivery ids, score created_at (the purge)."""
        return f"{self.prefix}outbox:settled"

    # -- the usage ledger --------------------------------------------------------------------
    def usage(self, room_id: str) -> str:
        """String: the room's ledger record (JSON)."""
        return f"{self.prefix}usage:{room_id}"

    @property
    def usage_opened(self) -> str:
        """Zset room id -> opened_at (equal scores: by room id)."""
        return f"{self.prefix}usage:opened"

    def usage_tenant(self, tenant: str) -> str:
        return f"{self.prefix}usage:tenant:{tenant}"
