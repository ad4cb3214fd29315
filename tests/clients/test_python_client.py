"""The Python client (clients/python) against a real bridge on loopback, backed by the simulator.

Everything goes over real sockets. Waits are bounded by ``asyncio.wait_for``; nothing sleeps a
fixed time and then asserts. Network drops are simulated by aborting the client's TCP transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from a2e_bridge_client import (
    BridgeClient,
    BridgeError,
    CommandError,
    ConnectionLost,
    ConnectionState,
    EventsOverflow,
    EventStream,
    Reconnect,
    Room,
    RoomClosed,
)

from tests.helpers import add_fault, poll

T = TypeVar("T")
TIMEOUT = 10.0
FAST = Reconnect(initial_delay=0.05, max_delay=0.5)


async def within(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def next_of(events: EventStream, event_type: str, **match: Any) -> dict[str, Any]:
    """The next event of type ``event_type`` (with the given field values)."""
    async def find() -> dict[str, Any]:
        async for event in events:
            if event["type"] == event_type and all(event.get(k) == v for k, v in match.items()):
                return event
        raise AssertionError(f"events ended before a {event_type} event")
    return await within(find())


async def drain(events: EventStream) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event async for event in events]
    return await within(collect())


async def stall_next_speak(bridge: Any, seconds: float = 1.0) -> None:
    """Make the simulator sit on the next A2E speak call, so later commands stay queued."""
    add_fault(bridge.sim, endpoint="speak", kind="timeout", seconds=seconds, times=1)


def drop_network(room: Room) -> None:
    """A network failure as the client sees it: the TCP connection dies without a close frame."""
    assert room._ws is not None
    room._ws.transport.abort()


# -- HTTP and the basic round trip ----------------------------------------------------------------

async def test_create_connect_speak_and_leave_on_exit(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client:
        assert (await client.avatars())[0]["_id"]
        async with client.room(expire_seconds=60) as room:
            assert room.state.value == "open"
            assert room.info["state"] == "open" and room.info["channel"] and room.info["token"]
            assert room.id in {r["id"] for r in await client.list_rooms(live_only=True)}
            first = await within(room.speak("Hello there."))
            second = await within(room.speak("Welcome to the shop."))
            assert first["kind"] == "speak" and isinstance(first["position"], int)
            assert second["position"] > first["position"] and second["positions"] == [second["position"]]
            assert (await within(room.ping()))["type"] == "pong"
            assert (await within(room.set_qa_context("We sell bikes.")))["chars"] == len("We sell bikes.")
            assert (await within(room.flush()))["flushed"] == 0
        assert room.state is ConnectionState.CLOSED
        assert room.info["state"] in ("closing", "closed")
        assert (await bridge.http.get(f"/v1/rooms/{room.id}")).json()["state"] in ("closing", "closed")
        with pytest.raises(ConnectionLost):
            await room.speak("too late")


async def test_ask_reply_reaches_every_events_iterator(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client, client.room(qa_context="We sell bikes.") as room:
        first, second = room.events(), room.events()  # subscribed now; iterated after the ask
        ack = await within(room.ask("What do you sell?"))
        assert ack["kind"] == "ask"
        for events in (first, second):
            command = await next_of(events, "command", kind="ask")
            assert command["seq"] == ack["position"]
            reply = await next_of(events, "reply", final=True)
            assert reply["text"] and reply["reply_id"]  # answered from the QA context


async def test_http_errors_carry_the_bridge_error(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client:
        with pytest.raises(BridgeError) as caught:
            await client.create_room(expire_seconds=1)
        assert caught.value.status == 422 and caught.value.code == "invalid_input"
        assert caught.value.details
        with pytest.raises(BridgeError) as caught:
            await client.get_room("rm_nope")
        assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_api_keys_bearer_and_refusals(bridge_factory: Callable[..., Awaitable[Any]]) -> None:
    bridge = await bridge_factory(api_keys={"key1": "acme"})
    async with BridgeClient(bridge.url, api_key="wrong") as intruder:
        with pytest.raises(BridgeError) as caught:
            await intruder.create_room()
        assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    async with BridgeClient(bridge.url) as anonymous:
        with pytest.raises(BridgeError) as caught:
            await anonymous.list_rooms()
        assert caught.value.status == 401
    async with BridgeClient(bridge.url, api_key="key1") as client, client.room() as room:
        assert (await within(room.speak("Only for acme.")))["kind"] == "speak"
        # The websocket refuses a bad key too (4401), and the client does not retry it.
        async with BridgeClient(bridge.url, api_key="wrong", reconnect=FAST) as intruder:
            stranger = Room(intruder, {"id": room.id})
            with pytest.raises(RoomClosed) as refused:
                await within(stranger.connect())
            assert refused.value.close_code == 4401
            assert stranger.state is ConnectionState.CLOSED
            # ... and an unknown room is 4404 for a valid key.
            ghost = Room(client, {"id": "rm_nope"})
            with pytest.raises(RoomClosed) as missing:
                await within(ghost.connect())
            assert missing.value.close_code == 4404



async def test_a_stale_ticket_is_replaced_by_a_fresh_one(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client, client.room() as room:
        info = {**room.info, "ws_ticket": f"{room.id}.ZGV2.1.expired"}  # as if created long ago
        async with Room(client, info) as late:
            assert (await within(late.ping()))["type"] == "pong"

# -- command errors -------------------------------------------------------------------------------

async def test_invalid_and_flushed_commands_raise_command_error(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client, client.room() as room:
        with pytest.raises(CommandError) as invalid:
            await within(room.speak(""))
        assert invalid.value.code == "invalid_frame"

        await stall_next_speak(bridge)
        first = asyncio.create_task(room.speak("This one keeps A2E busy."))
        second = asyncio.create_task(room.speak("This one waits in the queue."))
        flushed = await within(room.flush())
        assert flushed["flushed"] >= 1
        with pytest.raises(CommandError) as dropped:
            await within(second)
        assert dropped.value.code == "flushed"
        await within(asyncio.gather(first, return_exceptions=True))
        # The socket is still fine after refusals.
        assert (await within(room.speak("Still here.")))["kind"] == "speak"


# -- reconnection ---------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["ticket", "bearer"])
async def test_reconnects_to_the_same_room_after_a_network_drop(
        bridge_factory: Callable[..., Awaitable[Any]], auth: str) -> None:
    bridge = await bridge_factory(api_keys={"key1": "acme"}) if auth == "bearer" else await bridge_factory()
    key = "key1" if auth == "bearer" else None
    async with BridgeClient(bridge.url, api_key=key, reconnect=FAST) as client, client.room() as room:
        events = room.events()
        before = await within(room.speak("Before the drop."))
        old_ws = room._ws

        drop_network(room)
        after = await within(room.speak("After the drop."))  # waits for the reconnect, then is acked

        assert room.state is ConnectionState.OPEN and room._ws is not old_ws
        assert after["position"] > before["position"]  # the same room's queue: positions continue
        assert room.id in bridge.rooms.registry.live and bridge.rooms.registry.live[room.id].room.state.value == "open"
        await poll(lambda: bridge.rooms.registry.live[room.id].clients == 1, TIMEOUT)  # the dropped socket was detached
        # The events iterator survived the reconnect.
        assert (await next_of(events, "command", seq=after["position"]))["text"] == "After the drop."


async def test_command_in_flight_during_a_drop_fails_with_connection_lost(bridge: Any) -> None:
    async with BridgeClient(bridge.url, reconnect=FAST) as client, client.room() as room:
        await stall_next_speak(bridge)
        pending = asyncio.create_task(room.speak("Said once, never twice."))
        await poll(lambda: bool(room._pending), TIMEOUT)
        drop_network(room)
        with pytest.raises(ConnectionLost):
            await within(pending)
        # Not resent by the client: A2E sees the lost command at most once (the bridge's queue
        # still carries it), and the next command is acked on the new socket.
        ack = await within(room.speak("Next."))
        assert ack["kind"] == "speak"
        texts = sim_commands(bridge, room.info["channel"])
        assert texts.count("Said once, never twice.") <= 1 and texts[-1] == "Next."


def sim_commands(bridge: Any, channel: str) -> list[str]:
    """The texts A2E (the simulator) received for a channel, in order."""
    return [c["text"] for c in bridge.sim.state.rooms[channel].commands]


class Stalled(Reconnect):
    """A policy whose every retry waits a minute: the reconnect cannot happen during the test."""

    def delays(self) -> Iterator[float]:
        while True:
            yield 60.0


async def test_commands_wait_for_the_reconnect_only_up_to_connect_timeout(bridge: Any) -> None:
    never = Stalled()
    async with BridgeClient(bridge.url, reconnect=never, connect_timeout=0.3) as client, client.room() as room:
        drop_network(room)
        await poll(lambda: room.state is ConnectionState.RECONNECTING, TIMEOUT)
        with pytest.raises(ConnectionLost):
            await within(room.speak("Anyone there?"))
    assert room.state is ConnectionState.CLOSED  # close() ended the pending reconnect cleanly


# -- the end of a room ----------------------------------------------------------------------------

async def test_room_deleted_elsewhere_ends_events_without_reconnecting(bridge: Any) -> None:
    async with BridgeClient(bridge.url, reconnect=FAST) as client:
        room = await client.create_room()
        async with room:
            first, second = room.events(), room.events()
            await within(room.speak("Goodbye soon."))
            deleted = await bridge.http.delete(f"/v1/rooms/{room.id}")  # another HTTP client
            assert deleted.status_code == 200
            for events in (first, second):
                seen = await drain(events)  # ends by itself after room_closed
                assert seen[-1]["type"] == "room_closed" and seen[-1]["reason"] == "client"
            await poll(lambda: room.state is ConnectionState.CLOSED, TIMEOUT)
            assert room._runner is not None and room._runner.done()  # no reconnect loop left
            assert room.info["state"] == "closed"
            with pytest.raises(RoomClosed) as ended:
                await within(room.speak("Hello?"))
            assert ended.value.close_code == 4000
            assert await drain(room.events()) == []  # late iterators end at once


async def test_get_room_attaches_without_leaving(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as owner, owner.room() as room:
        events = room.events()
        async with BridgeClient(bridge.url) as other:
            attached = await other.get_room(room.id)
            async with attached:
                ack = await within(attached.speak("From the second backend."))
            assert attached.state is ConnectionState.CLOSED
        assert bridge.rooms.registry.live[room.id].room.state.value == "open"  # the guest did not leave it
        assert (await next_of(events, "command", seq=ack["position"]))["text"] == "From the second backend."
        assert (await within(room.speak("Owner still connected.")))["kind"] == "speak"


async def test_an_events_filter_takes_only_those_events(bridge: Any) -> None:
    """``events=``: the room's websocket asks the bridge for commands only; an unknown type is
    refused at once, for good (no reconnect can fix it)."""
    async with BridgeClient(bridge.url) as client, client.room(events=["command"]) as room:
        assert room.event_filter == ("command",)
        events = room.events()
        first = await within(room.speak("One."))  # its own ack still comes
        await within(room.speak("Two."))
        got: list[dict[str, Any]] = []
        while len(got) < 2:  # the events, past this client's own `queued` answers
            if (event := await within(events.__anext__()))["type"] != "queued":
                got.append(event)
        assert [(e["type"], e["seq"]) for e in got] == [("command", first["position"]),
                                                          ("command", first["position"] + 1)]
        with pytest.raises(RoomClosed) as refused:
            async with await client.get_room(room.id, events=["command", "acks"]):
                pass
        assert refused.value.close_code == 1008 and "acks" in str(refused.value)


async def test_without_reconnect_a_drop_ends_the_room_loudly(bridge: Any) -> None:
    async with BridgeClient(bridge.url, reconnect=None) as client, client.room() as room:
        events = room.events()
        drop_network(room)
        with pytest.raises(ConnectionLost):
            await drain(events)
        assert room.state is ConnectionState.CLOSED
        with pytest.raises(ConnectionLost):
            await within(room.speak("Gone."))
    assert bridge.rooms.registry.live.get(room.id) is None  # still left on exit, over HTTP


async def test_room_block_leaves_the_room_when_the_body_fails(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client:
        with pytest.raises(RuntimeError):
            async with client.room() as room:
                raise RuntimeError("the chatbot crashed")
        assert (await client.get_room(room.id)).info["state"] in ("closing", "closed")


async def test_a_lagging_events_iterator_is_cut_off_alone(bridge: Any) -> None:
    texts = [f"Sentence {n}." for n in range(6)]
    async with BridgeClient(bridge.url, event_buffer=4) as client, client.room() as room:
        reader, laggard = room.events(), room.events()

        async def read_commands() -> list[str]:
            seen: list[str] = []
            async for event in reader:
                if event["type"] == "command":
                    seen.append(event["text"])
                    if len(seen) == len(texts):
                        return seen
            raise AssertionError("events ended early")

        reading = asyncio.create_task(read_commands())
        for text in texts:
            await within(room.speak(text))
        assert await within(reading) == texts  # the one that keeps up gets everything
        with pytest.raises(EventsOverflow):
            await drain(laggard)  # six commands did not fit in its buffer of four
        assert (await within(room.ping()))["type"] == "pong"  # the room itself is unaffected


async def test_a_chatbot_streams_an_llm_answer_token_by_token_into_speech(bridge: Any, llm: Any) -> None:
    """The chatbot backend of the README: an LLM's streamed answer (the openai package against a local
    OpenAI-compatible server) goes token by token into ``room.speak_stream``. Before the test lets
    the last token through, sentence 1 must already be with A2E (the simulator): the overlap."""
    from openai import AsyncOpenAI

    from tests.fakes.llm import Script

    gate = asyncio.Event()
    llm.default = Script(["The", " first", " sentence", " is", " here", ".", " Then", " the", " second", " one", "!",
                          " Last", " words"], token_delay=0.002, gate=gate)
    channel_commands: list[dict[str, Any]] = []
    async with BridgeClient(bridge.url) as client, client.room() as room, \
            AsyncOpenAI(base_url=llm.url + "/v1", api_key="local", max_retries=0) as model:
        channel_commands = bridge.sim.state.rooms[room.info["channel"]].commands
        events = room.events()

        async def answer() -> Any:
            stream = await model.chat.completions.create(model="m", stream=True,
                                                         messages=[{"role": "user", "content": "Hi"}])
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if chunk.choices[0].delta.content == " words":
                        overlap = [c["text"] for c in channel_commands]  # what A2E has before the last token
                        assert overlap[0] == "The first sentence is here." and "Last words" not in overlap, overlap
                    yield chunk.choices[0].delta.content

        async def open_gate() -> None:  # the model's last token waits until sentence 1 reached A2E
            await poll(lambda: [c["text"] for c in channel_commands][:1] == ["The first sentence is here."],
                       what="sentence 1 with A2E while the stream is still open")
            gate.set()

        opener = asyncio.create_task(open_gate())
        ack = await within(room.speak_stream(answer()))
        await within(opener)
        assert ack["kind"] == "speak_end" and len(ack["positions"]) == len(ack["utterances"]) == 3
        assert [c["text"] for c in channel_commands] == ["The first sentence is here.", "Then the second one!",
                                                         "Last words"]
        done = await next_of(events, "utterance", id=ack["utterance"], state="done")
        assert done["kind"] == "stream"


async def test_speak_stream_stops_when_the_stream_is_cancelled(bridge: Any) -> None:
    async with BridgeClient(bridge.url) as client, client.room() as room:
        events = room.events()
        cancelled = asyncio.Event()

        async def tokens() -> Any:
            yield "Unfinished sentence that"
            first = await next_of(events, "utterance", kind="stream", state="queued")
            await within(room.cancel(first["id"]))
            cancelled.set()
            for _ in range(100):
                yield " goes on"
                await asyncio.sleep(0.01)

        with pytest.raises(CommandError) as info:
            await within(room.speak_stream(tokens(), min_interval=0.0))
        assert info.value.code == "cancelled" and cancelled.is_set()
        assert bridge.sim.state.rooms[room.info["channel"]].commands == []
        assert (await within(room.speak("Still usable.")))["position"] == 1


async def test_told_to_reconnect_4012_it_reconnects_at_once(bridge: Any) -> None:
    """A hand-over (many instances) closes with 4012: the client comes back at once, not after its backoff."""
    from bridge.frames import CloseCode

    slow = Reconnect(initial_delay=60, max_delay=60)  # a drop would wait up to a minute
    async with BridgeClient(bridge.url, reconnect=slow, connect_timeout=5) as client, client.room() as room:
        old_ws = room._ws
        await poll(lambda: bridge.rooms.registry.live[room.id].events.subscriber_count == 1, TIMEOUT)
        (conn,) = bridge.rooms.registry.live[room.id].events.subscribers()
        conn.shut(CloseCode.RECONNECT, "the room moved to another instance: reconnect")
        await poll(lambda: room._ws is not old_ws and room.state is ConnectionState.OPEN, 3)
        assert (await within(room.speak("Right back."), timeout=3))["kind"] == "speak"
