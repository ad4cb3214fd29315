"""Prometheus metrics (prometheus-client), served at ``/metrics``. Labels never carry tenants,
channels or text: only bounded sets (operation names, reasons, outcomes)."""

from __future__ import annotations

import functools
from typing import Any, TypeVar, cast

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

A2E_REQUESTS = Counter("a2e_bridge_a2e_requests_total", "A2E calls by operation and outcome",
                       ["operation", "outcome"])
A2E_SECONDS = Histogram("a2e_bridge_a2e_request_seconds", "A2E call time, retries included", ["operation"],
                        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ROOMS_OPENED = Counter("a2e_bridge_rooms_opened_total", "Rooms minted")
ROOMS_CLOSED = Counter("a2e_bridge_rooms_closed_total", "Rooms closed, by reason", ["reason"])
ROOMS_LIVE = Gauge("a2e_bridge_rooms_live", "Rooms A2E may be charging for (creating, open, closing)")
LEAVES_UNCONFIRMED = Counter("a2e_bridge_leaves_unconfirmed_total",
                             "Rooms whose leave A2E never confirmed before their expiry")
COMMANDS = Counter("a2e_bridge_commands_total", "Commands by kind and outcome", ["kind", "outcome"])
COINS_CHARGED = Counter("a2e_bridge_coins_charged_total",
                        "A2E coins charged for rooms at mint, by the bridge's ledger")
COINS_REFUNDED = Counter("a2e_bridge_coins_refunded_total",
                         "A2E coins refunded for the unused time of rooms left early, by the bridge's ledger")
WEBHOOK_DELIVERIES = Counter("a2e_bridge_webhook_attempts_total", "Webhook delivery attempts by outcome",
                             ["outcome"])
WS_CONNECTIONS = Gauge("a2e_bridge_ws_connections", "Open websocket clients")
WARM_ROOMS = Gauge("a2e_bridge_warm_rooms", "Rooms open and waiting for a kiosk visitor (kiosk profiles' warm_rooms)")
WATCHDOG_REPORTS = Counter("a2e_bridge_kiosk_watchdog_total",
                           "Speaks/asks a kiosk page saw accepted but never spoken within its watchdog bound", ["kind"])


async def metrics_endpoint(request: Request) -> Response:
    """The metrics in Prometheus' text format (who may read them is the HTTP layer's business:
    ``bridge.http.ops.metrics``)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


M = TypeVar("M", Counter, Histogram)


def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, looked up once: the label sets are bounded, and ``labels()``
    (a lock, a tuple of checked strings, a dict) ran three times per speak (issue 12). No metric here
    is ever cleared, so a child once made stays the one the registry exports."""
    return cast(M, _labelled(metric, *values))


@functools.lru_cache(maxsize=1024)
def _labelled(metric: Any, *values: str) -> Any:
    return metric.labels(*values)


def record_a2e_call(operation: str, outcome: str, seconds: float) -> None:
    """The A2E client's call hook (``A2EClient(on_call=...)``): the client knows no metrics library."""
    labelled(A2E_REQUESTS, operation, outcome).inc()
    labelled(A2E_SECONDS, operation).observe(seconds)
