"""Room streams (websocket and SSE) under attack, over real sockets: connection caps, ticket rules
(tenant still keyed, bounded chains), who may forward channel events, and malformed tickets.

Each attack is reproduced against a real bridge and shown refused; the honest clients (a kiosk with
its forwarding ticket, a backend with its key, a reconnect with a fresh ticket) keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bridge import frames as p
from bridge.errors import Unauthorized
from bridge.http.auth import Authenticator
from bridge.rooms.registry import LiveRoom
from tests.helpers import (
    ACME,
    GLOBEX,
    KEYS,
    EventStream,
    RawWS,
    assert_error,
    closed,
    of_type,
    open_ws,
    ping_pong,
    poll,
    recv,
    send,
    stream_message,
    until,
    wait_observed,
)
from tests.helpers import create_room as _create_room

create_room = functools.partial(_create_room, headers=ACME)  # these tests speak as acme unless told otherwise

SECRET = "shared-ticket-secret-for-tests"


def live_room(bridge: Any, tenant: str, room_id: str) -> LiveRoom:
    """The live room ``room_id``, which must be ``tenant``'s."""
    lr: LiveRoom = bridge.rooms.registry.live[room_id]
    assert lr.room.tenant == tenant
    return lr


def counted(bridge: Any, cap: str, key: str) -> int:
    return bridge.rooms.registry.clients.count(cap, key)


async def try_ws(bridge: Any, room_id: str, *, headers: dict[str, str] | None = None,
                 ticket: str | None = None) -> tuple[ClientConnection | None, tuple[int, str] | None]:
    """(the socket, None) once the server greeted it with the room, or (None, (close code, reason))."""
    ws = await open_ws(bridge, room_id, headers=headers, ticket=ticket)
    try:
        first = await recv(ws)
    except ConnectionClosed:
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None, "the server hung up without a close frame"
        return None, (rcvd.code, rcvd.reason)
    assert first["type"] == "room", first
    return ws, None


async def refused_ws(bridge: Any, room_id: str, **kwargs: Any) -> tuple[int, str]:
    ws, refusal = await try_ws(bridge, room_id, **kwargs)
    if ws is not None:
        await ws.close()
    assert refusal is not None, "the connection was accepted"
    return refusal


async def try_sse(bridge: Any, room_id: str, *, headers: dict[str, str] | None = None,
                  ticket: str | None = None, method: str = "GET") -> httpx.Response:
    """An SSE request; a 200 response is left open (the caller closes it), any other is read."""
    request = bridge.http.build_request(method, f"/v1/rooms/{room_id}/events", headers=headers,
                                        params={"ticket": ticket} if ticket is not None else None)
    response = await asyncio.wait_for(bridge.http.send(request, stream=True), 5)
    if response.status_code != 200 or method != "GET":
        await response.aread()
        await response.aclose()
    return response


@contextlib.asynccontextmanager
async def sse(bridge: Any, room_id: str, **kwargs: Any) -> AsyncIterator[EventStream]:
    response = await try_sse(bridge, room_id, **kwargs)
    assert response.status_code == 200, response.text
    try:
        yield EventStream(response)
    finally:
        await response.aclose()


def cap_of(response: httpx.Response) -> str:
    return assert_error(response, 429, "cap_exceeded")["details"]["cap"]


@pytest.fixture
async def bridge(bridge_factory: Any) -> Any:
    """Two tenants; the HTTP client sends no key by default (each call says who it is)."""
    return await bridge_factory(api_keys=dict(KEYS))


# -- 6. connection caps ----------------------------------------------------------------------------
async def test_one_ticket_cannot_open_unbounded_connections(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), max_clients_per_ticket=2, ticket_ttl=4)
    room = await create_room(bridge)
    rid, ticket = room["id"], room["ws_ticket"]
    first, _ = await try_ws(bridge, rid, ticket=ticket)
    assert first is not None
    async with sse(bridge, rid, ticket=ticket):  # websocket and SSE share the ticket's count
        assert await refused_ws(bridge, rid, ticket=ticket) == (p.CloseCode.CAP_EXCEEDED,
                                                                "cap_exceeded: clients_per_ticket (at most 2)")
        assert cap_of(await try_sse(bridge, rid, ticket=ticket)) == "clients_per_ticket"
        # the tickets the bridge pushes to the socket belong to the same chain: no way around the cap
        renewed = (await until(first, of_type("ticket")))["ws_ticket"]
        assert renewed != ticket
        assert (await refused_ws(bridge, rid, ticket=renewed))[0] == p.CloseCode.CAP_EXCEEDED
        # another ticket (a key holder asked for it) has its own count
        fresh = (await bridge.http.post(f"/v1/rooms/{rid}/tickets", headers=ACME)).json()["ws_ticket"]
        other, _ = await try_ws(bridge, rid, ticket=fresh)
        assert other is not None
        await other.close()
        assert counted(bridge, "clients_per_ticket", ticket.split(".")[4]) == 2
    await first.close()
    # both slots come back: a reconnect with the renewed ticket is accepted again
    assert (again := await poll(lambda: _accepted(bridge, rid, ticket=renewed)))
    await again.close()
    await poll(lambda: bridge.rooms.registry.clients.total == 0)


async def _accepted(bridge: Any, room_id: str, **kwargs: Any) -> ClientConnection | None:
    ws, _ = await try_ws(bridge, room_id, **kwargs)
    return ws


async def test_room_cap_counts_websockets_and_sse_together(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), max_clients_per_room=3)
    room, other_room = await create_room(bridge), await create_room(bridge)
    rid = room["id"]
    sockets = [ws for ws, _ in [await try_ws(bridge, rid, headers=ACME) for _ in range(2)]]
    assert all(sockets)
    stream = await try_sse(bridge, rid, headers=ACME)
    assert stream.status_code == 200
    lr = live_room(bridge, "acme", rid)
    assert lr.clients == 3 and counted(bridge, "clients_per_room", rid) == 3
    # a backend with its key is capped like everyone else, and refused clients are not counted
    assert await refused_ws(bridge, rid, headers=ACME) == (p.CloseCode.CAP_EXCEEDED,
                                                          "cap_exceeded: clients_per_room (at most 3)")
    response = await try_sse(bridge, rid, headers=ACME)
    assert cap_of(response) == "clients_per_room" and "3" in response.json()["error"]["message"]
    assert lr.clients == 3 and lr.events.subscriber_count == 3
    # another room of the tenant is not affected
    elsewhere, _ = await try_ws(bridge, other_room["id"], headers=ACME)
    assert elsewhere is not None
    await elsewhere.close()
    # the SSE client leaves: its slot is given back, a websocket gets in
    await stream.aclose()
    joined = await poll(lambda: _accepted(bridge, rid, headers=ACME))
    await ping_pong(joined)
    for ws in [*sockets, joined]:
        await ws.close()
    await poll(lambda: lr.clients == 0 and bridge.rooms.registry.clients.total == 0)


async def test_tenant_cap_spans_rooms_and_is_released_when_a_room_closes(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), max_clients_per_tenant=2)
    a, b = await create_room(bridge), await create_room(bridge)
    on_a, _ = await try_ws(bridge, a["id"], headers=ACME)
    assert on_a is not None
    async with sse(bridge, b["id"], headers=ACME):
        assert await refused_ws(bridge, b["id"], ticket=b["ws_ticket"]) == (
            p.CloseCode.CAP_EXCEEDED, "cap_exceeded: clients_per_tenant (at most 2)")
        assert cap_of(await try_sse(bridge, a["id"], headers=ACME)) == "clients_per_tenant"
        # another tenant has its own count
        theirs = await create_room(bridge, headers=GLOBEX)
        ws, _ = await try_ws(bridge, theirs["id"], headers=GLOBEX)
        assert ws is not None
        await ws.close()
        # room a closes: its client is let go and the tenant's slot comes back
        assert (await bridge.http.delete(f"/v1/rooms/{a['id']}", headers=ACME)).status_code == 200
        code, frames = await closed(on_a)
        assert code == p.CloseCode.ROOM_CLOSED and frames[-1]["type"] == "room_closed"
        joined = await poll(lambda: _accepted(bridge, b["id"], headers=ACME))
        await joined.close()
    await poll(lambda: bridge.rooms.registry.clients.total == 0)


async def test_concurrent_handshakes_are_counted_exactly(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), max_clients_per_room=5)
    rid = (await create_room(bridge))["id"]
    lr = live_room(bridge, "acme", rid)
    attempts = await asyncio.gather(*[try_ws(bridge, rid, headers=ACME) for _ in range(16)],
                                    *[try_sse(bridge, rid, headers=ACME) for _ in range(8)])
    sockets = [ws for ws, _ in attempts[:16] if ws is not None]
    streams = [r for r in attempts[16:] if r.status_code == 200]
    refusals = [refusal for _, refusal in attempts[:16] if refusal is not None]
    assert len(sockets) + len(streams) == 5
    assert all(code == p.CloseCode.CAP_EXCEEDED for code, _ in refusals)
    assert all(cap_of(r) == "clients_per_room" for r in attempts[16:] if r.status_code != 200)
    assert lr.clients == 5 and counted(bridge, "clients_per_room", rid) == 5
    assert counted(bridge, "clients_per_tenant", "acme") == 5
    for ws in sockets:
        await ws.close()
    for response in streams:
        await response.aclose()
    await poll(lambda: lr.clients == 0 and bridge.rooms.registry.clients.total == 0 and lr.events.subscriber_count == 0)


async def test_every_way_out_gives_the_slot_back(bridge_factory: Any) -> None:
    """An aborted TCP connection, an SSE client that goes away, a HEAD request (which never starts
    the stream), a refused handshake and a socket that got an error frame: none of them leaks a slot."""
    bridge = await bridge_factory(max_clients_per_room=1)  # dev mode: RawWS sends no key
    rid = (await create_room(bridge, headers={}))["id"]
    lr = live_room(bridge, "dev", rid)
    free = lambda: lr.clients == 0 and bridge.rooms.registry.clients.total == 0  # noqa: E731

    raw = await RawWS.open(bridge.url, rid)
    await poll(lambda: lr.clients == 1)
    raw.abort()
    await poll(free)

    response = await try_sse(bridge, rid)
    assert response.status_code == 200 and lr.clients == 1
    await response.aclose()
    await poll(free)

    head = await try_sse(bridge, rid, method="HEAD")
    assert head.status_code == 200
    await poll(free)

    other_room = await create_room(bridge, headers={})
    assert (await refused_ws(bridge, rid, ticket=other_room["ws_ticket"]))[0] == p.CloseCode.UNAUTHORIZED
    assert free()
    ws, _ = await try_ws(bridge, rid, headers=None)
    assert ws is not None
    await ws.send(b"\x00binary")
    assert (await recv(ws))["code"] == "binary_not_supported"
    await ws.close()
    await poll(free)
    again, _ = await try_ws(bridge, rid)
    assert again is not None
    await again.close()


async def test_refused_connections_do_not_keep_a_room_open(bridge_factory: Any) -> None:
    """The tenant's only slot is held in room X; room Y gets a stream of refused websocket and SSE
    attempts and still goes idle."""
    bridge = await bridge_factory(api_keys=dict(KEYS), max_clients_per_tenant=1, idle_timeout=1.0)
    x, y = await create_room(bridge), await create_room(bridge)
    holder, _ = await try_ws(bridge, x["id"], headers=ACME)
    assert holder is not None
    ly = live_room(bridge, "acme", y["id"])
    attempts = 0

    async def y_closed_while_refusing() -> bool:
        nonlocal attempts
        if ly.room.state.value == "open":
            attempts += 1
            code, _ = await refused_ws(bridge, y["id"], ticket=y["ws_ticket"])
            assert code == p.CloseCode.CAP_EXCEEDED or ly.room.state.value != "open"  # (or it just closed)
            response = await try_sse(bridge, y["id"], headers=ACME)
            assert response.status_code == 429 or ly.room.state.value != "open"
            assert ly.clients == 0
        return ly.room.state.value in ("closing", "closed")

    await poll(y_closed_while_refusing, timeout=15)
    assert attempts >= 2 and ly.room.close_reason.value == "idle"
    assert live_room(bridge, "acme", x["id"]).room.state.value == "open"  # the held room stays
    await ping_pong(holder)
    await holder.close()


# -- 7. tickets: the tenant must still have a key, and a chain's life is bounded ---------------------
async def test_a_ticket_whose_tenant_lost_its_key_is_refused(bridge_factory: Any) -> None:
    """Two bridges share BRIDGE_TICKET_SECRET; the second no longer has acme's key."""
    first = await bridge_factory(api_keys=dict(KEYS), ticket_secret=SECRET)
    second = await bridge_factory(api_keys={"key-globex": "globex"}, ticket_secret=SECRET, db="memory://")
    room = await create_room(first)
    code, reason = await refused_ws(second, room["id"], ticket=room["ws_ticket"])
    assert (code, reason) == (p.CloseCode.UNAUTHORIZED, "the ticket's tenant no longer has a key")
    error = assert_error(await try_sse(second, room["id"], ticket=room["ws_ticket"]), 401, "unauthorized")
    assert error["message"] == "the ticket's tenant no longer has a key"
    # control: the shared secret works; a globex ticket passes authentication there (no such room: 4404)
    theirs = first.app.state.auth.issue_ticket(room["id"], "globex")
    assert (await refused_ws(second, room["id"], ticket=theirs))[0] == p.CloseCode.NOT_FOUND
    # on the first bridge, acme's ticket still works
    ws, _ = await try_ws(first, room["id"], ticket=room["ws_ticket"])
    assert ws is not None
    await ws.close()


async def test_no_renewal_for_a_tenant_that_lost_its_key(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), ticket_secret=SECRET, ticket_ttl=2)
    room = await create_room(bridge)
    ws, _ = await try_ws(bridge, room["id"], ticket=room["ws_ticket"])
    assert ws is not None
    await until(ws, of_type("ticket"))  # renewals flow while acme has a key
    # the keys change: acme's is gone
    bridge.app.state.auth = Authenticator({"key-globex": "globex"}, dev_mode=False, ticket_ttl=2,
                                          ticket_secret=SECRET.encode())
    code, frames = await closed(ws)
    assert code == p.CloseCode.UNAUTHORIZED and ws.protocol.close_rcvd.reason == "the ticket's tenant no longer has a key"
    assert not [f for f in frames if f["type"] == "ticket"]
    assert_error(await bridge.http.post(f"/v1/rooms/{room['id']}/tickets", headers=ACME), 401, "unauthorized")


async def test_a_ticket_chain_ends_after_its_max_life(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), ticket_ttl=2, ticket_max_life=3)
    room = await create_room(bridge)
    started = int(room["ws_ticket"].split(".")[3])
    ends = started + 3
    ws, _ = await try_ws(bridge, room["id"], ticket=room["ws_ticket"])
    assert ws is not None
    pushed: list[str] = []
    deadline = ends + 1.5  # renewals come half-way through a ticket's life: none is due after this
    while (left := deadline - time.time()) > 0:
        with contextlib.suppress(asyncio.TimeoutError):
            frame = await recv(ws, timeout=left)
            if frame["type"] == "ticket":
                pushed.append(frame["ws_ticket"])
    assert pushed, "the socket never got a renewed ticket"
    for ticket in pushed:  # same chain, never valid past its end
        fields = ticket.split(".")
        assert int(fields[3]) == started and int(fields[2]) <= ends
    await ping_pong(ws)  # the socket itself stays
    code, reason = await refused_ws(bridge, room["id"], ticket=pushed[-1])
    assert (code, reason) == (p.CloseCode.UNAUTHORIZED, "ticket expired")
    # honest way back: a key holder mints a new chain
    fresh = (await bridge.http.post(f"/v1/rooms/{room['id']}/tickets", headers=ACME)).json()["ws_ticket"]
    again, _ = await try_ws(bridge, room["id"], ticket=fresh)
    assert again is not None
    await again.close()
    await ws.close()


def test_a_chain_older_than_max_life_is_refused_even_if_its_ticket_is_not_expired() -> None:
    """A bridge with a shorter BRIDGE_TICKET_MAX_LIFE (sharing the secret) refuses older chains."""
    lenient = Authenticator({"k": "acme"}, dev_mode=False, ticket_ttl=120, ticket_secret=b"s", ticket_max_life=1000)
    strict = Authenticator({"k": "acme"}, dev_mode=False, ticket_ttl=120, ticket_secret=b"s", ticket_max_life=50)
    now = time.time()
    old_chain = lenient.issue_ticket("rm_a", "acme", now, started=now - 100, chain="c1")
    assert lenient.check_ticket(old_chain, "rm_a", now).tenant == "acme"
    with pytest.raises(Unauthorized) as refused:
        strict.check_ticket(old_chain, "rm_a", now)
    assert refused.value.code == "unauthorized" and "chain expired" in refused.value.message
    assert strict.renew_ticket(lenient.check_ticket(old_chain, "rm_a", now), "rm_a", now) is None


# -- 8. who may forward channel events ----------------------------------------------------------------
async def test_a_plain_ticket_cannot_forward_events(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), event_source="none")
    room = await create_room(bridge)
    rid = room["id"]
    browser, _ = await try_ws(bridge, rid, ticket=room["ws_ticket"])
    assert browser is not None
    async with sse(bridge, rid, headers=ACME) as watcher:
        await send(browser, {"type": "rtc_event", "id": "f1", "event": stream_message(7, "Forged reply.", "end")})
        error = await until(browser, of_type("error", id="f1"))
        assert error["code"] == "forbidden" and "forward" in error["message"]
        await ping_pong(browser)  # the socket stays open
        # a plain ticket from POST /tickets (no body) cannot either
        plain = (await bridge.http.post(f"/v1/rooms/{rid}/tickets", headers=ACME)).json()["ws_ticket"]
        other, _ = await try_ws(bridge, rid, ticket=plain)
        assert other is not None
        await send(other, {"type": "rtc_event", "id": "f2", "event": {"kind": "audio_started", "uid": 7}})
        assert (await until(other, of_type("error", id="f2")))["code"] == "forbidden"
        await other.close()
        # what a key holder forwards next is the watcher's first avatar event: the forgeries made none
        backend = await _key_socket(bridge, rid)
        await send(backend, {"type": "rtc_event", "event": stream_message(7, "Genuine.", "end")})
        reply = await watcher.until("reply")
        assert reply["data"]["text"] == "Genuine." and reply["data"]["source"] == "browser"
        await backend.close()
    avatar = [json.loads(e.data) for e in live_room(bridge, "acme", rid).events.history
              if e.type not in ("room", "command")]
    assert [e["type"] for e in avatar] == ["reply"] and avatar[0]["text"] == "Genuine."
    await browser.close()


async def _key_socket(bridge: Any, room_id: str) -> ClientConnection:
    ws, _ = await try_ws(bridge, room_id, headers=ACME)
    assert ws is not None
    return ws


async def test_forward_tickets_come_only_from_key_holders_and_keep_their_scope(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), event_source="none", ticket_ttl=2)
    room = await create_room(bridge, forward_events=True)  # what the kiosk page asks for
    rid = room["id"]
    kiosk, _ = await try_ws(bridge, rid, ticket=room["ws_ticket"])
    assert kiosk is not None
    await send(kiosk, {"type": "rtc_event", "event": {"kind": "audio_started", "uid": 9}})
    assert await until(kiosk, of_type("speaking_started")) == {"type": "speaking_started", "source": "browser"}
    renewed = (await until(kiosk, of_type("ticket")))["ws_ticket"]  # renewals keep the forward scope
    await kiosk.close()
    again, _ = await try_ws(bridge, rid, ticket=renewed)
    assert again is not None
    await send(again, {"type": "rtc_event", "event": {"kind": "audio_stopped", "uid": 9}})
    assert await until(again, of_type("speaking_stopped")) == {"type": "speaking_stopped", "source": "browser"}
    await again.close()
    # POST /tickets {"forward_events": true}: a reconnecting kiosk; the body stays optional and checked
    tickets = f"/v1/rooms/{rid}/tickets"
    minted = await bridge.http.post(tickets, headers=ACME, json={"forward_events": True})
    assert minted.status_code == 201 and set(minted.json()) == {"ws_ticket", "ws_ticket_expires_in", "ws_url"}
    kiosk, _ = await try_ws(bridge, rid, ticket=minted.json()["ws_ticket"])
    assert kiosk is not None
    await send(kiosk, {"type": "rtc_event", "id": "ok", "event": {"kind": "audio_started", "uid": 10}})
    await until(kiosk, of_type("speaking_started"))
    await ping_pong(kiosk)
    await kiosk.close()
    assert_error(await bridge.http.post(tickets, headers=ACME, json={"forward_events": "yes"}), 422, "invalid_input")
    assert_error(await bridge.http.post(tickets, headers=ACME, json={"scope": "forward"}), 422, "invalid_input")
    assert_error(await bridge.http.post(tickets, json={"forward_events": True}), 401, "unauthorized")
    assert_error(await bridge.http.post("/v1/rooms", headers=ACME, json={"forward_events": 1}), 422, "invalid_input")


async def test_observer_events_carry_their_source(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS))  # the simulator's feed is the event source
    room = await create_room(bridge, qa_context="We open at nine.")
    ws = await _key_socket(bridge, room["id"])
    await wait_observed(bridge, room)
    await send(ws, {"type": "ask", "id": "q", "text": "When do you open?"})
    reply = await until(ws, lambda f: f["type"] == "reply" and f["final"], timeout=10)
    assert reply["source"] == "simulator"
    await ws.close()


# -- 11. malformed tickets --------------------------------------------------------------------------
def odd_tickets(genuine: str) -> dict[str, str]:
    fields = genuine.split(".")
    return {
        "non-ascii": "é" * 12,
        "non-ascii signature": genuine[:-1] + "é",
        "non-ascii tenant": ".".join([fields[0], "é", *fields[2:]]),
        "non-ascii digits": ".".join([*fields[:2], "١٢٣٤٥٦٧٨٩٠", *fields[3:]]),
        "only dots": "......",
        "empty fields": ".".join([fields[0], "", "", "", "", "", fields[-1]]),
        "too many dots": genuine + ".extra",
        "too few fields": ".".join(fields[:3]),
        "huge": genuine + "A" * 4000,
        "base64 garbage": "!!!!.@@@@.####.$$$$.%%%%.^^^^.&&&&",
        "nul and newline": genuine[:5] + "\x00\n" + genuine[5:],
        "unknown scope": ".".join([*fields[:5], "admin", fields[6]]),
        "signed-looking garbage tenant": ".".join([fields[0], "____", *fields[2:]]),
    }


async def test_malformed_tickets_are_a_clean_401_and_4401(bridge: Any, caplog: pytest.LogCaptureFixture) -> None:
    room = await create_room(bridge)
    rid = room["id"]
    caplog.set_level(logging.WARNING)
    for name, ticket in odd_tickets(room["ws_ticket"]).items():
        error = assert_error(await try_sse(bridge, rid, ticket=ticket), 401, "unauthorized")
        assert error["message"] in ("malformed ticket", "invalid ticket"), (name, error)
        ws = await open_ws(bridge, rid, headers=None, ticket=quote(ticket, safe=""))
        code, _ = await closed(ws)
        assert code == p.CloseCode.UNAUTHORIZED, name
    for name in ("non-ascii", "non-ascii signature", "only dots", "huge", "too many dots", "base64 garbage"):
        ticket = odd_tickets(room["ws_ticket"])[name]
        assert assert_error(await try_sse(bridge, rid, ticket=ticket), 401, "unauthorized")["message"] == \
            "malformed ticket", name
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    # and the genuine ticket still works on both
    async with sse(bridge, rid, ticket=room["ws_ticket"]):
        pass
    ws, _ = await try_ws(bridge, rid, ticket=room["ws_ticket"])
    assert ws is not None
    await ws.close()
