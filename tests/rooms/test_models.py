import itertools
import json

import pytest

from bridge.rooms.models import (
    CloseReason,
    InvalidTransition,
    Room,
    RoomError,
    RoomState,
)

S = RoomState

# Written out independently of TRANSITIONS so the test checks the table.
LEGAL = {
    (S.CREATING, S.OPEN),
    (S.CREATING, S.FAILED),
    (S.CREATING, S.CLOSING),
    (S.OPEN, S.CLOSING),
    (S.CLOSING, S.CLOSED),
}
ALL_PAIRS = list(itertools.product(RoomState, RoomState))


def make_room(state: RoomState = S.CREATING, **kw) -> Room:
    room = Room.new(tenant="t1", avatar_id="av1", expire_seconds=600, now=1000.0, **kw)
    room.state = state
    return room


@pytest.mark.parametrize("src,dst", sorted(LEGAL))
def test_legal_transitions(src, dst):
    room = make_room(src)
    room.transition(dst, now=2000.0)
    assert room.state is dst


@pytest.mark.parametrize("src,dst", [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transitions_raise(src, dst):
    room = make_room(src)
    with pytest.raises(InvalidTransition) as exc:
        room.transition(dst, now=2000.0)
    assert isinstance(exc.value, RoomError)
    assert (exc.value.from_state, exc.value.to_state) == (src, dst)
    assert exc.value.room_id == room.id
    assert room.state is src


def test_closing_is_not_allowed_to_fail():
    # An unconfirmed leave must stay live (CLOSING) so it is retried.
    room = make_room(S.CLOSING)
    with pytest.raises(InvalidTransition):
        room.transition(S.FAILED, now=1.0)


def test_reason_recorded_first_wins_and_closed_at_set():
    room = make_room(S.OPEN)
    room.transition(S.CLOSING, reason=CloseReason.IDLE, now=1500.0)
    assert room.close_reason is CloseReason.IDLE
    assert room.closed_at is None
    room.transition(S.CLOSED, reason=CloseReason.SHUTDOWN, now=1600.0)
    assert room.close_reason is CloseReason.IDLE
    assert room.closed_at == 1600.0


def test_reason_on_closed_when_closing_had_none():
    room = make_room(S.CLOSING)
    room.transition(S.CLOSED, reason=CloseReason.CLIENT, now=1600.0)
    assert room.close_reason is CloseReason.CLIENT


def test_failed_records_reason_and_closed_at():
    room = make_room()
    room.transition(S.FAILED, reason=CloseReason.ERROR, now=1001.0)
    assert room.close_reason is CloseReason.ERROR
    assert room.closed_at == 1001.0
    assert not room.is_live


def test_reason_rejected_for_open():
    room = make_room()
    with pytest.raises(ValueError):
        room.transition(S.OPEN, reason=CloseReason.CLIENT, now=1.0)
    assert room.state is S.CREATING


@pytest.mark.parametrize("state", list(RoomState))
def test_is_live(state):
    assert make_room(state).is_live == (state in {S.CREATING, S.OPEN, S.CLOSING})


def test_new_room_defaults():
    room = make_room()
    assert room.id.startswith("rm_") and len(room.id) > 10
    assert room.state is S.CREATING
    assert room.last_activity == room.created_at == 1000.0
    assert room.version == 0
    assert make_room().id != room.id


def test_record_round_trip_is_json():
    room = make_room(S.OPEN, qa_context="hello")
    room.channel, room.app_id, room.token, room.uid = "ch", "app", "tok", 42
    room.expires_at = 1600.0
    room.error = "x"
    rec = room.to_record()
    back = Room.from_record(json.loads(json.dumps(rec)))
    assert back == room
    assert back.state is S.OPEN


def test_from_record_ignores_unknown_keys():
    rec = make_room().to_record() | {"added_in_a_later_version": 1}
    assert Room.from_record(rec).tenant == "t1"


def test_to_public():
    room = make_room(S.OPEN, qa_context="abcdef")
    room.channel, room.app_id, room.token, room.uid = "ch", "app", "tok", 7
    room.expires_at = 1600.0
    room.error = "upstream said: secret stuff"
    pub = room.to_public()
    json.dumps(pub)
    assert pub["id"] == room.id
    assert pub["state"] == "open"
    assert pub["token"] == "tok"
    assert pub["expires_at"] == "1970-01-01T00:26:40Z"
    assert pub["expires_at_epoch"] == 1600.0
    assert pub["created_at"] == "1970-01-01T00:16:40Z"
    assert pub["qa_context_chars"] == 6
    assert pub["close_reason"] is None and pub["closed_at"] is None
    for private in ("tenant", "qa_context", "error", "version", "last_activity"):
        assert private not in pub


class TestUsage:
    def test_closed_room_costs_until_leave(self):
        room = make_room(S.CLOSING)  # created 1000, expires 1600
        room.transition(S.CLOSED, now=1100.0)
        assert room.usage_seconds(since=0) == 100
        assert room.usage_seconds(since=1050) == 50
        assert room.usage_seconds(since=1200) == 0

    def test_late_leave_capped_at_reservation(self):
        room = make_room(S.CLOSING)
        room.expires_at = 1600.0
        room.transition(S.CLOSED, now=5000.0)
        assert room.usage_seconds(since=0) == 600

    def test_live_room_costs_full_reservation(self):
        room = make_room(S.OPEN)
        room.expires_at = 1600.0
        assert room.usage_seconds(since=0) == 600
        assert room.usage_seconds(since=1500) == 100
        assert room.usage_seconds(since=2000) == 0

    def test_creating_room_uses_expire_seconds(self):
        assert make_room().usage_seconds(since=0) == 600

    def test_failed_room_costs_nothing(self):
        room = make_room()
        room.transition(S.FAILED, now=1010.0)
        assert room.usage_seconds(since=0) == 0
