"""The simulator's stand-in for an Agora channel: what the avatar "says".

A real A2E avatar answers ``ask`` only inside the Agora channel, as QA
stream-messages while its audio plays. The simulator has no channel, so this
feed plays the same events (audio started, QA chunks start/middle/end, audio
stopped) to subscribers, with a duration proportional to the text, one
command after another per channel. :func:`feed_websocket` serves them at
``/_sim/rtc/{channel}`` for :class:`bridge.rtc.simulated.SimulatorObserver`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bridge.rtc.base import QueueSubscription
from bridge.rtc.events import AudioStarted, AudioStopped, ChannelEvent, StreamMessage
from bridge.rtc.wire import event_to_frame

__all__ = ["ChannelFeed", "FeedSubscription", "answer_for", "feed_websocket", "split_chunks"]

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or so that the this to "
    "was what when where which who why will with you your".split()
)


def _stem(word: str) -> str:
    """A crude stem so "opens"/"opening" match "open": enough for a deterministic stand-in."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


def answer_for(question: str, qa_context: str | None) -> str:
    """Deterministic answer: the context sentence sharing most words with the question.

    Ties go to the earliest sentence; with no context or no shared word, a fixed
    answer quoting the question.
    """
    asked = _words(question)
    best, best_score = "", 0
    for sentence in (m.group().strip() for m in _SENTENCE.finditer(qa_context or "")):
        score = len(asked & _words(sentence))
        if score > best_score:
            best, best_score = sentence, score
    return best or f'I am a simulated avatar and have no answer to "{question.strip()}".'


def split_chunks(text: str, max_chars: int = 24) -> list[str]:
    """Split on word boundaries into chunks of about ``max_chars`` (concatenation == text)."""
    chunks: list[str] = []
    current = ""
    for piece in re.findall(r"\S+\s*|\s+", text):
        if current and len(current) + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


def _qa(message: str, pos: str) -> bytes:
    return json.dumps({"type": "QA", "message": message, "pos": pos}, ensure_ascii=False).encode()


class FeedSubscription(QueueSubscription):
    """One subscriber's bounded view of a channel."""

    def __init__(self, feed: ChannelFeed, channel: str, maxsize: int) -> None:
        super().__init__(maxsize)
        self._feed, self.channel = feed, channel

    async def _release(self) -> None:
        self._feed._unsubscribe(self)


@dataclass
class _Channel:
    commands: collections.deque[tuple[str, str, int]] = field(default_factory=collections.deque)
    subscribers: set[FeedSubscription] = field(default_factory=set)
    player: asyncio.Task[None] | None = None
    speaking_uid: int | None = None


class ChannelFeed:
    """Per-channel sequential player of avatar utterances, fanned out to subscribers.

    Args:
        seconds_per_char: speaking speed; an utterance lasts
            ``max(min_duration, seconds_per_char * len(text))``.
        min_duration: shortest utterance in seconds.
        chunk_chars: approximate characters per QA stream-message.
        queue_size: per-subscriber buffer (oldest dropped when full).
    """

    def __init__(self, *, seconds_per_char: float = 0.01, min_duration: float = 0.05, chunk_chars: int = 24,
                 queue_size: int = 256) -> None:
        self.seconds_per_char = seconds_per_char
        self.min_duration = min_duration
        self.chunk_chars = chunk_chars
        self.queue_size = queue_size
        self._channels: dict[str, _Channel] = {}

    # --- commands (called by the simulator's state handlers) ------------------------

    def on_ask(self, channel: str, question: str, qa_context: str | None, avatar_uid: int) -> str:
        """Queue the avatar's answer to ``question``; returns the answer text."""
        answer = answer_for(question, qa_context)
        self._enqueue(channel, ("ask", answer, avatar_uid))
        return answer

    def on_speak(self, channel: str, text: str, avatar_uid: int) -> None:
        """Queue the avatar saying ``text`` (audio only; A2E sends no QA messages for speak)."""
        self._enqueue(channel, ("speak", text, avatar_uid))

    def duration(self, text: str) -> float:
        return max(self.min_duration, self.seconds_per_char * len(text))

    def close(self, channel: str) -> None:
        """Cancel pending and current playback and end the channel's subscribers."""
        ch = self._channels.pop(channel, None)
        if ch is None:
            return
        if ch.player is not None:
            ch.player.cancel()
        if ch.speaking_uid is not None:
            self._emit(ch, AudioStopped(ch.speaking_uid))
        for sub in list(ch.subscribers):
            sub._end("channel closed")
        ch.subscribers.clear()

    async def aclose(self) -> None:
        """Close every channel and wait for the players to stop."""
        players = [ch.player for ch in self._channels.values() if ch.player is not None]
        for channel in list(self._channels):
            self.close(channel)
        for player in players:
            with contextlib.suppress(asyncio.CancelledError):
                await player

    # --- subscribers ------------------------------------------------------------------------

    def subscribe(self, channel: str) -> FeedSubscription:
        """A new subscriber sees events from now on; iterate it, then ``aclose`` it."""
        sub = FeedSubscription(self, channel, self.queue_size)
        self._channel(channel).subscribers.add(sub)
        return sub

    def subscribers(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.subscribers) if ch else 0

    def _unsubscribe(self, sub: FeedSubscription) -> None:
        ch = self._channels.get(sub.channel)
        if ch is not None:
            ch.subscribers.discard(sub)

    # --- playback ---------------------------------------------------------------------------

    def _channel(self, channel: str) -> _Channel:
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _Channel()
        return ch

    def _enqueue(self, channel: str, command: tuple[str, str, int]) -> None:
        ch = self._channel(channel)
        ch.commands.append(command)
        if ch.player is None or ch.player.done():
            ch.player = asyncio.get_running_loop().create_task(self._play(ch), name=f"sim-feed-{channel}")

    def _emit(self, ch: _Channel, event: ChannelEvent) -> None:
        for sub in list(ch.subscribers):
            sub._put(event)

    async def _play(self, ch: _Channel) -> None:
        while ch.commands:
            kind, text, uid = ch.commands.popleft()
            duration = self.duration(text)
            ch.speaking_uid = uid
            self._emit(ch, AudioStarted(uid))
            if kind == "ask":
                chunks = split_chunks(text, self.chunk_chars) or [""]
                positions = ["start"] + ["middle"] * (len(chunks) - 2) + ["end"] if len(chunks) > 1 else ["start"]
                messages = [_qa(c, p) for c, p in zip(chunks, positions, strict=True)]
                if len(chunks) == 1:
                    messages.append(_qa("", "end"))
                step = duration / len(messages)
                for data in messages:
                    self._emit(ch, StreamMessage(uid, data))
                    await asyncio.sleep(step)
            else:
                await asyncio.sleep(duration)
            self._emit(ch, AudioStopped(uid))
            ch.speaking_uid = None


async def feed_websocket(websocket: WebSocket) -> None:
    """Route ``/_sim/rtc/{channel}``: stream the channel's events as JSON text frames.

    Subscribes *before* accepting, so once the client's handshake completes no
    event can be missed. Closes with 1000 when the channel is closed.
    """
    feed: ChannelFeed = websocket.app.state.sim_feed
    sub = feed.subscribe(websocket.path_params["channel"])
    try:
        await websocket.accept()

        async def watch_client() -> None:  # a client that goes away ends the subscription
            with contextlib.suppress(WebSocketDisconnect):
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            await sub.aclose()

        watcher = asyncio.create_task(watch_client())
        try:
            async for event in sub:
                await websocket.send_text(json.dumps(event_to_frame(event)))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if websocket.application_state == WebSocketState.CONNECTED:
            await websocket.close(1000)
    except (WebSocketDisconnect, RuntimeError, OSError) as e:
        log.debug("feed websocket for %s ended: %r", sub.channel, e)
    finally:
        await sub.aclose()
