"""Sending the outbox: signed, retried, ordered per room, in the background.

Every pending delivery that heads its room's queue (``RoomStore.due_deliveries``) and is due is sent
as a POST of its payload with the Standard Webhooks headers (``webhook-id``, the same on every retry,
so receivers can de-duplicate; ``webhook-timestamp``, the time of this attempt; ``webhook-signature``,
``v1,`` + HMAC-SHA256 by the ``standardwebhooks`` package). A 2xx answer delivers it; anything else
(an error status, a refused connection, a timeout) schedules the next attempt after an exponential
backoff with jitter, capped at ``BRIDGE_WEBHOOK_BACKOFF_MAX``, until ``BRIDGE_WEBHOOK_GIVE_UP_HOURS``
after the event, when it is marked ``failed``. State lives in the store, so a restart (or ``kill -9``)
resumes where it stopped: delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import httpx
from standardwebhooks import Webhook
from tenacity import RetryCallState
from tenacity.wait import wait_exponential_jitter

from bridge import metrics
from bridge.rooms.journal import Delivery
from bridge.rooms.store import RoomStore
from bridge.settings import Settings

log = logging.getLogger("bridge.webhooks")

PARALLEL = 16  # rooms whose deliveries are in flight at once
IDLE_POLL = 5.0  # seconds between looks at the outbox when nothing wakes the deliverer


def sign(secret: str, webhook_id: str, at: float, payload: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(at, tz=timezone.utc), payload)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature,
            "content-type": "application/json", "user-agent": "a2e-bridge-webhooks"}


class Deliverer:
    def __init__(self, settings: Settings, store: RoomStore, *, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.transport = transport
        # tenacity's backoff, fed the attempt count the store keeps (the retry loop is the outbox itself)
        self.backoff = wait_exponential_jitter(multiplier=1, max=settings.webhook_backoff_max, jitter=1)
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}  # order key -> its attempt

    def wake(self) -> None:
        """Something was enqueued: look at the outbox now (the notifier's hook)."""
        self._wake.set()

    def delay(self, attempts: int) -> float:
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempts
        return float(self.backoff(state))

    async def attempt(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        """One try at one delivery; its outcome is written back to the store."""
        target = self.settings.webhooks.get(delivery.tenant)
        now = self.clock()
        began = time.monotonic()
        status: int | None = None
        error: str | None = None
        if target is None or (target.events is not None and delivery.event not in target.events):
            error = "the tenant no longer has a webhook for this event"
        else:
            headers = sign(target.secret.get_secret_value(), delivery.webhook_id, now, delivery.payload)
            try:
                response = await http.post(target.url, content=delivery.payload.encode(), headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:  # refused, reset, timed out: the receiver is not there
                error = type(exc).__name__
        delivery.record_attempt(now, status=status, error=error, seconds=time.monotonic() - began)
        if error is None:
            delivery.status, delivery.delivered_at = "delivered", self.clock()
            outcome = "delivered"
        elif target is None or now - delivery.created_at > self.settings.webhook_give_up_hours * 3600:
            delivery.status = "failed"
            outcome = "failed"
            log.warning("webhook %s (%s) given up after %d attempt(s): %s", delivery.webhook_id, delivery.event,
                        delivery.attempts, error)
        else:
            delivery.next_attempt_at = self.clock() + self.delay(delivery.attempts)
            outcome = "retry"
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        await self.store.update_delivery(delivery)

    async def _one(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            await self.attempt(http, delivery)
        except Exception:  # e.g. the store refused the update: the delivery stays pending, tried again
            log.exception("webhook %s: delivery attempt failed", delivery.webhook_id)
        finally:
            self._inflight.pop(delivery.order_key, None)
            self._wake.set()

    async def run(self, http: httpx.AsyncClient) -> None:
        while True:
            self._wake.clear()
            free = PARALLEL - len(self._inflight)
            due = [d for d in await self.store.due_deliveries(self.clock(), PARALLEL + len(self._inflight))
                   if d.order_key not in self._inflight][:free]
            for delivery in due:
                self._inflight[delivery.order_key] = asyncio.create_task(self._one(http, delivery),
                                                                         name=f"webhook-{delivery.webhook_id}")
            # a head due already is in flight (its end wakes us) or waits for a free slot (likewise)
            next_at = await self.store.next_attempt_at()
            now = self.clock()
            wait = IDLE_POLL if next_at is None or next_at <= now else min(IDLE_POLL, next_at - now)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands as the
            # event is set (gh-86296), and this task, cancelled at shutdown, would loop on forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _run_forever(self, http: httpx.AsyncClient) -> None:
        while True:
            try:
                await self.run(http)
            except Exception:  # the store hiccuped: look again shortly, never stop delivering
                log.exception("webhook deliverer failed; retrying")
                await asyncio.sleep(1)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver in the background while the app runs; attempts cut short at exit stay pending."""
        if not self.settings.webhooks:
            yield
            return
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout, transport=self.transport,
                                     follow_redirects=False) as http:
            task = asyncio.create_task(self._run_forever(http), name="webhook-deliverer")
            try:
                yield
            finally:
                task.cancel()
                for inflight in list(self._inflight.values()):
                    inflight.cancel()
                await asyncio.gather(task, *self._inflight.values(), return_exceptions=True)
