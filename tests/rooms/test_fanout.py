"""The room's event hub hands each event to its sinks: encoded once, in order, in slices, after what
was already scheduled. No timing: the order of loop callbacks is the mechanism under test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge.frames import Command, RoomClosed
from bridge.rooms import events
from bridge.rooms.events import Event, RoomEvents


class Sink:
    """Records what it is handed, in the order the hub hands it out (shared log)."""

    wanted: frozenset[str] | None = None

    def __init__(self, name: str, log: list[Any]) -> None:
        self.name, self.log = name, log
        self.events: list[Event] = []
        self.ends = 0

    def deliver(self, event: Event) -> None:
        self.events.append(event)
        self.log.append(self.name)

    def ended(self) -> None:
        self.ends += 1
        self.log.append(f"{self.name}:end")


async def settle() -> None:
    """Let every callback scheduled so far (and the ones they schedule, a few levels deep) run."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_event_is_encoded_once_whatever_the_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = events.encode
    monkeypatch.setattr(events, "encode", lambda frame: calls.append(frame) or real(frame))
    hub, log = RoomEvents(), []
    sinks = [Sink(str(n), log) for n in range(5)]
    for sink in sinks:
        hub.attach(sink)
    pulled = hub.subscribe()  # an SSE subscriber gets the same text
    hub.publish(Command(kind="speak", seq=1, text="Hello."))
    await settle()
    assert len(calls) == 1
    texts = [s.events[0].data for s in sinks] + [(await pulled.get()).data]  # type: ignore[union-attr]
    assert all(text is texts[0] for text in texts)  # the very same str object, not equal copies
    assert json.loads(texts[0]) == {"type": "command", "kind": "speak", "seq": 1, "text": "Hello."}


async def test_publishing_delivers_nothing_before_what_was_already_scheduled() -> None:
    """The sender's ack is scheduled when its command is accepted, before the command's event is
    published: it runs first, whatever the size of the audience."""
    hub, log = RoomEvents(), []
    for n in range(3):
        hub.attach(Sink(str(n), log))
    loop = asyncio.get_running_loop()
    loop.call_soon(log.append, "ack")
    hub.publish(Command(kind="speak", seq=1, text="Hi."))
    assert log == []  # nothing delivered inside publish itself
    await settle()
    assert log == ["ack", "0", "1", "2"]


async def test_a_big_audience_is_served_a_slice_at_a_time_behind_other_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work that becomes ready while a room's audience is being served (an A2E answer on its way to a
    sender's ack, another room) runs before the room's next slice."""
    monkeypatch.setattr(events, "SLICE", 2)
    hub, log = RoomEvents(), []
    loop = asyncio.get_running_loop()

    class Trigger(Sink):
        def deliver(self, event: Event) -> None:  # something else gets ready while this slice is served
            super().deliver(event)
            if event.id == 1:
                loop.call_soon(log.append, "other room")

    hub.attach(Trigger("0", log))
    for n in range(1, 5):
        hub.attach(Sink(str(n), log))
    hub.publish(Command(kind="speak", seq=1, text="One."))
    hub.publish(Command(kind="speak", seq=2, text="Two."))
    loop.call_soon(log.append, "scheduled after")  # after the first slice, before the second
    await settle()
    assert log == ["0", "1", "scheduled after", "other room", "2", "3", "4", "0", "1", "2", "3", "4"]


async def test_each_sink_gets_the_events_in_order_and_the_end_last() -> None:
    hub, log = RoomEvents(), []
    early = Sink("early", log)
    hub.attach(early)
    hub.publish(Command(kind="speak", seq=1, text="a"))
    late = Sink("late", log)
    hub.attach(late)  # after the first event was published: gets the second only
    hub.publish(Command(kind="speak", seq=2, text="b"))
    hub.publish(RoomClosed(reason="client", room={}))
    hub.end()
    await settle()
    assert [json.loads(e.data).get("seq") for e in early.events] == [1, 2, None]
    assert [json.loads(e.data).get("seq") for e in late.events] == [2, None]
    assert early.ends == late.ends == 1 and hub.subscriber_count == 0
    after = Sink("after", log)
    hub.attach(after)  # the room is over: told at once
    assert after.ends == 1 and not after.events


async def test_a_sink_that_leaves_gets_nothing_more_and_a_failing_one_costs_the_others_nothing() -> None:
    hub, log = RoomEvents(), []

    class Broken(Sink):
        def deliver(self, event: Event) -> None:
            raise RuntimeError("a bug in one subscriber")

    gone, broken, fine = Sink("gone", log), Broken("broken", log), Sink("fine", log)
    for sink in (gone, broken, fine):
        hub.attach(sink)
    hub.publish(Command(kind="speak", seq=1, text="a"))
    hub.detach(gone)  # published, not yet delivered: not delivered
    await settle()
    hub.publish(Command(kind="speak", seq=2, text="b"))
    await settle()
    assert not gone.events
    assert [json.loads(e.data)["seq"] for e in fine.events] == [1, 2]
    assert hub.subscriber_count == 1  # the broken one was dropped


async def test_sinks_that_filter_an_event_out_cost_no_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """An audience on ``?events=command`` is not made to wait a loop turn per slice of sinks that skip
    the room's other events: the sinks that take the event fill the slice."""
    monkeypatch.setattr(events, "SLICE", 2)
    hub, log = RoomEvents(), []
    loop = asyncio.get_running_loop()
    for n in range(6):
        sink = Sink(str(n), log)
        sink.wanted = None if n in (0, 5) else frozenset({"command"})
        hub.attach(sink)
    hub.publish(RoomClosed(reason="client", room={}))  # taken by sinks 0 and 5 only: one slice
    loop.call_soon(log.append, "next turn")
    await settle()
    assert log == ["0", "5", "next turn"]  # 0 and 5 in one slice: nothing ran between them
