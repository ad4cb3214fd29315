"""Kiosk mode: the ``/kiosk`` page, its profiles (``BRIDGE_KIOSK_PROFILES``), rooms opened from a
profile (a warm one when the profile keeps some) and the page's watchdog reports.

A profile is served without what the page does not need (its tenant, the QA context's text); the
routes take the same client keys as room creation (none in development mode), and a profile bound
to a tenant is invisible to the others.
"""

from __future__ import annotations

import html
import logging
import time
import weakref

from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bridge import metrics
from bridge.errors import NotFound
from bridge.rooms.registry import LiveRoom
from bridge.settings import Settings
from bridge.settings.kiosk import KioskProfile

from .models import KioskProfileView, KioskRoom, WatchdogAnswer, WatchdogReport, answer_body, parse_body
from .openapi import operation
from .responses import JSONResponse
from .rooms import caller, find_open_room, room_view, rooms_of

log = logging.getLogger("bridge.kiosk")

PAGE = "kiosk/index.html"  # under bridge/static, rendered by ops.render_kiosk_page
# filled in per request: where the room events come from is known once the app runs
PAGE_MARKER = 'data-event-source="" data-coins-per-minute=""'
REPORT_INTERVAL = 1.0  # seconds: a room's watchdog reports closer together than this are not logged again

_last_report: weakref.WeakKeyDictionary[LiveRoom, float] = weakref.WeakKeyDictionary()


def profile_for(conn: HTTPConnection, name: str, tenant: str) -> KioskProfile:
    settings: Settings = conn.app.state.settings
    profile = settings.kiosk_profiles.get(name)
    if profile is None or profile.tenant not in (None, tenant):
        raise NotFound(f"no kiosk profile {name}")
    return profile


async def kiosk_page(request: Request) -> Response:
    """The kiosk page, with the event source and the coins per minute as data attributes."""
    settings: Settings = request.app.state.settings
    source = getattr(request.app.state, "event_source", "none")
    filled = (f'data-event-source="{html.escape(source)}" '
              f'data-coins-per-minute="{settings.coins_per_minute:g}"')
    return HTMLResponse(request.app.state.kiosk_mode_page.replace(PAGE_MARKER, filled, 1),
                        headers={"Cache-Control": "no-cache"})


@operation(summary="A kiosk profile, as the kiosk page needs it (no tenant, no QA context text)",
           answer=KioskProfileView, tag="kiosk", errors={404: "no such profile (or another tenant's)"})
async def get_profile(request: Request) -> Response:
    who = caller(request)
    name = request.path_params["name"]
    p = profile_for(request, name, who.tenant)
    settings: Settings = request.app.state.settings
    per_hour = 60 * settings.coins_per_minute  # what one open room costs (A2E refunds the unused rest)
    ready = len(rooms_of(request).warm.waiting.get(name, []))
    return JSONResponse(answer_body(KioskProfileView, {
        "name": name, "avatar_id": p.avatar_id, "brain": p.brain, "idle_seconds": p.idle_seconds,
        "prompt_seconds": p.prompt_seconds, "language": p.language, "warm_rooms": p.warm_rooms,
        "warm_rooms_ready": ready, "expire_seconds": p.expire_seconds or settings.default_expire_seconds,
        "watchdog_seconds": p.watchdog_seconds, "qa_context_chars": len(p.qa_context or ""),
        "coins_per_minute": settings.coins_per_minute, "coins_per_hour": per_hour,
        "warm_coins_per_hour": p.warm_rooms * per_hour,
    }))


@operation(summary="A room for a kiosk visitor, from a profile; a warm one if the profile keeps some ready",
           answer=KioskRoom, ok=201, body_required=False, tag="kiosk",
           description="The room as `POST /v1/rooms` answers it (its ticket has the forward scope), plus `warm`.",
           errors={404: "no such profile (or another tenant's)", 422: "the profile's brain is limited to other tenants",
                   429: "a cap (`details.cap`)"})
async def open_profile_room(request: Request) -> Response:
    who = caller(request)
    name = request.path_params["name"]
    p = profile_for(request, name, who.tenant)
    rooms = rooms_of(request)
    brain = rooms.relay.answering.check(p.brain, who.tenant)  # before A2E charges for anything
    # a browser key gets a room of its own, under its own caps; warm rooms are the tenant's
    lr = None if who.browser else rooms.warm.take(name, who.tenant)
    warm = lr is not None
    if lr is None:
        lr = await rooms.lifecycle.create(who.tenant, avatar_id=p.avatar_id, expire_seconds=p.expire_seconds,
                                          qa_context=p.qa_context, browser_key=who.browser_key, brain=brain)
    # the page forwards what its Agora SDK receives: the ticket has the forward scope
    view = room_view(request, lr.room, with_ticket=True, forward_events=True, browser=who.browser)
    return JSONResponse(answer_body(KioskRoom, {**view, "warm": warm}), status_code=201)


@operation(summary="A kiosk page saw a speak/ask accepted and no speaking_started within its bound",
           body=WatchdogReport, answer=WatchdogAnswer, ok=202, tag="kiosk", errors={409: "the room is not open"})
async def watchdog_report(request: Request) -> Response:
    who = caller(request)
    body = await parse_body(request, WatchdogReport)
    lr = await find_open_room(request, who)
    now = time.monotonic()
    if now - _last_report.get(lr, -REPORT_INTERVAL) < REPORT_INTERVAL:
        return JSONResponse(answer_body(WatchdogAnswer, {"reported": False}), status_code=202)
    _last_report[lr] = now
    metrics.WATCHDOG_REPORTS.labels(body.kind).inc()
    log.warning("kiosk watchdog: room %s (channel %s): %s accepted %.1f s ago and the avatar has not started speaking",
                lr.room.id, lr.room.channel, body.kind, body.waited_seconds)
    return JSONResponse(answer_body(WatchdogAnswer, {"reported": True}), status_code=202)


routes: list[BaseRoute] = [
    Route("/kiosk", kiosk_page, methods=["GET"], include_in_schema=False),
    Route("/v1/kiosk/profiles/{name}", get_profile, methods=["GET"]),
    Route("/v1/kiosk/profiles/{name}/rooms", open_profile_room, methods=["POST"]),
    Route("/v1/rooms/{room_id}/watchdog", watchdog_report, methods=["POST"]),
]
