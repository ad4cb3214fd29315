"""Streamed text in (``speak_delta``/``speak_end``, ``POST /speak/stream``), cut at sentences as it
arrives; utterances from queue to mouth; cancel and flush say exactly what they removed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.rooms.text import Segmenter
from tests.helpers import (
    ACME,
    KEYS,
    assert_error,
    create_room,
    of_type,
    open_ws,
    poll,
    recv,
    seen_or_until,
    send,
    until,
)


def cut_stream(deltas: list[str]) -> list[list[str]]:
    """The pieces each delta completes (the last entry: what ``speak_end`` completes)."""
    segmenter, out = Segmenter(), []
    for delta in [*deltas, None]:
        pieces, rest = segmenter.cut(delta or "", final=delta is None)
        segmenter.commit(pieces, rest)
        out.append(pieces)
    return out


def test_pieces_complete_as_soon_as_their_end_is_certain() -> None:
    deltas = ["Hello", " Mr", ".", " Smith", ".", " It", " costs", " 3", ".", "5", " euros", "!", '"', " Bye"]
    out = cut_stream(deltas)
    # "Mr." and "3." are not ends; "Smith." is one once the next word came; "!" is one at once
    assert {deltas[i] if i < len(deltas) else "<end>": p for i, p in enumerate(out) if p} == {
        " It": ["Hello Mr. Smith."], "!": ["It costs 3.5 euros!"], "<end>": ["Bye"]}


def test_cjk_sentences_are_cut_at_each_full_stop() -> None:
    out = cut_stream(list("你好。今天天气很好！我们九点开门"))
    assert [p for p in out if p] == [["你好。"], ["今天天气很好！"], ["我们九点开门"]]
    assert [p for p in cut_stream(["こんにちは。", "元気ですか？", "はい"]) if p] == [["こんにちは。"], ["元気ですか？"], ["はい"]]


def test_a_long_sentence_is_said_clause_by_clause() -> None:
    words = [f" word{i}," if i % 8 == 7 else f" word{i}" for i in range(120)]
    pieces = [p for ps in cut_stream(words) for p in ps]
    assert len(pieces) > 3 and all(len(p) <= 500 for p in pieces)
    assert all(p.endswith(",") for p in pieces[:-1])


def test_a_refused_cut_changes_nothing() -> None:
    segmenter = Segmenter()
    pieces, rest = segmenter.cut("One. Two")
    assert pieces == ["One."] and rest == "Two" and segmenter.buffer == ""  # cut is pure: nothing committed
    segmenter.commit(pieces, rest)
    assert segmenter.cut("", final=True) == (["Two"], "")


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=20))
def test_every_word_of_a_stream_is_said_once_in_order(deltas: list[str]) -> None:
    pieces = [p for ps in cut_stream(deltas) for p in ps]
    assert all(0 < len(p) <= 500 for p in pieces)
    assert [c for c in "".join(deltas) if c.isalnum()] == [c for c in "".join(pieces) if c.isalnum()]


@pytest.fixture
async def acme(bridge_factory: Callable[..., Any]) -> Any:
    return await bridge_factory(api_keys=dict(KEYS), headers=ACME)


def said(bridge: Any, room: dict[str, Any]) -> list[str]:
    return [c["text"] for c in bridge.sim.state.rooms[room["channel"]].commands]


async def test_a_streamed_sentence_is_spoken_before_the_stream_ends(acme: Any) -> None:
    room = await create_room(acme)
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        for i, token in enumerate(["The", " first", " sentence", "."]):
            await send(ws, {"type": "speak_delta", "id": f"d{i}", "stream": "a", "text": token})
        await send(ws, {"type": "speak_delta", "id": "d4", "stream": "a", "text": " The"})
        ack = await until(ws, of_type("ack", id="d4"))
        assert ack == {"type": "ack", "id": "d4", "kind": "speak_delta", "stream": "a", "utterance": ack["utterance"]}
        await poll(lambda: said(acme, room) == ["The first sentence."], what="sentence 1 with A2E, mid-stream")
        # a second stream (and a speak) queue behind the open one: never interleaved
        await send(ws, {"type": "speak_delta", "id": "b0", "stream": "b", "text": "Other stream. "})
        await send(ws, {"type": "speak", "id": "s", "text": "A speak."})
        await send(ws, {"type": "speak_delta", "id": "d5", "stream": "a", "text": " second one. And"})
        await poll(lambda: said(acme, room) == ["The first sentence.", "The second one."], what="sentence 2")
        await send(ws, {"type": "speak_end", "id": "e", "stream": "a"})
        end = await until(ws, of_type("ack", id="e"))
        assert end["utterance"] == ack["utterance"] and len(end["positions"]) == len(end["utterances"]) == 3
        await send(ws, {"type": "speak_end", "id": "eb", "stream": "b"})
        await until(ws, of_type("ack", id="eb"))
        await until(ws, of_type("ack", id="s"))
    assert said(acme, room) == ["The first sentence.", "The second one.", "And", "Other stream.", "A speak."]


async def test_cancel_and_flush_report_exactly_what_they_removed(acme: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    room = await create_room(acme)
    gate = asyncio.Event()
    real_speak = acme.app.state.a2e.speak

    async def gated_speak(channel: str, text: str, **kwargs: Any) -> Any:
        await gate.wait()
        return await real_speak(channel, text, **kwargs)

    monkeypatch.setattr(acme.app.state.a2e, "speak", gated_speak)
    long_text = " ".join(f"Sentence {i} " + "y" * 300 + "." for i in range(3))
    async with await open_ws(acme, room["id"]) as ws:
        await recv(ws)
        seen: list[dict[str, Any]] = []
        await send(ws, {"type": "speak", "id": "s0", "text": "In flight."})
        await send(ws, {"type": "speak", "id": "s1", "text": long_text})
        await send(ws, {"type": "speak", "id": "s2", "text": "Short."})
        await send(ws, {"type": "speak_delta", "id": "d", "stream": "live", "text": "Complete one. Unfinish"})
        stream = (await until(ws, of_type("ack", id="d"), seen=seen))["utterance"]
        queued = {f["id"]: f for f in seen if f["type"] == "queued"}
        s0, s1, s2 = (queued[k]["utterance"] for k in ("s0", "s1", "s2"))
        pieces = queued["s1"]["utterances"]
        assert len(pieces) == 3 and queued["s0"]["utterances"] == [s0]

        await send(ws, {"type": "cancel", "id": pieces[1]})  # one piece of a speak
        assert (await seen_or_until(ws, of_type("ack", id=pieces[1]), seen))["cancelled"] == [pieces[1]]
        r = await acme.http.delete(f"/v1/rooms/{room['id']}/utterances/{s2}")  # a whole speak, over REST
        assert r.status_code == 200 and r.json() == {"cancelled": [s2]}
        assert (await seen_or_until(ws, of_type("error", id="s2"), seen))["code"] == "cancelled"
        await send(ws, {"type": "cancel", "id": s0})  # A2E has it: it cannot be taken back
        refused = await seen_or_until(ws, of_type("error", id=s0), seen)
        assert refused["code"] == "not_cancellable" and refused["details"] == {"state": "queued"}
        assert_error(await acme.http.delete(f"/v1/rooms/{room['id']}/utterances/ut_nope"), 404, "not_found")

        await send(ws, {"type": "flush", "id": "f"})
        flush = await seen_or_until(ws, of_type("ack", id="f"), seen)
        stream_pieces = [f["id"] for f in seen if f["type"] == "utterance" and f.get("parent") == stream]
        assert flush["flushed"] == 3  # s1's two pieces left and the stream's complete sentence
        assert sorted(flush["dropped"]) == sorted([stream, *stream_pieces, pieces[0], pieces[2], s1])
        # the stopped stream refuses what comes next, and says why
        await send(ws, {"type": "speak_delta", "id": "late", "stream": "live", "text": "ed sentence."})
        assert (await seen_or_until(ws, of_type("error", id="late"), seen))["code"] == "flushed"
        await send(ws, {"type": "speak_end", "id": "end", "stream": "live"})
        assert (await seen_or_until(ws, of_type("error", id="end"), seen))["code"] == "flushed"
        gate.set()
        await seen_or_until(ws, of_type("ack", id="s0"), seen)
        states = {f["id"]: f["state"] for f in seen if f["type"] == "utterance"}
        assert states[s1] == states[pieces[1]] == states[s2] == states[stream] == "cancelled"
        # the stream's name is free again
        await send(ws, {"type": "speak_delta", "id": "again", "stream": "live", "text": "Fresh start."})
        await send(ws, {"type": "speak_end", "id": "end2", "stream": "live"})
        await seen_or_until(ws, of_type("ack", id="end2"), seen)
    assert said(acme, room) == ["In flight.", "Fresh start."]


async def test_utterances_are_estimated_without_an_event_source(bridge_factory: Callable[..., Any]) -> None:
    bridge = await bridge_factory(event_source="none", speech_seconds_per_char=0.001)
    room = await create_room(bridge)
    async with await open_ws(bridge, room["id"], headers=None, ticket=room["ws_ticket"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak", "id": "s", "text": "Hello there."})
        seen: list[dict[str, Any]] = []
        uid = (await until(ws, of_type("queued", id="s"), seen=seen))["utterance"]
        done = await until(ws, lambda f: f.get("type") == "utterance" and f["state"] == "done", seen=seen)
        events = [f for f in seen if f.get("type") == "utterance"] + [done]
        assert [(f["id"], f["state"], f.get("estimated")) for f in events] == [
            (uid, "queued", None), (uid, "sent", None), (uid, "speaking", True), (uid, "done", True)]
        r = await bridge.http.get(f"/v1/rooms/{room['id']}/utterances/{uid}")
        assert r.json()["state"] == "done" and r.json()["estimated"] is True and r.json()["position"] == 1


async def test_a_streamed_request_body_is_spoken_as_it_arrives(bridge_factory: Callable[..., Any]) -> None:
    bridge = await bridge_factory(in_process=False, max_body_bytes=1024)
    room = await create_room(bridge)

    async def body() -> AsyncIterator[bytes]:
        yield "Erste Zeile, bitte. Zwei".encode()
        await poll(lambda: said(bridge, room) == ["Erste Zeile, bitte."], what="sentence 1 before the body ended")
        yield " Sätze. 你好。".encode()[:-2]  # a character split across chunks
        yield " Sätze. 你好。".encode()[-2:]

    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak/stream", content=body())
    assert r.status_code == 200, r.text
    assert r.json()["chunks"] == 3 and said(bridge, room) == ["Erste Zeile, bitte.", "Zwei Sätze.", "你好。"]

    async def too_long() -> AsyncIterator[bytes]:
        yield b"Said before the limit! "
        await poll(lambda: len(said(bridge, room)) == 4, what="the sentence before the limit")
        for _ in range(7):
            yield ("字" * 50).encode()  # an unfinished sentence (350 characters, 1,050 bytes) past the limit: never said

    assert_error(await bridge.http.post(f"/v1/rooms/{room['id']}/speak/stream", content=too_long()),
                 413, "payload_too_large")
    assert_error(await bridge.http.post(f"/v1/rooms/{room['id']}/speak/stream", content=b"\xff\xfe"), 400, "bad_request")
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Still here."})
    assert r.status_code == 200
    assert said(bridge, room)[3:] == ["Said before the limit!", "Still here."]


async def test_an_idle_stream_ends_without_its_unfinished_sentence(bridge_factory: Callable[..., Any]) -> None:
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, stream_idle_timeout=0.2)
    room = await create_room(bridge)
    async with await open_ws(bridge, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "speak_delta", "id": "d", "stream": "s", "text": "Said at once! Never fini"})
        seen: list[dict[str, Any]] = []
        stream = (await until(ws, of_type("ack", id="d"), seen=seen))["utterance"]
        failed = await seen_or_until(ws, lambda f: f.get("type") == "utterance" and f["id"] == stream
                                     and f["state"] == "failed", seen)
        assert "no speak_delta or speak_end for 0.2s" in failed["reason"] and "unfinished" in failed["reason"]
        await send(ws, {"type": "speak_delta", "id": "late", "stream": "s", "text": "shed."})
        assert (await seen_or_until(ws, of_type("error", id="late"), seen))["code"] == "cancelled"
        await send(ws, {"type": "speak_end", "id": "end", "stream": "s"})
        assert (await seen_or_until(ws, of_type("error", id="end"), seen))["code"] == "cancelled"
        await send(ws, {"type": "speak_delta", "id": "new", "stream": "s", "text": "A new one."})
        await send(ws, {"type": "speak_end", "id": "end2", "stream": "s"})
        assert (await seen_or_until(ws, of_type("ack", id="end2"), seen))["utterance"] != stream
    assert said(bridge, room) == ["Said at once!", "A new one."]
