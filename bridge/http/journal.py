"""What operators read: a room's transcript, usage and spend, webhook deliveries.

Each endpoint takes a tenant's key (its own records) or ``BRIDGE_OPERATOR_KEY`` (every tenant's).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.errors import ValidationFailed
from bridge.rooms import Rooms
from bridge.rooms.registry import room_of
from bridge.rooms.transcript import as_text

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


routes: list[BaseRoute] = [
    Route("/v1/rooms/{room_id}/transcript", get_transcript, methods=["GET"]),
    Route("/v1/rooms/{room_id}/transcript", delete_transcript, methods=["DELETE"]),
]
