"""A room's command queue over HTTP (bridge in-process): order under concurrency, sentence splitting,
back-pressure, flush."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import assert_error, create_room, poll

pytestmark = pytest.mark.in_process


async def open_room(bridge) -> tuple[str, str]:
    room = await create_room(bridge, expire_seconds=300)
    return room["id"], room["channel"]


async def test_concurrent_commands_reach_a2e_in_position_order(bridge_factory):
    bridge = await bridge_factory()
    rid, channel = await open_room(bridge)
    texts = [f"Sentence number {i}." for i in range(30)]
    kinds = ["ask" if i % 5 == 4 else "speak" for i in range(30)]
    replies = await asyncio.gather(*(bridge.http.post(f"/v1/rooms/{rid}/{kind}", json={"text": text})
                                     for kind, text in zip(kinds, texts)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
    positions = [r.json()["position"] for r in replies]
    assert sorted(positions) == list(range(1, 31))  # unique, no gaps
    by_position = sorted(zip(positions, kinds, texts))
    sent = bridge.sim.state.rooms[channel].commands
    assert [(c["kind"], c["text"]) for c in sent] == [(k, t) for _, k, t in by_position]
    # one at a time: A2E saw them at non-decreasing times in position order
    assert [c["at"] for c in sent] == sorted(c["at"] for c in sent)
    # the next command comes after all of them
    r = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "Last."})
    assert r.json()["position"] == 31


async def test_long_text_is_split_at_sentences_into_consecutive_positions(bridge_factory):
    bridge = await bridge_factory()
    rid, channel = await open_room(bridge)
    sentences = [f"This is sentence {i}, which says a little more so that the text grows long enough."
                 for i in range(20)]
    text = " ".join(sentences)
    assert len(text) > 1500
    other = "A short one in between."
    long_reply, short_reply = await asyncio.gather(
        bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": text}),
        bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": other}))
    assert long_reply.status_code == 200 and short_reply.status_code == 200
    body = long_reply.json()
    assert body["chunks"] == len(body["positions"]) >= 4
    assert body["positions"] == list(range(body["position"], body["position"] + body["chunks"]))
    assert short_reply.json()["position"] not in body["positions"]
    sent = [c["text"] for c in bridge.sim.state.rooms[channel].commands]
    chunks = [t for t in sent if t != other]
    assert len(chunks) == body["chunks"]
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut at sentence ends
    assert " ".join(chunks) == text  # nothing lost, nothing reordered
    # the chunks of one text are consecutive even though another request ran at the same time
    first = sent.index(chunks[0])
    assert sent[first:first + len(chunks)] == chunks


async def test_queue_full_then_flush(bridge_factory):
    bridge = await bridge_factory(queue_size=2, a2e_timeout=10)
    rid, channel = await open_room(bridge)
    sim = bridge.sim
    # A2E stalls on the next speak, so one command stays in flight while others queue behind it
    r = await bridge.http.post(sim.url + "/_sim/faults",
                               json={"endpoint": "speak", "kind": "timeout", "seconds": 2, "times": 1})
    assert r.status_code == 201
    queue = bridge.rooms.relay.queues[rid]
    in_flight = asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "stalled"}))
    await poll(lambda: queue.in_flight is not None)
    pending = [asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": f"pending {i}"}))
               for i in range(2)]
    await poll(lambda: queue.pending == 2)

    error = assert_error(await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "one too many"}),
                         429, "queue_full")
    assert error["details"] == {"pending": 2, "size": 2}
    assert_error(await bridge.http.post(f"/v1/rooms/{rid}/ask", json={"text": "and a question?"}),
                 429, "queue_full")
    r = await bridge.http.post(f"/v1/rooms/{rid}/flush")
    assert r.status_code == 200 and r.json()["flushed"] == 2 and len(r.json()["dropped"]) == 2
    for task in pending:
        assert_error(await task, 409, "flushed")
    assert queue.pending == 0
    # the stalled call ends with a clear upstream error, not a hang
    assert_error(await in_flight, 503, "upstream_unavailable")
    assert sim.state.rooms[channel].commands == []

    # the room is still usable, and all-or-none: three chunks do not fit a queue of two
    three = " ".join(f"Sentence {i} " + "x" * 400 + "." for i in range(3))
    r = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "after the flush"})
    assert r.status_code == 200, r.text
    assert r.json()["position"] == 2  # positions are given as commands are sent: the flushed ones never had one
    assert_error(await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": three}), 429, "queue_full")
    assert [c["text"] for c in sim.state.rooms[channel].commands] == ["after the flush"]
    assert (await bridge.http.get(f"/v1/rooms/{rid}")).json()["state"] == "open"


async def test_close_fails_pending_commands(bridge_factory):
    bridge = await bridge_factory(a2e_timeout=10)
    rid, channel = await open_room(bridge)
    await bridge.http.post(bridge.sim.url + "/_sim/faults",
                           json={"endpoint": "speak", "kind": "timeout", "seconds": 2, "times": 1})
    queue = bridge.rooms.relay.queues[rid]
    first = asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "stalled"}))
    await poll(lambda: queue.in_flight is not None)
    second = asyncio.create_task(bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": "waiting"}))
    await poll(lambda: queue.pending == 1)
    r = await bridge.http.delete(f"/v1/rooms/{rid}")
    assert r.status_code == 200 and r.json()["state"] == "closed"
    # neither request hangs: both are told the room is not open any more
    assert_error(await first, 409, "room_not_open")
    assert_error(await second, 409, "room_not_open")
    assert bridge.sim.state.rooms[channel].status == "left"
