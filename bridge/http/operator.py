"""The operator page (``/operator``) and the live-room overview it polls.

The page is static (``bridge/static/operator.html`` with its own script and style, no CDN, nothing
inline: it runs under the bridge's CSP); it reads the JSON API with a tenant's key or
``BRIDGE_OPERATOR_KEY``, which sees every tenant.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from .journal import answer, iso, rooms_of, viewer
from .models import LiveRooms
from .openapi import operation
from .ops import STATIC_DIR


@operation(summary="The live rooms as an operator watches them (state, age, clients, queue depth); a tenant's own, "
                   "or all; with many instances, the whole fleet's, each with the instance running it",
           answer=LiveRooms, tag="operators")
async def live_rooms(request: Request) -> Response:
    who = viewer(request)
    rooms = rooms_of(request)
    now = rooms.registry.clock()
    here = {lr.room.id: lr for lr in rooms.registry.live.values() if not lr.mirror}  # the rooms this process runs
    live = [lr.room for lr in here.values()]
    cluster, me = request.app.state.cluster, None
    if cluster is not None:  # many instances: every live room of the fleet, each with the instance running it
        live = [here[r.id].room if r.id in here else r for r in await rooms.registry.store.list_live()]
        me = cluster.me
    visible = sorted((r for r in live if who.tenant in (None, r.tenant)), key=lambda r: r.created_at, reverse=True)
    owners = await cluster.leases.owners([r.id for r in visible]) if cluster is not None else [None] * len(visible)
    listed = []
    for room, owner in zip(visible, owners, strict=True):
        row = {"id": room.id, "tenant": room.tenant, "state": room.state.value, "channel": room.channel,
               "age_seconds": round(max(0.0, now - room.created_at), 1), "instance": owner,
               "clients": None, "queue_depth": None,  # another instance runs it: only it knows these
               "expires_at": iso(room.expires_at) if room.expires_at else None}
        lr = here.get(room.id)
        if lr is not None:
            queue = rooms.relay.queues.get(room.id)
            depth = (queue.pending + (queue.in_flight is not None)) if queue is not None else 0
            row.update(instance=me, clients=lr.clients, queue_depth=depth)
        listed.append(row)
    return answer(LiveRooms, {"rooms": listed, "operator": who.is_operator, "now": iso(now)})


async def operator_page(request: Request) -> Response:
    return HTMLResponse((STATIC_DIR / "operator.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache"})


routes: list[BaseRoute] = [Route("/v1/operator/rooms", live_rooms, methods=["GET"])]
site_routes: list[BaseRoute] = [Route("/operator", operator_page, include_in_schema=False)]
