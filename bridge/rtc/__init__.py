"""Room events: watch an A2E avatar's channel and say what the avatar says.

``events`` (raw channel events, wire room events), ``reassembler`` (sans-I/O
QA stream-messages -> replies), ``base`` (the RoomObserver seam), and the
observers: ``agora`` (native SDK, optional) and ``simulated`` (the A2E
simulator's feed). ``wire`` is the channel-event wire format (simulator feed,
forwarding browsers). ``accesstoken`` builds and reads Agora AccessToken2.
Importing this package never imports the Agora SDK.
"""

from .base import (
    JoinError,
    ObserverError,
    ObserverUnavailable,
    ObserveTarget,
    QueueSubscription,
    RoomObserver,
    Subscription,
)
from .events import (
    AudioStarted,
    AudioStopped,
    ChannelEvent,
    Reply,
    RoomEvent,
    SpeakingStarted,
    SpeakingStopped,
    StreamMessage,
)
from .reassembler import Reassembler

__all__ = [
    "AudioStarted",
    "AudioStopped",
    "ChannelEvent",
    "JoinError",
    "ObserveTarget",
    "ObserverError",
    "ObserverUnavailable",
    "QueueSubscription",
    "Reassembler",
    "Reply",
    "RoomEvent",
    "RoomObserver",
    "SpeakingStarted",
    "SpeakingStopped",
    "StreamMessage",
    "Subscription",
]
