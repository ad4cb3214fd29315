"""Async Python client for a2e-bridge, for chatbot backends.

    async with BridgeClient("http://localhost:8000", api_key="...") as bridge:
        async with bridge.room(qa_context="...") as room:
            await room.speak("Hello!")
            await room.ask("What do you sell?")
            async for event in room.events():
                if event["type"] == "reply" and event["final"]:
                    break

HTTP (rooms, tickets, avatars) goes through :class:`BridgeClient`; a :class:`Room` holds the
websocket: commands answered by acks, events fanned out to every ``events()`` iterator, and
automatic reconnection to the same room.
"""

from .backoff import Reconnect
from .client import BridgeClient
from .errors import BridgeError, ClientError, CommandError, ConnectionLost, EventsOverflow, RoomClosed
from .fanout import EventStream
from .room import ConnectionState, Room

__version__ = "0.1.0"

__all__ = [
    "BridgeClient",
    "BridgeError",
    "ClientError",
    "CommandError",
    "ConnectionLost",
    "ConnectionState",
    "EventStream",
    "EventsOverflow",
    "Reconnect",
    "Room",
    "RoomClosed",
]
