"""Simulator event feed, end to end: ChannelFeed -> websocket -> SimulatorObserver -> Reassembler."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from bridge.rtc.base import JoinError, ObserveTarget, RoomObserver
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
from bridge.rtc.simulated import SimulatorObserver, feed_url
from bridge.rtc.wire import event_to_frame, frame_to_event
from bridge.simulator.feed import ChannelFeed, answer_for, feed_websocket, split_chunks
from tests.helpers import poll, serve

AVATAR = 1001
TIMEOUT = 10.0
CONTEXT = ("A2E stands for Avatars to Everyone. The office opens at nine in the morning. "
           "Parking is free for visitors on weekends!")


def make_app(feed: ChannelFeed) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await feed.aclose()

    app = Starlette(routes=[WebSocketRoute("/_sim/rtc/{channel}", feed_websocket)], lifespan=lifespan)
    app.state.sim_feed = feed
    return app


@pytest.fixture
def feed() -> ChannelFeed:
    return ChannelFeed(seconds_per_char=0.001, min_duration=0.02, chunk_chars=12)


@pytest.fixture
async def base_url(feed: ChannelFeed) -> AsyncIterator[str]:
    async with serve(make_app(feed)) as url:
        yield url


def target(channel: str = "room-1", avatar_uid: int | None = None) -> ObserveTarget:
    return ObserveTarget(app_id="sim", channel=channel, token=None, uid=7, avatar_uid=avatar_uid)


async def room_events_until_stopped(sub: AsyncIterator[ChannelEvent]) -> list[RoomEvent]:
    r = Reassembler(reply_id_prefix="t")
    out: list[RoomEvent] = []

    async def go() -> None:
        async for event in sub:
            out.extend(r.feed(event))
            if isinstance(out[-1:] and out[-1], SpeakingStopped):
                return

    await asyncio.wait_for(go(), TIMEOUT)
    return out


# --- pure parts ------------------------------------------------------------------------------


def test_answer_picks_sentence_sharing_most_words() -> None:
    assert answer_for("When does the office open?", CONTEXT) == "The office opens at nine in the morning."
    assert answer_for("is parking free on weekends", CONTEXT) == "Parking is free for visitors on weekends!"
    assert answer_for("what is A2E", CONTEXT) == "A2E stands for Avatars to Everyone."


def test_answer_without_context_mentions_question() -> None:
    for ctx in ("", None, CONTEXT):
        answer = answer_for("Do you like jazz?", ctx)
        assert "Do you like jazz?" in answer
    assert answer_for("x", "") == answer_for("x", "")


def test_split_chunks_preserves_text() -> None:
    text = "The office opens at nine in the morning, said the receptionist."
    chunks = split_chunks(text, 12)
    assert "".join(chunks) == text and len(chunks) > 3
    assert split_chunks("", 12) == []


def test_wire_round_trip() -> None:
    for ev in (StreamMessage(5, b"\x00\xffbytes", 3), AudioStarted(5), AudioStopped(5)):
        assert frame_to_event(json.loads(json.dumps(event_to_frame(ev)))) == ev
    assert event_to_frame(AudioStarted(123)) == {"kind": "audio_started", "uid": 123}
    bad: object
    for bad in (None, [], {"kind": "audio_started"}, {"kind": "nope", "uid": 1},
                {"kind": "stream_message", "uid": 1, "data_b64": "!!"}):
        assert frame_to_event(bad) is None


def test_feed_url() -> None:
    assert feed_url("http://h:1", "a b/c") == "ws://h:1/_sim/rtc/a%20b%2Fc"
    assert feed_url("https://h/prefix/", "c") == "wss://h/prefix/_sim/rtc/c"
    with pytest.raises(ValueError):
        feed_url("ftp://h", "c")


# --- feed in-process -----------------------------------------------------------------------------


async def test_feed_sequence_and_fan_out(feed: ChannelFeed) -> None:
    subs = [feed.subscribe("c"), feed.subscribe("c")]
    answer = feed.on_ask("c", "When does the office open?", CONTEXT, AVATAR)
    results = await asyncio.gather(*(room_events_until_stopped(s) for s in subs))
    for out in results:
        assert out[0] == SpeakingStarted() and out[-1] == SpeakingStopped()
        finals = [e for e in out if isinstance(e, Reply) and e.final]
        assert [f.text for f in finals] == [answer]
    for s in subs:
        await s.aclose()
    assert feed.subscribers("c") == 0


async def test_commands_play_one_after_another(feed: ChannelFeed) -> None:
    sub = feed.subscribe("c")
    feed.on_speak("c", "hello there", AVATAR)
    feed.on_ask("c", "What is A2E?", CONTEXT, AVATAR)
    kinds: list[str] = []

    async def go() -> None:
        async for ev in sub:
            kinds.append(type(ev).__name__)
            if kinds.count("AudioStopped") == 2:
                return

    await asyncio.wait_for(go(), TIMEOUT)
    assert kinds[:2] == ["AudioStarted", "AudioStopped"]  # speak: no QA messages
    assert kinds[2] == "AudioStarted" and kinds[-1] == "AudioStopped"
    assert set(kinds[3:-1]) == {"StreamMessage"}
    await sub.aclose()


async def test_close_cancels_playback_and_ends_subscribers() -> None:
    feed = ChannelFeed(seconds_per_char=1.0)  # would take minutes
    sub = feed.subscribe("c")
    feed.on_ask("c", "What is A2E?", CONTEXT, AVATAR)
    feed.on_ask("c", "again", CONTEXT, AVATAR)
    first = await asyncio.wait_for(sub.__anext__(), TIMEOUT)
    assert first == AudioStarted(AVATAR)
    feed.close("c")
    rest = await asyncio.wait_for(_collect(sub), TIMEOUT)
    assert rest[-1] == AudioStopped(AVATAR)
    assert sub.ended and sub.end_reason == "channel closed"
    await feed.aclose()


async def _collect(sub: AsyncIterator[ChannelEvent]) -> list[ChannelEvent]:
    return [e async for e in sub]


async def test_slow_subscriber_is_bounded() -> None:
    feed = ChannelFeed(seconds_per_char=0.0, min_duration=0.0, chunk_chars=1, queue_size=3)
    sub = feed.subscribe("c")
    feed.on_ask("c", "x", "a b c d e f g h i j k l m n o p x.", AVATAR)
    await poll(lambda: sub.dropped > 0, TIMEOUT, what="the feed dropping frames for a slow subscriber")
    assert len(await asyncio.wait_for(_collect_n(sub, 3), TIMEOUT)) == 3
    await feed.aclose()


async def _collect_n(sub: AsyncIterator[ChannelEvent], n: int) -> list[ChannelEvent]:
    return [await sub.__anext__() for _ in range(n)]


# --- over a real socket --------------------------------------------------------------------------


async def test_ask_reaches_observer_as_final_reply(feed: ChannelFeed, base_url: str) -> None:
    observer = SimulatorObserver(base_url)
    assert isinstance(observer, RoomObserver) and observer.name == "simulator"
    sub = await observer.observe(target())
    question = "When does the office open?"
    feed.on_ask("room-1", question, CONTEXT, AVATAR)
    out = await room_events_until_stopped(sub)
    assert out[0] == SpeakingStarted() and out[-1] == SpeakingStopped()
    finals = [e for e in out if isinstance(e, Reply) and e.final]
    assert len(finals) == 1 and finals[0].text == answer_for(question, CONTEXT)
    partials = [e for e in out if isinstance(e, Reply) and not e.final]
    assert partials and all(finals[0].text.startswith(p.text) for p in partials)
    await observer.aclose()
    await poll(lambda: feed.subscribers("room-1") == 0, TIMEOUT, what="the feed forgetting the observer")


async def test_speak_gives_speaking_events_only(feed: ChannelFeed, base_url: str) -> None:
    observer = SimulatorObserver(base_url)
    async with await observer.observe(target(avatar_uid=AVATAR)) as sub:
        feed.on_speak("room-1", "Welcome to the lobby", AVATAR)
        assert await room_events_until_stopped(sub) == [SpeakingStarted(), SpeakingStopped()]


async def test_channels_are_separate_and_close_ends_stream(feed: ChannelFeed, base_url: str) -> None:
    observer = SimulatorObserver(base_url)
    a = await observer.observe(target("a"))
    b = await observer.observe(target("b"))
    feed.on_speak("b", "only b", AVATAR)
    assert await asyncio.wait_for(b.__anext__(), TIMEOUT) == AudioStarted(AVATAR)
    feed.close("a")
    assert await asyncio.wait_for(_collect(a), TIMEOUT) == []
    assert a.ended
    await observer.aclose()
    await observer.aclose()


async def test_unreachable_simulator_raises_join_error() -> None:
    async with serve(Starlette()) as url:
        pass  # the port is free again
    with pytest.raises(JoinError):
        await SimulatorObserver(url, open_timeout=2).observe(target())

