"""What operators read: a room's transcript, usage and spend, webhook deliveries.

Each endpoint takes a tenant's key (its own records) or ``BRIDGE_OPERATOR_KEY`` (every tenant's).
Queries are validated and answers built with the models of :mod:`bridge.http.models.journal`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.rooms import Rooms
from bridge.rooms.registry import room_of
from bridge.rooms.transcript import as_text
from bridge.rooms.usage import DAY, day_start

from .auth import Authenticator, Viewer
from .models import (
    TRANSCRIPT_MAX,
    DeliveriesQuery,
    DeliveryList,
    Transcript,
    TranscriptErased,
    TranscriptQuery,
    Usage,
    UsageQuery,
    answer_body,
    parse_query,
    seconds_of,
)
from .openapi import operation
from .responses import JSONResponse


def viewer(conn: HTTPConnection) -> Viewer:
    auth: Authenticator = conn.app.state.auth
    return auth.authenticate_viewer(conn)


def rooms_of(conn: HTTPConnection) -> Rooms:
    rooms: Rooms = conn.app.state.rooms
    return rooms


def answer(model: type[Any], data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(answer_body(model, data))


@operation(summary="The room's conversation log, oldest first (a cursor for what came since; ?format=text)",
           query=TranscriptQuery, answer=Transcript, also_media=("text/plain",), tag="operators",
           description="`format=text`: the whole log as `text/plain` lines. The operator key reads every tenant's rooms.")
async def get_transcript(request: Request) -> Response:
    who = viewer(request)
    query = parse_query(request.query_params, TranscriptQuery)
    rooms = rooms_of(request)
    room = room_of(await rooms.registry.lookup(who.tenant, request.path_params["room_id"]))
    if query.format == "text":
        entries, cursor = [], query.after
        while batch := await rooms.transcripts.read(room.id, after=cursor, limit=TRANSCRIPT_MAX):
            entries.extend(batch)
            cursor = batch[-1].id
        return PlainTextResponse(as_text(entries), headers={"Cache-Control": "no-store"})
    entries = await rooms.transcripts.read(room.id, after=query.after, limit=query.limit + 1)
    more = len(entries) > query.limit
    entries = entries[:query.limit]
    return answer(Transcript, {"room_id": room.id, "entries": [e.to_public() for e in entries],
                               "next_after": entries[-1].id if entries else query.after, "more": more})


@operation(summary="Erase the room's conversation log (privacy); what is said afterwards is recorded again",
           answer=TranscriptErased, tag="operators")
async def delete_transcript(request: Request) -> Response:
    who = viewer(request)
    rooms = rooms_of(request)
    room = room_of(await rooms.registry.lookup(who.tenant, request.path_params["room_id"]))
    return answer(TranscriptErased, {"room_id": room.id, "deleted": await rooms.transcripts.erase(room.id)})


@operation(summary="Webhook deliveries, newest first, with their attempts and outcomes", query=DeliveriesQuery,
           answer=DeliveryList, tag="operators", description="The operator key sees every tenant's (with `tenant`).")
async def deliveries(request: Request) -> Response:
    who = viewer(request)
    query = parse_query(request.query_params, DeliveriesQuery)
    found = await rooms_of(request).registry.store.deliveries(tenant=who.tenant, limit=query.limit + 1,
                                                              before=query.before, status=query.status)
    page = found[:query.limit]
    return answer(DeliveryList, {"deliveries": [d.to_public() | ({"tenant": d.tenant} if who.is_operator else {})
                                                for d in page],
                                 "next_before": page[-1].id if len(found) > query.limit else None})


@operation(summary="Rooms, room-minutes and coins per UTC day or per room, from the bridge's ledger", query=UsageQuery,
           answer=Usage, tag="operators", description="The operator key sees every tenant's, with `reconciliation` "
           "(A2E's balance against the ledger).")
async def usage(request: Request) -> Response:
    who = viewer(request)
    query = parse_query(request.query_params, UsageQuery)
    rooms = rooms_of(request)
    now = rooms.usage.clock()
    until = seconds_of(query.until, end=True) if query.until is not None else now + 1
    since = seconds_of(query.since) if query.since is not None else day_start(now) - 29 * DAY
    # a range that ends before it starts holds nothing (every from/to the schema allows is answered)
    rows = await rooms.usage.report(who.tenant, since, until, query.group) if since < until else []
    totals = {k: round(sum(r[k] for r in rows), 3) for k in ("rooms", "open", "room_minutes_reserved",
                                                               "room_minutes_used", "coins_charged",
                                                               "coins_refunded", "coins_net", "coins_saved")}
    body = {"tenant": who.tenant, "from": iso(since), "to": iso(until), "group": query.group, "usage": rows,
            "totals": totals}
    if who.is_operator:  # the A2E balance is the whole account's: not a tenant's business
        body["reconciliation"] = await rooms.usage.reconciliation()
    return answer(Usage, body)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


routes: list[BaseRoute] = [
    Route("/v1/usage", usage, methods=["GET"]),
    Route("/v1/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/v1/rooms/{room_id}/transcript", get_transcript, methods=["GET"]),
    Route("/v1/rooms/{room_id}/transcript", delete_transcript, methods=["DELETE"]),
]
