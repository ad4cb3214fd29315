"""Reassembler: QA stream-messages -> Reply events, audio -> speaking events."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtc.events import (
    AudioStarted,
    AudioStopped,
    ChannelEvent,
    Reply,
    RoomEvent,
    SpeakingStarted,
    SpeakingStopped,
    StreamMessage,
)
from bridge.rtc.reassembler import Reassembler

AVATAR = 1001


def qa(message: str | None, pos: str | None = "middle", uid: int = AVATAR, **extra: object) -> StreamMessage:
    payload: dict[str, object] = {"type": "QA", **extra}
    if message is not None:
        payload["message"] = message
    if pos is not None:
        payload["pos"] = pos
    return StreamMessage(uid, json.dumps(payload).encode())


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(**kw: object) -> Reassembler:
    kw.setdefault("reply_id_prefix", "r")
    return Reassembler(**kw)  # type: ignore[arg-type]


def run(r: Reassembler, events: Sequence[ChannelEvent], source: Hashable | None = None) -> list[RoomEvent]:
    out: list[RoomEvent] = []
    for e in events:
        out.extend(r.feed(e, source))
    return out


# --- wire format ------------------------------------------------------------


def test_to_dict_wire_format() -> None:
    assert Reply("hi", True, "r-1").to_dict() == {"type": "reply", "text": "hi", "final": True, "reply_id": "r-1"}
    assert SpeakingStarted().to_dict() == {"type": "speaking_started"}
    assert SpeakingStopped().to_dict() == {"type": "speaking_stopped"}


# --- normal sequences ---------------------------------------------------------


def test_clean_reply_accumulates_and_finalises() -> None:
    r = make()
    out = run(r, [qa("Hel", "start"), qa("lo ", "middle"), qa("world", "end")])
    assert out == [
        Reply("Hel", False, "r-1"),
        Reply("Hello ", False, "r-1"),
        Reply("Hello world", True, "r-1"),
    ]
    assert r.open_replies == 0


def test_speaking_bracket_and_dedupe() -> None:
    r = make()
    out = run(r, [AudioStarted(AVATAR), AudioStarted(AVATAR), qa("a", "start"), qa("b", "end"),
                  AudioStopped(AVATAR), AudioStopped(AVATAR)])
    assert out == [SpeakingStarted(), Reply("a", False, "r-1"), Reply("ab", True, "r-1"), SpeakingStopped()]
    assert not r.speaking


def test_stop_without_start_is_ignored() -> None:
    assert run(make(), [AudioStopped(AVATAR)]) == []


def test_repeated_chunk_in_one_reply_is_kept() -> None:
    out = run(make(), [qa("ha", "start"), qa("ha"), qa("ha"), qa("!", "end")])
    assert out[-1] == Reply("hahaha!", True, "r-1")


def test_missing_pos_is_middle() -> None:
    out = run(make(), [qa("a", "start"), qa("b", None), qa("c", "end")])
    assert out[-1] == Reply("abc", True, "r-1")


def test_unknown_pos_is_middle_and_counted() -> None:
    r = make()
    out = run(r, [qa("a", "start"), qa("b", "sideways"), qa("", "end")])
    assert out[-1] == Reply("ab", True, "r-1")
    assert r.stats["unknown_pos"] == 1


def test_lost_start_opens_reply() -> None:
    r = make()
    out = run(r, [qa("b"), qa("c", "end")])
    assert out == [Reply("b", False, "r-1"), Reply("bc", True, "r-1")]
    assert r.stats["implicit_start"] == 1


def test_end_only() -> None:
    assert run(make(), [qa("whole", "end")]) == [Reply("whole", True, "r-1")]


def test_lost_end_new_start_finalises_previous() -> None:
    r = make()
    out = run(r, [qa("one", "start"), qa("two", "start"), qa("", "end")])
    assert out == [Reply("one", False, "r-1"), Reply("one", True, "r-1"), Reply("two", False, "r-2"),
                   Reply("two", True, "r-2")]
    assert r.stats["implicit_end"] == 1


def test_idle_expiry_uses_injected_clock() -> None:
    clock = Clock()
    r = make(now=clock, idle_timeout=5.0)
    assert run(r, [qa("dangling", "start")]) == [Reply("dangling", False, "r-1")]
    assert r.next_deadline() == 5.0
    clock.t = 4.9
    assert r.expire() == []
    assert r.expire(now=5.0) == [Reply("dangling", True, "r-1")]
    assert r.expire(now=100.0) == []
    assert r.stats["expired"] == 1
    assert r.next_deadline() is None


def test_activity_postpones_expiry() -> None:
    clock = Clock()
    r = make(now=clock, idle_timeout=5.0)
    r.feed(qa("a", "start"))
    clock.t = 4.0
    r.feed(qa("b"))
    assert r.expire(now=8.0) == []
    assert r.expire(now=9.0) == [Reply("ab", True, "r-1")]


def test_empty_reply_has_no_final() -> None:
    r = make()
    assert run(r, [qa("", "start"), qa("", "end")]) == []
    assert run(r, [qa(None, "start"), qa(None, "end")]) == []
    assert r.stats["empty_final_dropped"] == 2


def test_flush_finalises_and_stops_speaking() -> None:
    r = make()
    run(r, [AudioStarted(AVATAR), qa("x", "start")])
    assert r.flush() == [Reply("x", True, "r-1"), SpeakingStopped()]
    assert r.flush() == []


def test_interleaved_uids_have_separate_replies() -> None:
    out = run(make(), [qa("A1", "start", uid=1), qa("B1", "start", uid=2), qa("A2", "end", uid=1),
                       qa("B2", "end", uid=2)])
    finals = {e.reply_id: e.text for e in out if isinstance(e, Reply) and e.final}
    assert finals == {"r-1": "A1A2", "r-2": "B1B2"}


def test_garbage_is_ignored_and_counted() -> None:
    r = make()
    garbage = [
        StreamMessage(AVATAR, b"\xff\xfe\x00"),
        StreamMessage(AVATAR, b"not json"),
        StreamMessage(AVATAR, b"[1, 2]"),
        StreamMessage(AVATAR, b'"QA"'),
        StreamMessage(AVATAR, json.dumps({"type": "other", "message": "x"}).encode()),
        StreamMessage(AVATAR, json.dumps({"message": "x"}).encode()),
        StreamMessage(AVATAR, json.dumps({"type": "QA", "message": 42}).encode()),
        StreamMessage(AVATAR, b"[" * 100_000),
    ]
    assert run(r, garbage) == []
    assert r.stats["ignored_not_utf8"] == 1
    assert r.stats["ignored_not_json"] == 2
    assert r.stats["ignored_not_dict"] == 2
    assert r.stats["ignored_not_qa"] == 2
    assert r.stats["ignored_bad_message"] == 1
    assert r.open_replies == 0


def test_duplicate_from_second_forwarder_dropped() -> None:
    r = make()
    msgs = [qa("ha", "start"), qa("ha"), qa("", "end")]
    out = []
    for m in msgs:
        out += r.feed(m, "browser-a")
        out += r.feed(m, "browser-b")
    assert out == [Reply("ha", False, "r-1"), Reply("haha", False, "r-1"), Reply("haha", True, "r-1")]
    assert r.stats["duplicates"] == 3


def test_lagging_forwarder_beyond_window_is_reprocessed() -> None:
    """Documented trade-off: the dedupe memory is bounded."""
    r = make(dedupe_window=4)
    msgs = [qa(f"c{i}", "middle") for i in range(10)]
    run(r, msgs, "a")
    out = run(r, msgs[:1], "b")
    assert out and r.stats["duplicates"] == 0


def test_memory_is_bounded() -> None:
    r = make(dedupe_window=16)
    for i in range(1000):
        r.feed(qa(f"c{i}", "middle"), source=f"s{i % 50}")
    assert len(r._seen) <= 16
    assert sum(len(o) for o in r._occurrences.values()) <= 16 * 2
    assert len(r._occurrences) <= 2 * 16 + 1


# --- property-based -------------------------------------------------------------

chunk = st.text(max_size=6)
reply_chunks = st.lists(chunk, min_size=2, max_size=6)


def encode_reply(chunks: list[str], uid: int = AVATAR) -> list[ChannelEvent]:
    n = len(chunks)
    return [qa(c, "start" if i == 0 else "end" if i == n - 1 else "middle", uid) for i, c in enumerate(chunks)]


@st.composite
def clean_sessions(draw: st.DrawFn) -> tuple[list[ChannelEvent], list[str]]:
    replies = draw(st.lists(reply_chunks, max_size=5))
    events: list[ChannelEvent] = []
    for chunks in replies:
        if draw(st.booleans()):
            events.append(AudioStarted(AVATAR))
        events.extend(encode_reply(chunks))
        if draw(st.booleans()):
            events.append(AudioStopped(AVATAR))
    return events, ["".join(c) for c in replies]


def check_invariants(out: list[RoomEvent]) -> dict[str, str]:
    """Exactly-once finals, growing partials, alternating speaking events."""
    finals: dict[str, str] = {}
    last: dict[str, str] = defaultdict(str)
    speaking = False
    for e in out:
        if isinstance(e, Reply):
            assert e.reply_id not in finals, "event after final"
            assert e.text, "empty reply text"
            assert e.text.startswith(last[e.reply_id])
            last[e.reply_id] = e.text
            if e.final:
                finals[e.reply_id] = e.text
        elif isinstance(e, SpeakingStarted):
            assert not speaking
            speaking = True
        else:
            assert speaking
            speaking = False
    return finals


@given(clean_sessions())
def test_clean_final_text_is_concatenation(session: tuple[list[ChannelEvent], list[str]]) -> None:
    events, texts = session
    r = make()
    out = run(r, events)
    finals = check_invariants(out)
    assert list(finals.values()) == [t for t in texts if t]
    assert r.open_replies == 0


@st.composite
def interleavings(draw: st.DrawFn, events: list[ChannelEvent], n: int) -> list[tuple[int, ChannelEvent]]:
    """Merge n in-order copies of ``events`` in a random interleaving."""
    cursors = [0] * n
    merged: list[tuple[int, ChannelEvent]] = []
    while True:
        live = [i for i in range(n) if cursors[i] < len(events)]
        if not live:
            return merged
        i = draw(st.sampled_from(live))
        merged.append((i, events[cursors[i]]))
        cursors[i] += 1


@given(st.data(), clean_sessions(), st.integers(min_value=2, max_value=4))
def test_several_forwarders_equal_one(data: st.DataObject, session: tuple[list[ChannelEvent], list[str]],
                                      n: int) -> None:
    events, _ = session
    single = run(make(), events)
    merged = data.draw(interleavings(events, n))
    r = make()
    many: list[RoomEvent] = []
    for src, e in merged:
        many.extend(r.feed(e, source=f"fwd{src}"))
    assert many == single
    assert r.stats["duplicates"] == (n - 1) * len(events)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
qa_payloads = st.fixed_dictionaries(
    {"type": st.just("QA")},
    optional={
        "message": st.text(max_size=5) | json_values,
        "pos": st.sampled_from(["start", "middle", "end", "START", ""]) | json_values,
    },
)
hostile_bytes = st.one_of(
    st.binary(max_size=20),
    json_values.map(lambda v: json.dumps(v).encode()),
    qa_payloads.map(lambda v: json.dumps(v).encode()),
    qa_payloads.map(lambda v: json.dumps(v).encode()),
)
uids = st.sampled_from([1, 2, 3])
steps = st.one_of(
    st.builds(StreamMessage, uids, hostile_bytes),
    st.builds(AudioStarted, uids),
    st.builds(AudioStopped, uids),
    st.floats(min_value=0, max_value=10),  # clock advance + expire()
)


@settings(max_examples=300)
@given(st.lists(st.tuples(steps, st.sampled_from([None, "a", "b"])), max_size=60))
def test_hostile_sequences_never_break_invariants(plan: list[tuple[object, str | None]]) -> None:
    clock = Clock()
    r = make(now=clock, idle_timeout=3.0, dedupe_window=8)
    out: list[RoomEvent] = []
    for step, source in plan:
        if isinstance(step, float):
            clock.t += step
            out.extend(r.expire())
        else:
            out.extend(r.feed(step, source))  # type: ignore[arg-type]
    out.extend(r.flush())
    finals = check_invariants(out)
    partial_ids = {e.reply_id for e in out if isinstance(e, Reply)}
    assert partial_ids == set(finals), "every reply that showed text gets exactly one final"
    assert r.open_replies == 0 and not r.speaking


@given(st.lists(st.tuples(reply_chunks, st.integers(min_value=0, max_value=5)), max_size=4))
def test_lost_end_still_finalises_each_reply(replies: list[tuple[list[str], int]]) -> None:
    """Dropping the trailing messages of a reply never merges it with the next one."""
    events: list[ChannelEvent] = []
    expected: list[str] = []
    for chunks, keep in replies:
        kept = encode_reply(chunks)[: max(1, keep)]
        events.extend(kept)
        expected.append("".join(chunks[: len(kept)]))
    r = make()
    out = run(r, events) + r.flush()
    finals = check_invariants(out)
    assert list(finals.values()) == [t for t in expected if t]
