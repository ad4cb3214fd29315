"""A room's transcript: what was said (speak pieces, asks, final replies, cancels) with who sent it,
read with a cursor or as text, kept across a restart, erasable, and only for its tenant or the operator."""

from __future__ import annotations

import asyncio
import contextlib
import re
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.rooms.transcript import Transcripts
from bridge.rooms.writer import SerialWriter
from bridge.simulator.feed import answer_for
from bridge.store.memory import MemoryRoomStore
from tests.helpers import (
    ACME,
    GLOBEX,
    KEYS,
    assert_error,
    bridge_settings,
    create_room,
    of_type,
    open_ws,
    send,
    start_bridge,
    until,
    wait_observed,
)

CONTEXT = "The museum opens at ten. Tickets cost twelve euros. The cafe is on the second floor."
LONG = " ".join(f"Sentence number {i} is here to make this welcome long enough to be cut." for i in range(12))
OPERATOR = {"Authorization": "Bearer operator-key"}


def lines_of(text: str) -> list[str]:
    """The plain transcript without its timestamps."""
    return [re.sub(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ", "", line) for line in text.splitlines()]


async def test_a_scripted_session_is_its_transcript_across_a_restart(sim: Any, tmp_path: Any) -> None:
    settings = bridge_settings(tmp_path, api_keys=dict(KEYS))
    async with contextlib.AsyncExitStack() as stack:
        bridge = await start_bridge(stack, sim, settings, in_process=False, headers=ACME)
        room = await create_room(bridge, qa_context=CONTEXT)
        rid = room["id"]
        await wait_observed(bridge, room)
        spoken = await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": LONG})
        assert spoken.status_code == 200 and spoken.json()["chunks"] >= 2, spoken.text
        ws = await open_ws(bridge, rid)
        await send(ws, {"type": "ask", "id": "q", "text": "How much are tickets?"})
        await until(ws, of_type("ack", id="q"))
        await until(ws, lambda f: f["type"] == "reply" and f["final"], timeout=10)
        await send(ws, {"type": "speak", "id": "s", "text": "Goodbye."})
        await until(ws, of_type("ack", id="s"))
        assert (await bridge.http.post(f"/v1/rooms/{rid}/flush")).json() == {"flushed": 0, "dropped": []}
        await ws.close()
        before = (await bridge.http.get(f"/v1/rooms/{rid}/transcript")).json()
    # the first bridge is gone (its rooms left at shutdown); a second one reads the same store
    async with contextlib.AsyncExitStack() as stack:
        bridge = await start_bridge(stack, sim, settings, in_process=False, headers=ACME)
        after = (await bridge.http.get(f"/v1/rooms/{rid}/transcript")).json()
        text = await bridge.http.get(f"/v1/rooms/{rid}/transcript", params={"format": "text"})
    assert after == before
    entries = after["entries"]
    ws_origin = entries[-2]["origin"]
    assert re.fullmatch(r"ws-\d+", ws_origin)
    answer = answer_for("How much are tickets?", CONTEXT)
    chunks = spoken.json()["positions"]
    assert [(e["kind"], e.get("origin"), e["text"]) for e in entries] == [
        *[("speak", "rest", e["text"]) for e in entries[:len(chunks)]],
        ("ask", ws_origin, "How much are tickets?"), ("reply", None, answer), ("speak", ws_origin, "Goodbye."),
        ("cancel", "rest", "")]
    assert " ".join(e["text"] for e in entries[:len(chunks)]) == LONG
    assert [(e["part"], e["parts"], e["position"]) for e in entries[:len(chunks)]] == [
        (i, len(chunks), p) for i, p in enumerate(chunks, 1)]
    assert entries[len(chunks) + 1]["source"] == "simulator" and entries[-1]["count"] == 0
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries) and after["more"] is False
    assert text.headers["content-type"].startswith("text/plain")
    assert lines_of(text.text) == [f"speak (rest): {LONG}", f"ask ({ws_origin}): How much are tickets?",
                                   f"reply: {answer}", f"speak ({ws_origin}): Goodbye.",
                                   "cancel (rest): dropped 0 pending command(s)"]


@pytest.mark.in_process
async def test_cursor_erasure_tenants_and_the_operator(bridge_factory: Any) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, operator_key="operator-key")
    room = await create_room(bridge)
    rid = room["id"]
    for text in ("One.", "Two.", "Three."):
        assert (await bridge.http.post(f"/v1/rooms/{rid}/speak", json={"text": text})).status_code == 200
    first = (await bridge.http.get(f"/v1/rooms/{rid}/transcript", params={"limit": 2})).json()
    assert [e["text"] for e in first["entries"]] == ["One.", "Two."] and first["more"] is True
    rest = (await bridge.http.get(f"/v1/rooms/{rid}/transcript", params={"after": first["next_after"]})).json()
    assert [e["text"] for e in rest["entries"]] == ["Three."] and rest["more"] is False
    idle = (await bridge.http.get(f"/v1/rooms/{rid}/transcript", params={"after": rest["next_after"]})).json()
    assert idle["entries"] == [] and idle["next_after"] == rest["next_after"]  # poll again from there

    assert_error(await bridge.http.get(f"/v1/rooms/{rid}/transcript", headers=GLOBEX), 404, "not_found")
    assert_error(await bridge.http.delete(f"/v1/rooms/{rid}/transcript", headers=GLOBEX), 404, "not_found")
    assert_error(await bridge.http.get(f"/v1/rooms/{rid}/transcript", headers={"Authorization": "Bearer nope"}),
                 401, "unauthorized")
    for bad in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "1001"}, {"format": "xml"}):
        assert_error(await bridge.http.get(f"/v1/rooms/{rid}/transcript", params=bad), 422, "invalid_input")
    seen = (await bridge.http.get(f"/v1/rooms/{rid}/transcript", headers=OPERATOR)).json()
    assert len(seen["entries"]) == 3  # the operator reads every tenant's rooms

    erased = await bridge.http.delete(f"/v1/rooms/{rid}/transcript")
    assert erased.json() == {"room_id": rid, "deleted": 3}
    assert (await bridge.http.get(f"/v1/rooms/{rid}/transcript")).json()["entries"] == []
    assert (await bridge.http.post(f"/v1/rooms/{rid}/ask", json={"text": "Still there?"})).status_code == 200
    again = (await bridge.http.get(f"/v1/rooms/{rid}/transcript")).json()["entries"]
    assert [(e["kind"], e["text"]) for e in again] == [("ask", "Still there?")]  # recorded again from then on


def counting_store() -> tuple[MemoryRoomStore, list[int]]:
    """A store that notes how many entries each ``add_transcript`` call (one transaction) wrote."""
    store = MemoryRoomStore()
    calls: list[int] = []
    real_add = store.add_transcript

    async def add(entries: list[Any]) -> None:
        calls.append(len(entries))
        await real_add(entries)

    store.add_transcript = add  # type: ignore[method-assign]
    return store, calls


async def test_entries_recorded_while_a_write_waits_are_written_in_one_go() -> None:
    """One store call (one transaction) for what piled up behind the writer, not one per command."""
    store, calls = counting_store()
    transcripts = Transcripts(store, SerialWriter("test"), clock=lambda: 1.0)  # not running: writes on flush
    lr: Any = SimpleNamespace(room=SimpleNamespace(id="rm_1"))
    for n in range(3):
        transcripts.record(lr, "speak", f"line {n}")
    assert [e.text for e in await transcripts.read("rm_1")] == ["line 0", "line 1", "line 2"]
    transcripts.record(lr, "ask", "and then?")
    assert [e.text for e in await transcripts.read("rm_1")][-1] == "and then?"
    assert calls == [3, 1]


async def test_a_batched_write_keeps_its_place_and_its_bound() -> None:
    """BRIDGE_TRANSCRIPT_BATCH_SECONDS: lines wait up to the window to share one transaction, but
    anything written after them (a room's close, its webhooks), a reader's flush or the shutdown
    writes them first, at once; alone, they are written when the window ends."""
    store, calls = counting_store()
    lr: Any = SimpleNamespace(room=SimpleNamespace(id="rm_1"))
    writer = SerialWriter("test")
    async with writer.running():
        held = Transcripts(store, writer, clock=lambda: 1.0, batch_seconds=60)
        for n in range(3):
            held.record(lr, "speak", f"line {n}")
        seen: list[str] = []

        async def after_them() -> None:  # what the room's close does: it reads the transcript
            seen.extend(e.text for e in await store.transcript("rm_1"))

        await asyncio.wait_for(writer.submit(after_them), 5)  # not the 60 s window
        assert seen == ["line 0", "line 1", "line 2"] and calls == [3]
        held.record(lr, "ask", "read me")
        assert [e.text for e in await asyncio.wait_for(held.read("rm_1"), 5)][-1] == "read me"
        held.record(lr, "ask", "at shutdown")
    assert [e.text for e in await store.transcript("rm_1")][-1] == "at shutdown" and calls == [3, 1, 1]

    async with writer.running():
        timed = Transcripts(store, writer, clock=lambda: 1.0, batch_seconds=0.05)
        timed.record(lr, "speak", "on its own")
        timed.record(lr, "speak", "with it")
        deadline = asyncio.get_running_loop().time() + 5
        while len(calls) < 4:  # nothing else is written: the window's end writes them
            assert asyncio.get_running_loop().time() < deadline, "the batch was never written"
            await asyncio.sleep(0.01)
        assert calls == [3, 1, 1, 2]
