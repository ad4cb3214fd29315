"""``GET /v1/rooms/{id}/events`` (Server-Sent Events) over a real socket with httpx streaming
(httpx's ASGITransport buffers whole responses, so these bridges run under uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.simulator.feed import answer_for
from tests.helpers import ACME, GLOBEX, KEYS, WAIT, EventStream, add_fault, create_room, poll, wait_observed

CONTEXT = "The museum opens at ten. Tickets cost twelve euros. The cafe is on the second floor."


@pytest.fixture
async def bridge(bridge_factory: Any) -> Any:
    return await bridge_factory(api_keys=dict(KEYS), headers=ACME)


@contextlib.asynccontextmanager
async def events(bridge: Any, room_id: str, *, headers: dict[str, str] | None = None,
                 params: dict[str, str] | None = None) -> AsyncIterator[EventStream]:
    async with bridge.http.stream("GET", f"/v1/rooms/{room_id}/events", headers=headers, params=params) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def status_of(bridge: Any, room_id: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The status of a refused stream (it answers with a JSON error body at once)."""
    response = await asyncio.wait_for(bridge.http.get(f"/v1/rooms/{room_id}/events", **kwargs), WAIT)
    return response.status_code, response.json()


async def test_reply_after_an_ask(bridge: Any) -> None:
    room = await create_room(bridge, qa_context=CONTEXT)
    await wait_observed(bridge, room)
    async with events(bridge, room["id"]) as stream:
        response = await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "How much are tickets?"})
        assert response.status_code == 200 and response.json()["position"] == 1
        seen: list[dict[str, Any]] = []
        await stream.until("speaking_stopped", seen, timeout=10)
        seen.append(await stream.until("utterance", timeout=10))
    uid = response.json()["utterance"]
    # the ask's utterance, heard on the channel: queued → sent → speaking → done
    assert [(e["data"]["id"], e["data"]["state"]) for e in seen if e["event"] == "utterance"] == [
        (uid, "queued"), (uid, "sent"), (uid, "speaking"), (uid, "done")]
    assert all(e["event"] == e["data"]["type"] for e in seen)  # the SSE event name is the type
    seen = [e for e in seen if e["event"] != "utterance"]
    names = [e["event"] for e in seen]
    # the room as it is when the stream starts (no id: it is not part of the room's history), then what happens
    assert names[0] == "room" and "id" not in seen[0] and seen[0]["data"]["room"]["state"] == "open"
    seen = seen[1:]
    names = names[1:]
    assert names[0] == "command" and seen[0]["data"] == {"type": "command", "kind": "ask", "seq": 1,
                                                            "text": "How much are tickets?", "utterance": uid}
    assert names.index("speaking_started") < names.index("reply")
    finals = [e["data"] for e in seen if e["event"] == "reply" and e["data"]["final"]]
    assert [f["text"] for f in finals] == [answer_for("How much are tickets?", CONTEXT)]
    assert names[-2:] == ["reply", "speaking_stopped"] and seen[-2]["data"]["final"]
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_last_event_id_resumes_from_the_buffer(bridge: Any) -> None:
    room = await create_room(bridge)
    rid = room["id"]
    async with events(bridge, rid) as stream:
        for text in ("One.", "Two."):
            assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": text})).status_code == 200
        first = await stream.until("command")
        second = await stream.until("command")
    assert [first["data"]["text"], second["data"]["text"]] == ["One.", "Two."]
    last = int(second["id"])
    # missed while disconnected
    for text in ("Three.", "Four."):
        assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": text})).status_code == 200

    async with events(bridge, rid, headers={"Last-Event-ID": str(last)}) as stream:
        resumed = [await stream.until("command"), await stream.until("command")]
        assert [e["data"]["text"] for e in resumed] == ["Three.", "Four."]
        assert int(resumed[0]["id"]) > last
        # and it goes on live after the backlog
        assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Five."})).status_code == 200
        live = await stream.until("command")
        assert live["data"]["text"] == "Five." and int(live["id"]) > int(resumed[1]["id"])

    # the query parameter does the same (EventSource cannot set headers on a first connect)
    async with events(bridge, rid, params={"last_event_id": str(last)}) as stream:
        assert (await stream.until("command"))["data"]["text"] == "Three."
    # Last-Event-ID 0 replays the whole buffer, from the room's opening, then the room as it is now
    async with events(bridge, rid, headers={"Last-Event-ID": "0"}) as stream:
        replayed: list[dict[str, Any]] = []  # room (opened), the commands One to Five and their utterances
        while (now := await stream.next()) is not None and "id" in now:
            replayed.append(now)
        assert [e["id"] for e in replayed] == [str(i) for i in range(1, len(replayed) + 1)]
        assert replayed[0]["event"] == "room"
        assert [e["data"]["text"] for e in replayed if e["event"] == "command"] == ["One.", "Two.", "Three.", "Four.",
                                                                                    "Five."]
        assert now is not None and now["event"] == "room" and now["data"]["room"]["state"] == "open"
    # without it: the room as it is now, then only what happens from now on
    async with events(bridge, rid) as stream:
        first = await stream.next()
        assert first["event"] == "room" and "id" not in first and first["data"]["room"]["id"] == rid
        assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Six."})).status_code == 200
        assert (await stream.until("command"))["data"]["text"] == "Six."

    status, body = await status_of(bridge, rid, headers={"Last-Event-ID": "yesterday"})
    assert status == 400 and body["error"]["code"] == "bad_request"


async def test_ticket_auth(bridge: Any) -> None:
    room = await create_room(bridge)
    rid = room["id"]
    anonymous = {"Authorization": ""}
    async with events(bridge, rid, headers=anonymous, params={"ticket": room["ws_ticket"]}) as stream:
        assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Hi."})).status_code == 200
        assert (await stream.until("command"))["data"]["text"] == "Hi."
    other = await create_room(bridge)
    for ticket in (other["ws_ticket"], "garbage", room["ws_ticket"][:-3] + "abc"):
        status, body = await status_of(bridge, rid, headers=anonymous, params={"ticket": ticket})
        assert status == 401 and body["error"]["code"] == "unauthorized"
    expired = bridge.app.state.auth.issue_ticket(rid, "acme", now=1_000_000)
    status, body = await status_of(bridge, rid, headers=anonymous, params={"ticket": expired})
    assert status == 401 and body["error"]["message"] == "ticket expired"


async def test_refusals(bridge: Any) -> None:
    room = await create_room(bridge)
    rid = room["id"]
    status, body = await status_of(bridge, rid, headers=GLOBEX)  # another tenant's room does not exist for them
    assert status == 404 and body["error"]["code"] == "not_found"
    globex_ticket = bridge.app.state.auth.issue_ticket(rid, "globex")
    assert (await status_of(bridge, rid, headers={"Authorization": ""}, params={"ticket": globex_ticket}))[0] == 404
    assert (await status_of(bridge, "rm_nope"))[0] == 404
    assert (await status_of(bridge, rid, headers={"Authorization": ""}))[0] == 401
    assert (await status_of(bridge, rid, headers={"Authorization": "Bearer nope"}))[0] == 401
    await bridge.http.delete(f"/v1/rooms/{rid}")
    assert (await status_of(bridge, rid, headers=GLOBEX))[0] == 404  # ended, and still not theirs


async def test_an_ended_room_answers_its_final_room_closed(bridge: Any) -> None:
    """A client reconnecting after the end (EventSource does) reads how the room ended, then the stream ends."""
    room = await create_room(bridge)
    rid = room["id"]
    await bridge.http.delete(f"/v1/rooms/{rid}")
    for kwargs in ({}, {"headers": {"Last-Event-ID": "3"}},
                   {"headers": {"Authorization": ""}, "params": {"ticket": room["ws_ticket"]}}):
        async with events(bridge, rid, **kwargs) as stream:
            event = await stream.next()
            assert event["event"] == "room_closed" and event["data"]["type"] == "room_closed"
            assert event["data"]["reason"] == "client" and event["data"]["room"]["state"] == "closed"
            assert await stream.next() is None
    # a room A2E refused to mint has ended too
    add_fault(bridge.sim, endpoint="agora_token", kind="code_1001", times=1)
    assert (await bridge.http.post("/v1/rooms", json={})).status_code == 503
    failed = next(x for x in (await bridge.http.get("/v1/rooms")).json()["rooms"] if x["state"] == "failed")
    async with events(bridge, failed["id"]) as stream:
        event = await stream.next()
        assert event["event"] == "room_closed" and event["data"]["reason"] == "error"


async def test_stream_ends_with_room_closed_when_the_room_is_deleted(bridge: Any) -> None:
    room = await create_room(bridge)
    rid = room["id"]
    lr = bridge.rooms.registry.live[rid]
    async with events(bridge, rid) as first, events(bridge, rid) as second:
        assert lr.clients == 2
        assert (await bridge.http.delete(f"/v1/rooms/{rid}")).status_code == 200
        for stream in (first, second):
            seen: list[dict[str, Any]] = []
            while (event := await stream.next()) is not None:  # None: the server ended the stream
                seen.append(event)
            assert [e["event"] for e in seen] == ["room", "room", "room_closed"]  # open (on connect), closing, closed
            assert seen[0]["data"]["room"]["state"] == "open" and seen[1]["data"]["room"]["state"] == "closing"
            assert seen[-1]["data"]["reason"] == "client" and seen[-1]["data"]["room"]["state"] == "closed"
    assert lr.clients == 0 and lr.events.subscriber_count == 0


async def test_a_client_that_goes_away_is_detached(bridge: Any) -> None:
    room = await create_room(bridge)
    lr = bridge.rooms.registry.live[room["id"]]
    async with events(bridge, room["id"]) as stream:
        assert lr.clients == 1 and lr.events.subscriber_count == 1
        assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Hi."})).status_code == 200
        await stream.until("command")
    await poll(lambda: not (lr.clients or lr.events.subscriber_count), WAIT, what="the stream detached")
    assert lr.room.state.value == "open"


async def test_events_filter(bridge: Any) -> None:
    """``?events=``: a filtered and an unfiltered stream of one room; the backlog of a resumed
    filtered stream is filtered too; an unknown type is 422 naming it."""
    room = await create_room(bridge)
    rid = room["id"]
    async with events(bridge, rid) as everything, events(bridge, rid, params={"events": "command"}) as commands:
        for text in ("One.", "Two."):
            assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": text})).status_code == 200
        # the second speak's `queued` utterance was published before its command: a stream that
        # reads the two commands back to back was given no utterance event
        got = [await commands.next() for _ in range(3)]
        assert [(e["event"], e["data"].get("text")) for e in got] == [("room", None), ("command", "One."),
                                                                      ("command", "Two.")]
        seen: list[dict[str, Any]] = []
        await everything.until("command", seen)
        await everything.until("command", seen)
        assert "utterance" in {e["event"] for e in seen}
    async with events(bridge, rid, headers={"Last-Event-ID": "0"}, params={"events": "command,room"}) as resumed:
        backlog = [await resumed.next() for _ in range(4)]
        assert [(e["event"], "id" in e) for e in backlog] == [("room", True), ("command", True), ("command", True),
                                                               ("room", False)]  # the room as it is now
    status, body = await status_of(bridge, rid, params={"events": "command,replies"})
    assert status == 422 and body["error"]["code"] == "invalid_input"
    assert body["error"]["details"] == [{"loc": ["query", "events"], "msg": body["error"]["details"][0]["msg"],
                                         "unknown": ["replies"]}]
    assert "replies" in body["error"]["message"]
    # the refused stream took no slot (the others give theirs back as the server sees them go)
    await poll(lambda: bridge.rooms.registry.live[rid].clients == 0, what="every slot given back")
