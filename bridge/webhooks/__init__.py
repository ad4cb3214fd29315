"""Signed webhooks: room events delivered to each tenant's backend (``BRIDGE_WEBHOOKS``).

``notifier.py`` turns the rooms' hooks into events written to the store's durable outbox;
``deliverer.py`` sends them, signed per the Standard Webhooks specification (the ``standardwebhooks``
package), retried with exponential backoff and jitter, one at a time per room so each room's events
arrive in order, never on a room's path.
"""

from __future__ import annotations

from .deliverer import Deliverer
from .notifier import EVENTS, Notifier

__all__ = ["EVENTS", "Deliverer", "Notifier"]
