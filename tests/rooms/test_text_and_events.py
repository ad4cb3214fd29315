import asyncio
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.frames import Command, RoomClosed
from bridge.rooms.events import RoomEvents
from bridge.rooms.text import split_sentences
from bridge.rooms.utterances import UtteranceTracker


def test_short_text_is_one_chunk() -> None:
    assert split_sentences("  Hello there.  ", 100) == ["Hello there."]
    assert split_sentences("   ", 100) == []


def test_long_text_splits_at_sentence_boundaries() -> None:
    text = "First sentence here. Second one is here! Is this the third? Yes."
    chunks = split_sentences(text, 25)
    assert chunks == ["First sentence here.", "Second one is here!", "Is this the third? Yes."]


def test_cjk_sentences_split_without_spaces() -> None:
    assert split_sentences("你好。今天天气很好。我们九点开门。", 10) == ["你好。今天天气很好。", "我们九点开门。"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=600), st.integers(5, 120))
def test_chunks_are_bounded_and_keep_every_word(text: str, limit: int) -> None:
    chunks = split_sentences(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join(text.split()) == "".join("".join(chunks).split())


async def test_every_subscriber_gets_every_event_and_history_resumes() -> None:
    hub = RoomEvents(history=3, subscriber_buffer=10)
    a, b = hub.subscribe(), hub.subscribe()
    ids = [hub.publish(Command(kind="speak", seq=n, text="")) for n in range(5)]
    got_a = [await a.get() for _ in ids]
    got_b = [await b.get() for _ in ids]
    assert [json.loads(e.data)["seq"] for e in got_a] == [json.loads(e.data)["seq"] for e in got_b] == list(range(5))
    late = hub.subscribe(after=ids[2])  # only ids 4 and 5 are newer and still in the history
    assert [json.loads((await late.get()).data)["seq"] for _ in range(2)] == [3, 4]


async def test_a_subscriber_that_falls_behind_is_cut_off_alone() -> None:
    hub = RoomEvents(history=1, subscriber_buffer=2)
    slow, fast = hub.subscribe(), hub.subscribe()
    for n in range(3):
        hub.publish(Command(kind="speak", seq=n, text=""))
        await fast.get()
    assert slow.overflowed and not fast.overflowed
    assert hub.subscriber_count == 1


async def test_end_delivers_what_is_queued_then_stops() -> None:
    hub = RoomEvents()
    sub = hub.subscribe()
    hub.publish(RoomClosed(reason="client", room={}))
    hub.end()
    items = [item async for item in sub]
    assert [i.type for i in items] == ["room_closed"]
    assert await asyncio.wait_for(hub.subscribe().get(), 1) is None


def test_speech_weight_counts_wide_characters_three_times() -> None:
    from bridge.rooms.utterances import speech_weight

    assert speech_weight("Welcome, visitor number 5.") == 26  # ASCII: its length
    assert speech_weight("你好 ok") == 9 and speech_weight("Ａb") == 4  # wide and full-width: 3 each
    assert speech_weight("café") == 4 and speech_weight("") == 0  # not ASCII, still narrow


async def test_estimated_speech_runs_on_one_timer_in_order() -> None:
    """Without an event source, speaking/done are estimated from the text: a backend that queues
    minutes of speech gets them in order, from one timer per room, not two timers per piece."""
    published: list[tuple[str, str]] = []
    all_done = asyncio.Event()

    def publish(frame: Any) -> None:
        published.append((frame.id, frame.state))
        if pieces and all(u.state == "done" for u in pieces):
            all_done.set()

    pieces: list[Any] = []
    tracker = UtteranceTracker(publish, seconds_per_char=0.0005)
    loop = asyncio.get_running_loop()

    def timers() -> int:  # the loop's live timers (a cancelled one stays in its heap for a while)
        return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]

    before = timers()
    pieces.extend(tracker.new("speak", "x" * 20) for _ in range(50))
    for position, u in enumerate(pieces, 1):
        tracker.sent(u, position)
    assert timers() - before == 1
    await asyncio.wait_for(all_done.wait(), 10)
    heard = [(uid, state) for uid, state in published if state in ("speaking", "done")]
    assert heard == [(u.id, state) for u in pieces for state in ("speaking", "done")]
    tracker.close()
    assert timers() == before
