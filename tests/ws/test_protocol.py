"""The websocket frame schema, sans I/O: ``parse`` (text in) and ``encode`` of ``Error`` frames (out)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bridge import frames as p

MAX = 1024


def parse(frame: object, max_bytes: int = MAX):
    return p.parse(frame if isinstance(frame, str) else json.dumps(frame), max_bytes)


def refused(frame: object, max_bytes: int = MAX) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        parse(frame, max_bytes)
    return info.value


# -- every frame type ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,cls", [("speak", p.Speak), ("ask", p.Ask)])
def test_text_commands(kind: str, cls: type) -> None:
    frame = parse({"type": kind, "id": "c1", "text": "Hello there."})
    assert isinstance(frame, cls)
    assert (frame.type, frame.id, frame.text) == (kind, "c1", "Hello there.")


def test_flush_ping_and_ids() -> None:
    assert isinstance(parse({"type": "flush", "id": 7}), p.Flush)
    ping = parse({"type": "ping"})
    assert isinstance(ping, p.Ping) and ping.id is None
    assert parse({"type": "ping", "id": 0}).id == 0
    assert parse({"type": "ping", "id": "x" * 128}).id == "x" * 128


def test_stream_frames_and_cancel() -> None:
    delta = parse({"type": "speak_delta", "id": 1, "stream": "answer", "text": ""})  # an empty token is fine
    assert isinstance(delta, p.SpeakDelta) and (delta.stream, delta.text) == ("answer", "")
    assert isinstance(parse({"type": "speak_end", "stream": "answer"}), p.SpeakEnd)
    assert parse({"type": "cancel", "id": "ut_x"}).id == "ut_x"
    assert refused({"type": "speak_delta", "id": "d", "text": "no stream"}).code == p.ErrorCode.INVALID_FRAME
    assert refused({"type": "speak_end", "id": "e", "stream": ""}).code == p.ErrorCode.INVALID_FRAME
    assert refused({"type": "speak_delta", "stream": "s" * 129, "text": "x"}).code == p.ErrorCode.INVALID_FRAME
    for bad in ({"type": "cancel"}, {"type": "cancel", "id": 5}, {"type": "cancel", "id": ""}):
        assert refused(bad).code == p.ErrorCode.INVALID_FRAME  # the id is the utterance's: a string


def test_set_qa_context_needs_text() -> None:
    """A2E requires the text (an empty one is refused upstream): refused here, before A2E is called;
    the length limit is the relay's."""
    exc = refused({"type": "set_qa_context", "id": 1, "text": ""})
    assert exc.code == "invalid_frame" and exc.frame_id == 1 and "text" in exc.message
    assert parse({"type": "set_qa_context", "text": "x" * 900}).text == "x" * 900


def test_rtc_event() -> None:
    event = {"kind": "stream_message", "uid": 1, "data_b64": "e30="}
    frame = parse({"type": "rtc_event", "id": "r", "event": event})
    assert isinstance(frame, p.RtcEvent) and frame.event == event


def test_unknown_fields_are_ignored() -> None:
    frame = parse({"type": "speak", "text": "hi", "extra": {"nested": True}})
    assert isinstance(frame, p.Speak) and not hasattr(frame, "extra")


def test_frames_are_immutable() -> None:
    frame = parse({"type": "speak", "text": "hi"})
    with pytest.raises(ValidationError):
        frame.text = "changed"  # type: ignore[misc]


# -- every error ---------------------------------------------------------------------------------
def test_frame_too_large_counts_utf8_bytes() -> None:
    ok = json.dumps({"type": "speak", "text": "é" * 150}, ensure_ascii=False)
    assert len(ok) < 256 < len(ok.encode())
    assert isinstance(p.parse(ok, len(ok.encode())), p.Speak)
    exc = refused(ok, max_bytes=256)
    assert exc.code == "frame_too_large" and "256" in exc.message


def test_frame_too_large_is_checked_before_json() -> None:
    assert refused("x" * (MAX + 1)).code == "frame_too_large"


@pytest.mark.parametrize("text", ["", "not json", "{", "{'type': 'ping'}", '{"type": "ping"'])
def test_bad_json(text: str) -> None:
    exc = refused(text)
    assert exc.code == "bad_json" and exc.frame_id is None


@pytest.mark.parametrize("value", [[{"type": "ping"}], "ping", 3, None, True])
def test_non_object_json(value: object) -> None:
    exc = refused(json.dumps(value))
    assert exc.code == "bad_json" and "object" in exc.message


@pytest.mark.parametrize("kind", ["shout", "", None, 3, "Speak", "pong", "ack", "error"])
def test_unknown_type(kind: object) -> None:
    exc = refused({"type": kind, "id": "u1"})
    assert exc.code == "unknown_type"
    assert exc.frame_id == "u1"
    assert "speak" in exc.message and "rtc_event" in exc.message


def test_missing_type() -> None:
    exc = refused({"id": 4, "text": "hi"})
    assert exc.code == "unknown_type" and exc.frame_id == 4


@pytest.mark.parametrize("frame,field", [
    ({"type": "speak", "id": "m"}, "text"),
    ({"type": "ask", "id": "m"}, "text"),
    ({"type": "set_qa_context", "id": "m"}, "text"),
    ({"type": "rtc_event", "id": "m"}, "event"),
])
def test_missing_field(frame: dict, field: str) -> None:
    exc = refused(frame)
    assert exc.code == "invalid_frame"
    assert exc.frame_id == "m"
    assert field in exc.message and "required" in exc.message.lower()


@pytest.mark.parametrize("frame,field", [
    ({"type": "speak", "id": 9, "text": 5}, "text"),
    ({"type": "ask", "id": 9, "text": ["a"]}, "text"),
    ({"type": "speak", "id": 9, "text": None}, "text"),
    ({"type": "set_qa_context", "id": 9, "text": {"a": 1}}, "text"),
    ({"type": "rtc_event", "id": 9, "event": []}, "event"),
    ({"type": "rtc_event", "id": 9, "event": "audio_started"}, "event"),
])
def test_wrong_types(frame: dict, field: str) -> None:
    exc = refused(frame)
    assert exc.code == "invalid_frame" and exc.frame_id == 9 and field in exc.message


@pytest.mark.parametrize("kind", ["speak", "ask"])
def test_empty_text(kind: str) -> None:
    exc = refused({"type": kind, "id": "e", "text": ""})
    assert exc.code == "invalid_frame" and exc.frame_id == "e" and "text" in exc.message


@pytest.mark.parametrize("bad_id", [1.5, [1], {"a": 1}, True, "x" * 129])
def test_invalid_id(bad_id: object) -> None:
    exc = refused({"type": "ping", "id": bad_id})
    assert exc.code == "invalid_frame" and "id" in exc.message


def test_bad_id_is_not_echoed_unless_str_or_int() -> None:
    assert refused({"type": "ping", "id": 1.5}).frame_id is None
    # an id too long to be one: the error about it has none (an error frame cannot carry it)
    assert refused({"type": "ping", "id": "x" * 129}).frame_id is None
    assert refused({"type": "nope", "id": "x" * 129}).frame_id is None
    assert refused({"type": "speak", "id": "x" * 5000, "text": 1}).frame_id is None
    assert refused({"type": "ping", "id": True}).frame_id is None  # JSON true is not the id 1
    assert refused({"type": "nope", "id": [1]}).frame_id is None


def test_several_problems_are_reported_together() -> None:
    exc = refused({"type": "speak", "id": 1.5, "text": 3})
    assert exc.code == "invalid_frame"
    assert "text" in exc.message and "id" in exc.message


# -- outgoing frames -----------------------------------------------------------------------------
def test_encode_is_compact_utf8_json() -> None:
    text = p.encode({"type": "reply", "text": "grüß dich ✓", "final": True})
    assert text == '{"type":"reply","text":"grüß dich ✓","final":true}'
    assert json.loads(text)["text"] == "grüß dich ✓"


def error_frame(code: str, message: str, frame_id: object = None, **extra: object) -> dict:
    return json.loads(p.encode(p.Error(code=code, message=message, id=frame_id, **extra)))


def test_error_frame() -> None:
    assert error_frame("bad_json", "nope") == {"type": "error", "code": "bad_json", "message": "nope"}
    assert error_frame("invalid_frame", "m", "id-1") == {"type": "error", "code": "invalid_frame",
                                                         "message": "m", "id": "id-1"}
    assert error_frame("bad_json", "m", 0)["id"] == 0  # a falsy id is still an id
    framed = error_frame("invalid_input", "too long", 3, details={"limit": 5000})
    assert framed["details"] == {"limit": 5000} and framed["id"] == 3


def test_error_round_trip_through_parse() -> None:
    """What the endpoint does with a ProtocolError: an error frame echoing the id."""
    exc = refused({"type": "speak", "id": "abc"})
    frame = error_frame(exc.code, exc.message, exc.frame_id)
    assert frame["type"] == "error" and frame["code"] == "invalid_frame" and frame["id"] == "abc"


def test_close_codes_are_the_public_contract() -> None:
    assert (p.CloseCode.ROOM_CLOSED, p.CloseCode.SLOW_CONSUMER, p.CloseCode.ROOM_NOT_OPEN,
            p.CloseCode.UNAUTHORIZED, p.CloseCode.NOT_FOUND, p.CloseCode.FLOOD) == (4000, 4008, 4009, 4401, 4404, 4429)
    assert p.CLIENT_TYPES == ("speak", "ask", "flush", "set_qa_context", "ping", "rtc_event", "speak_delta", "speak_end",
                             "cancel")
