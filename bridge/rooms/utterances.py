"""Utterances: every speak, ask and stream of a room, and every piece it was cut into, from queue to mouth.

Each has a stable id and a per-room sequence number and moves ``queued → sent → speaking → done``,
or ends ``cancelled`` / ``failed``; every change is broadcast as an ``utterance`` event. A speak or
ask that is not cut is one utterance; one cut into pieces (a long speak, a stream, a brain's answer)
is a parent whose state follows its pieces: ``sent`` with the first piece sent, ``speaking`` with
the first piece heard, ``done`` once it ended and every piece is over.

``speaking``/``done`` come from the room's event source when it has one (the avatar's audio
starting and stopping, matched to the pieces in the order A2E was given them: A2E speaks them one
after the other); otherwise they are estimated from the text's length and marked ``estimated``.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.frames import ServerFrame
from bridge.frames import Utterance as UtteranceFrame

Kind = Literal["speak", "ask", "stream"]
State = Literal["queued", "sent", "speaking", "done", "cancelled", "failed"]
TERMINAL: frozenset[str] = frozenset({"done", "cancelled", "failed"})
_PROGRESS = {"queued": 0, "sent": 1, "speaking": 2, "done": 3}
KEEP = 1000  # finished utterances remembered per room (for cancel's answer and lookups)


@dataclass(eq=False)
class Utterance:
    id: str
    seq: int
    kind: Kind
    text: str = ""
    parent: Utterance | None = None
    state: State = "queued"
    position: int | None = None
    estimated: bool = False
    reason: str | None = None
    pieces: list[Utterance] = field(default_factory=list)
    ended: bool = True  # no more pieces will come (a stream: once it ended)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def leaves(self) -> list[str]:
        """The ids of what goes to A2E: the pieces, or this utterance itself when it was not cut."""
        return [p.id for p in self.pieces] or [self.id]


def speech_weight(text: str) -> int:
    """Characters as time to say them: a wide (CJK) character takes about three narrow ones."""
    if text.isascii():  # no wide character: skip the per-character lookup (every speak comes here)
        return len(text)
    return sum(3 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class UtteranceTracker:
    """One room's utterances. ``publish`` broadcasts a frame to the room's clients; ``observed``
    says the room's event source reports the avatar's audio (else timings are estimated)."""

    def __init__(self, publish: Callable[[ServerFrame], Any], *, seconds_per_char: float = 0.07) -> None:
        self.publish = publish
        self.seconds_per_char = seconds_per_char
        self.observed = False
        self._seq = 0
        self._all: OrderedDict[str, Utterance] = OrderedDict()
        self._awaiting: deque[Utterance] = deque()  # sent, waiting for the avatar's audio (observed)
        self._speaking: Utterance | None = None
        self._busy_until = 0.0  # estimated: when the avatar is done with what it was given
        # estimated: the changes to come, in time order (each piece starts when the one before is done),
        # and one timer for the first of them: not two timers per piece, which a backend that queues
        # minutes of speech would pile into the loop's heap and the garbage collector's old generation
        self._timeline: deque[tuple[float, Utterance, State]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    # -- creation and lookup --------------------------------------------------------------------
    def new(self, kind: Kind, text: str = "", *, parent: Utterance | None = None, ended: bool = True) -> Utterance:
        self._seq += 1
        u = Utterance("ut_" + secrets.token_urlsafe(8), self._seq, kind, text, parent, ended=ended)
        if parent is not None:
            parent.pieces.append(u)
        self._all[u.id] = u
        self._trim()
        self._emit(u, text=text or None)
        return u

    def get(self, uid: str) -> Utterance | None:
        return self._all.get(uid)

    # -- transitions ----------------------------------------------------------------------------
    def sent(self, u: Utterance, position: int) -> None:
        """A2E accepted ``u``: from now on the avatar says it, after what it was given before."""
        u.position = position
        if not self._advance(u, "sent"):
            return
        if self.observed:
            self._awaiting.append(u)
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._busy_until)
        self._busy_until = start + self.seconds_per_char * speech_weight(u.text)
        u.estimated = True
        self._timeline.append((start, u, "speaking"))
        self._timeline.append((self._busy_until, u, "done"))
        if self._timer is None:
            self._timer = loop.call_at(start, self._tick)

    def speaking_started(self) -> None:
        """The avatar's audio started (the room's event source): the oldest piece given to A2E is heard."""
        while self._awaiting:
            u = self._awaiting.popleft()
            if u.state == "sent":
                self._speaking = u
                self._advance(u, "speaking")
                return

    def speaking_stopped(self) -> None:
        u, self._speaking = self._speaking, None
        if u is not None:
            self._advance(u, "done")

    def end(self, u: Utterance) -> None:
        """No more pieces will come for ``u`` (a stream's end, a brain's last word)."""
        u.ended = True
        self._roll_up(u)

    def cancel(self, u: Utterance, reason: str) -> list[str]:
        """Mark ``u`` cancelled (the caller took it out of the queue); the ids that changed."""
        return [u.id] if self._finish(u, "cancelled", reason) else []

    def fail(self, u: Utterance, reason: str) -> None:
        self._finish(u, "failed", reason)

    def close(self) -> None:
        """The room is closing: no more estimated changes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timeline.clear()

    # -- internals ------------------------------------------------------------------------------
    def _finish(self, u: Utterance, state: State, reason: str) -> bool:
        if u.terminal:
            return False
        u.state, u.reason = state, reason
        self._emit(u, reason=reason)
        if u.parent is not None:
            self._roll_up(u.parent)
        return True

    def _advance(self, u: Utterance, state: State) -> bool:
        """Move ``u`` forward to ``state`` (never back, never out of a final state)."""
        if u.terminal or _PROGRESS[state] <= _PROGRESS[u.state]:
            return False
        if state == "done" and u.pieces and not u.ended:
            state = "speaking"
            if u.state == "speaking":
                return False
        u.state = state
        self._emit(u)
        if u.parent is not None:
            self._roll_up(u.parent)
        return True

    def _roll_up(self, parent: Utterance) -> None:
        if parent.terminal:
            return
        pieces = parent.pieces
        if parent.ended and all(p.terminal for p in pieces):
            failed = next((p for p in pieces if p.state == "failed"), None)
            if failed is not None:
                self._finish(parent, "failed", failed.reason or "a piece failed")
            elif pieces and all(p.state == "cancelled" for p in pieces):
                self._finish(parent, "cancelled", pieces[-1].reason or "cancelled")
            else:
                parent.estimated = any(p.estimated for p in pieces)
                steps: tuple[State, ...] = ("sent", "speaking", "done") if pieces else ("done",)
                for step in steps:
                    self._advance(parent, step)
            return
        reached = max((_PROGRESS.get(p.state, 0) for p in pieces), default=0)
        progress: tuple[State, ...] = ("sent", "speaking")
        for step in progress:
            if reached >= _PROGRESS[step]:
                self._advance(parent, step)

    def _emit(self, u: Utterance, *, text: str | None = None, reason: str | None = None) -> None:
        self.publish(UtteranceFrame(id=u.id, seq=u.seq, kind=u.kind, state=u.state,
                                    parent=u.parent.id if u.parent else None, position=u.position, text=text,
                                    estimated=True if u.estimated else None, reason=reason))

    def _tick(self) -> None:
        """The estimated changes that are due, in order; then the timer for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._timeline and self._timeline[0][0] <= now:
            _, u, state = self._timeline.popleft()
            self._advance(u, state)
        if self._timeline:
            self._timer = loop.call_at(self._timeline[0][0], self._tick)

    def _trim(self) -> None:
        while len(self._all) > KEEP:
            oldest = next(iter(self._all.values()))
            if not oldest.terminal:
                return  # live ones stay, however many the queue bound allows
            del self._all[oldest.id]
