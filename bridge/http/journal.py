"""What operators read: a room's transcript, usage and spend, webhook deliveries.

Each endpoint takes a tenant's key (its own records) or ``BRIDGE_OPERATOR_KEY`` (every tenant's).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.errors import ValidationFailed
from bridge.rooms import Rooms
from bridge.rooms.registry import room_of
from bridge.rooms.transcript import as_text
from bridge.rooms.usage import DAY, day_start

from .auth import Authenticator, Viewer
from .responses import JSONResponse

TRANSCRIPT_PAGE, TRANSCRIPT_MAX = 500, 1000


def viewer(conn: HTTPConnection) -> Viewer:
    auth: Authenticator = conn.app.state.auth
    return auth.authenticate_viewer(conn)


def rooms_of(conn: HTTPConnection) -> Rooms:
    rooms: Rooms = conn.app.state.rooms
    return rooms


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be an integer from {low} to {high}",
                               details=[{"loc": ["query", name], "min": low, "max": high}])
    return int(raw)


async def get_transcript(request: Request) -> Response:
    """
    summary: The room's conversation log, oldest first (a cursor for what came since; ?format=text)
    parameters:
      - {name: after, in: query, description: "next_after of the previous answer", schema: {type: integer}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 500}}
      - {name: format, in: query, schema: {type: string, enum: [json, text]}}
    responses:
      200: {description: "{room_id, entries: [{id, at, at_iso, kind, text, origin, utterance_id, ...}], next_after, more}"}
      404: {description: Unknown room (or another tenant's)}
    """
    who = viewer(request)
    rooms = rooms_of(request)
    room = room_of(await rooms.registry.lookup(who.tenant, request.path_params["room_id"]))
    after = int_param(request, "after", 0, low=0, high=2**62)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "text"):
        raise ValidationFailed("format must be json or text", details=[{"loc": ["query", "format"]}])
    if fmt == "text":
        entries, cursor = [], after
        while batch := await rooms.transcripts.read(room.id, after=cursor, limit=TRANSCRIPT_MAX):
            entries.extend(batch)
            cursor = batch[-1].id
        return PlainTextResponse(as_text(entries), headers={"Cache-Control": "no-store"})
    limit = int_param(request, "limit", TRANSCRIPT_PAGE, low=1, high=TRANSCRIPT_MAX)
    entries = await rooms.transcripts.read(room.id, after=after, limit=limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return JSONResponse({"room_id": room.id, "entries": [e.to_public() for e in entries],
                         "next_after": entries[-1].id if entries else after, "more": more})


async def delete_transcript(request: Request) -> Response:
    """
    summary: Erase the room's conversation log (privacy); what is said afterwards is recorded again
    responses:
      200: {description: "{room_id, deleted: n}"}
      404: {description: Unknown room (or another tenant's)}
    """
    who = viewer(request)
    rooms = rooms_of(request)
    room = room_of(await rooms.registry.lookup(who.tenant, request.path_params["room_id"]))
    return JSONResponse({"room_id": room.id, "deleted": await rooms.transcripts.erase(room.id)})


async def deliveries(request: Request) -> Response:
    """
    summary: Webhook deliveries, newest first, with their attempts and outcomes
    parameters:
      - {name: status, in: query, schema: {type: string, enum: [pending, delivered, failed]}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: before, in: query, description: "next_before of the previous page", schema: {type: integer}}
    responses:
      200: {description: "{deliveries: [{id, webhook_id, event, room_id, status, attempts, history, ...}], next_before}"}
    """
    who = viewer(request)
    status = request.query_params.get("status")
    if status not in (None, "pending", "delivered", "failed"):
        raise ValidationFailed("status must be pending, delivered or failed", details=[{"loc": ["query", "status"]}])
    limit = int_param(request, "limit", 50, low=1, high=200)
    before = int_param(request, "before", 0, low=1, high=2**62) if "before" in request.query_params else None
    found = await rooms_of(request).registry.store.deliveries(tenant=who.tenant, limit=limit + 1, before=before,
                                                              status=status)
    page = found[:limit]
    return JSONResponse({"deliveries": [d.to_public() | ({"tenant": d.tenant} if who.is_operator else {})
                                        for d in page],
                         "next_before": page[-1].id if len(found) > limit else None})


def time_param(request: Request, name: str, default: float, *, end: bool = False) -> float:
    """A UTC date (``2026-11-03``: the whole day, ``to`` included) or an ISO 8601 time."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        if len(raw) == 10:
            day = datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=timezone.utc).timestamp()
            return day + DAY if end else day
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time",
                               details=[{"loc": ["query", name]}]) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


async def usage(request: Request) -> Response:
    """
    summary: Rooms, room-minutes and coins per UTC day or per room, from the bridge's ledger
    parameters:
      - {name: from, in: query, description: "date (YYYY-MM-DD) or ISO time; default 29 days before today", schema: {type: string}}
      - {name: to, in: query, description: "date (included) or ISO time (excluded); default now", schema: {type: string}}
      - {name: group, in: query, schema: {type: string, enum: [day, room], default: day}}
    responses:
      200: {description: "{from, to, group, usage: [{day or room_id, rooms, room_minutes_reserved, room_minutes_used,
        coins_charged, coins_refunded, coins_net, coins_saved}], totals, reconciliation (operator only)}"}
    """
    who = viewer(request)
    rooms = rooms_of(request)
    now = rooms.usage.clock()
    until = time_param(request, "to", now + 1, end=True)
    since = time_param(request, "from", day_start(now) - 29 * DAY)
    group = request.query_params.get("group", "day")
    if group not in ("day", "room"):
        raise ValidationFailed("group must be day or room", details=[{"loc": ["query", "group"]}])
    if until <= since:
        raise ValidationFailed("to must come after from", details=[{"loc": ["query", "to"]}])
    rows = await rooms.usage.report(who.tenant, since, until, "day" if group == "day" else "room")
    totals = {k: round(sum(r[k] for r in rows), 3) for k in ("rooms", "open", "room_minutes_reserved",
                                                               "room_minutes_used", "coins_charged",
                                                               "coins_refunded", "coins_net", "coins_saved")}
    body = {"tenant": who.tenant, "from": iso(since), "to": iso(until), "group": group, "usage": rows,
            "totals": totals}
    if who.is_operator:  # the A2E balance is the whole account's: not a tenant's business
        body["reconciliation"] = await rooms.usage.reconciliation()
    return JSONResponse(body)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


routes: list[BaseRoute] = [
    Route("/v1/usage", usage, methods=["GET"]),
    Route("/v1/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/v1/rooms/{room_id}/transcript", get_transcript, methods=["GET"]),
    Route("/v1/rooms/{room_id}/transcript", delete_transcript, methods=["DELETE"]),
]
