"""The protocol's one definition (``bridge/frames.py``): the clients agree with it, every error code
is in it, and text that is not Unicode can neither get in nor break the way out."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge import errors, frames
from bridge.frames import SERVER_TYPES, CloseCode, ErrorCode

ROOT = Path(__file__).resolve().parent.parent
PY_ROOM = ROOT / "clients" / "python" / "a2e_bridge_client" / "room.py"
JS_CLIENT = ROOT / "clients" / "js" / "bridge.mjs"


def python_close_codes() -> dict[str, int]:
    """``CLOSE_X = 4xxx`` assignments of the Python client's room module, read as source."""
    codes = {}
    for node in ast.parse(PY_ROOM.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.startswith("CLOSE_") and isinstance(node.value, ast.Constant)):
            codes[node.targets[0].id.removeprefix("CLOSE_")] = node.value.value
    return codes


def js_close_codes() -> dict[str, int]:
    block = re.search(r"export const CloseCodes = Object\.freeze\(\{(.*?)\}\);", JS_CLIENT.read_text(), re.S)
    assert block, "CloseCodes not found in bridge.mjs"
    return {name: int(value) for name, value in re.findall(r"(\w+):\s*(\d+)", block.group(1))}


def js_handled_types() -> set[str]:
    """The frame types the JS client's ``_handle`` switch names."""
    source = JS_CLIENT.read_text()
    body = source[source.index("  _handle(frame) {"):]
    body = body[:body.index("\n  }\n")]
    return set(re.findall(r'case "(\w+)":', body))


def python_handled_types() -> set[str]:
    """The frame types the Python client's ``_dispatch`` compares ``kind`` with."""
    source = PY_ROOM.read_text()
    body = source[source.index("    def _dispatch("):]
    body = body[:body.index("\n    # --")]
    return {t for group in re.findall(r"kind (?:==|in) (\([^)]*\)|\"\w+\")", body) for t in re.findall(r'"(\w+)"', group)}


def test_the_clients_close_codes_are_the_servers() -> None:
    server = {code.name: code.value for code in CloseCode}
    assert server == {"BAD_QUERY": 1008, "ROOM_CLOSED": 4000, "SLOW_CONSUMER": 4008, "ROOM_NOT_OPEN": 4009, "RECONNECT": 4012,
                      "UNAUTHORIZED": 4401, "NOT_FOUND": 4404, "FLOOD": 4429}
    assert js_close_codes() == server
    python = python_close_codes()
    assert python and python.items() <= server.items()  # the Python client names those it acts on
    assert python["RECONNECT"] == 4012  # ... reconnecting at once on it (a hand-over)


def test_the_clients_handle_only_frames_the_server_sends() -> None:
    assert set(SERVER_TYPES) == {"room", "ack", "error", "command", "reply", "speaking_started", "speaking_stopped",
                                 "room_closed", "pong", "ticket", "queued", "utterance"}
    for handled in (js_handled_types(), python_handled_types()):
        assert {"ack", "pong", "error", "room", "room_closed", "ticket"} <= handled <= set(SERVER_TYPES)


def test_every_error_code_the_bridge_sends_is_an_error_code() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for cls in subclasses(errors.BridgeError):
        assert isinstance(cls.code, ErrorCode), cls
    source = (ROOT / "bridge" / "errors.py").read_text()
    assert not re.search(r'code="', source)  # custom codes come from the enum too


def test_encode_never_raises_on_a_lone_surrogate() -> None:
    frame = frames.Command(kind="speak", seq=1, text="a\ud800b é")
    text = frames.encode(frame)
    text.encode("utf-8")  # sendable
    assert json.loads(text)["text"] == "a\ud800b é"
    assert frames.encode({"text": "ok é"}) == '{"text":"ok é"}'  # the usual output is not escaped


@pytest.mark.parametrize("raw", [
    '{"type": "speak", "id": "s", "text": "\\ud800"}',
    '{"type": "speak", "id": "s", "text": "fine", "extra": {"deep": ["\\udfff"]}}',
    '{"type": "ping", "id": "s", "\\udc00": 1}',
    '{"type": "speak", "id": "s", "text": "\ud800"}',  # a literal one, for callers that pass Python text
])
def test_parse_refuses_text_that_is_not_unicode(raw: str) -> None:
    with pytest.raises(frames.ProtocolError) as info:
        frames.parse(raw, 1024)
    assert info.value.code == ErrorCode.INVALID_TEXT and info.value.frame_id == "s"


def test_parse_accepts_surrogate_pairs_and_does_not_echo_an_invalid_id() -> None:
    assert frames.parse('{"type": "speak", "text": "\\ud83d\\ude00"}', 1024).text == "😀"  # type: ignore[union-attr]
    with pytest.raises(frames.ProtocolError) as info:
        frames.parse('{"type": "ping", "id": "\\ud800"}', 1024)
    assert info.value.code == ErrorCode.INVALID_TEXT and info.value.frame_id is None


async def test_a_lone_surrogate_over_the_websocket_is_an_error_frame(bridge: Any) -> None:
    room = (await bridge.http.post("/v1/rooms", json={})).json()
    url = bridge.url.replace("http://", "ws://", 1) + f"/v1/rooms/{room['id']}/ws"
    async with asyncio.timeout(10), connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "room"
        await ws.send('{"type": "speak", "id": "bad", "text": "\\ud800"}')
        error = json.loads(await ws.recv())
        assert (error["type"], error["id"], error["code"]) == ("error", "bad", "invalid_text")
        await ws.send('{"type": "ping", "id": "still here"}')
        assert json.loads(await ws.recv()) == {"type": "pong", "id": "still here"}
    assert bridge.sim.state.rooms[room["channel"]].commands == []
