"""Hostile websocket input against a real ``a2e-bridge serve``: N frames over C connections.

    python scripts/ws_fuzz.py                      # 100,000 frames over 8 connections (the issue's run)
    python scripts/ws_fuzz.py -n 3000 --seed 7     # shorter

It starts ``a2e-bridge serve`` (on the embedded simulator, its log to a file), opens one room and
C websockets to it, and sends a seeded mix of hostile frames (lone surrogates in every field, deep
nesting, NaN, huge numbers, junk types, junk ``rtc_event`` payloads, oversized frames, binary and
fragmented frames, invalid UTF-8, speak/ask/QA-context edge cases, streams and cancels of every odd
kind). Each connection reads what the server answers while it sends; when the server closes it,
the close code is counted and the connection reopens. At the end every connection sends a ``ping``
that must be answered. Report:
tracebacks and ERROR lines in the server's log, closes by code (1006: ended without a close frame),
answers by type and error code, final pings answered. Exit status 1 unless 0 tracebacks, 0
abnormal closes and every final ping answered.

``fuzz()`` and ``hostile_frames()`` are importable (the test suite runs a bounded version).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

if not __package__:  # run as a file (python scripts/ws_fuzz.py): the repository root, for scripts.serve
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.serve import bridge_server  # noqa: E402

MAX_FRAME = 65_536  # BRIDGE_WS_MAX_FRAME_BYTES the server is started with
ABNORMAL = {1006, 1011}  # no close frame at all; the server's "internal error"

Frame = tuple[str, Any]  # (kind, payload): "text" str, "bytes" bytes (binary), "raw" bytes (text, maybe
#                          invalid UTF-8), "fragments" list[str]


# -- the frames ------------------------------------------------------------------------------------
LONE = ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\udfff\\ud800", "a\\ud800b", "\\ud83d", "\\ude00\\ud83d"]
PAIRED = ["\\ud83d\\ude00", "\\ud800\\udc00"]  # valid pairs: must be accepted
ODD_TEXT = ["\u0000", "\u2028\u2029", "\u202e", "e\u0301" * 50, "\U0001f600" * 100, "\ufeff", "\uffff", " \t\n ",
            "<script>alert(1)</script>", "' OR 1=1 --", "{{7*7}}", "%s%n%x", "\\", "\"", "\x7f\x1b[31m"]
TYPES = ["speak", "ask", "flush", "set_qa_context", "ping", "rtc_event", "speak_delta", "speak_end", "cancel"]
JUNK_VALUES: list[str] = ["null", "true", "false", "0", "-1", "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
                          "123456789012345678901234567890123", "1.5", "[]", "{}", '""', '"x"', "[1,[2,[3]]]",
                          '{"a":{"b":{}}}', "-0", "1E+2"]


def _s(escaped: str) -> str:
    """A JSON string literal from text that may hold \\u escapes already."""
    return f'"{escaped}"'


def _junk_rtc_event(rng: random.Random) -> str:
    payloads = [b"not json", b"\xff\xfe\xfd", b"{}", b"[]", b'{"type":"QA"}', b'{"type":"QA","message":123}',
                b'{"type":"QA","message":"hi","pos":"sideways"}', b'{"type":"QA","message":"\\ud800","pos":"end"}',
                b'{"type":"QA","message":null,"pos":null}', b"[" * 5000, b'{"type":"QA","message":"' + b"x" * 20000 + b'"}',
                json.dumps({"type": "QA", "message": "ok", "pos": rng.choice(["start", "middle", "end"])}).encode()]
    data = base64.b64encode(rng.choice(payloads)).decode()
    events = [
        {"kind": "stream_message", "uid": rng.choice([0, 1, -1, 2**63, 2**64 + 1]), "data_b64": data},
        {"kind": "stream_message", "uid": 1, "data_b64": "!!!not base64!!!"},
        {"kind": "stream_message", "uid": 1, "data_b64": data, "stream_id": "x"},
        {"kind": "stream_message", "uid": "1", "data_b64": data},
        {"kind": rng.choice(["audio_started", "audio_stopped"]), "uid": rng.randint(-5, 5)},
        {"kind": "teleport", "uid": 1},
        {"uid": 1},
        {},
    ]
    if rng.random() < 0.3:
        return '{"type":"rtc_event","event":' + rng.choice(JUNK_VALUES + ['"\\ud800"', '{"kind":"\\udc00","uid":1}']) + "}"
    return json.dumps({"type": "rtc_event", "id": rng.randint(0, 9), "event": rng.choice(events)})


def hostile_frame(rng: random.Random, n: int) -> Frame:
    """One hostile frame; ``n`` (its number) makes ids unique where the frame has a plain id."""
    roll = rng.random()
    kind = rng.choice(TYPES)
    if roll < 0.22:  # a lone surrogate somewhere: the id, the text, the type, a key, a nested value
        lone = rng.choice(LONE)
        where = rng.randrange(6)
        if where == 0:
            return "text", f'{{"type":"{kind}","id":{_s(lone)},"text":"hello"}}'
        if where == 1:
            return "text", f'{{"type":"{kind}","id":"f{n}","text":{_s("x" + lone + "y")}}}'
        if where == 2:
            return "text", f'{{"type":{_s(lone)},"id":"f{n}"}}'
        if where == 3:
            return "text", f'{{"type":"ping","id":"f{n}",{_s(lone)}:1}}'
        if where == 4:
            return "text", f'{{"type":"{kind}","id":"f{n}","event":{{"kind":{_s(lone)},"uid":1}},"text":"t"}}'
        return "text", f'{{"type":"speak","id":{_s(lone * rng.randint(1, 40))},"text":{_s(lone * rng.randint(1, 40))}}}'
    if roll < 0.27:  # valid surrogate pairs (emoji): accepted, answered
        return "text", f'{{"type":"{rng.choice(["ping", "flush"])}","id":{_s("p" + rng.choice(PAIRED))}}}'
    if roll < 0.33:  # deep nesting, in and out of the frame's fields
        depth = rng.choice([100, 199, 200, 201, 1000, 10_000, 30_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        nested = opener * depth + "1" + closer * depth
        if rng.random() < 0.5:
            return "text", nested[:MAX_FRAME - 10] if len(nested) > MAX_FRAME else nested
        return "text", f'{{"type":"{kind}","id":"f{n}","text":{nested[:30_000]},"event":{nested[:30_000]}}}'
    if roll < 0.40:  # not JSON, or not an object
        junk = rng.choice(["", " ", "{", "}", "{\"type\":", "[", "\"unterminated", "{'type':'ping'}", "ping",
                           "{\"type\":\"ping\",}", "\x00", "\ufeff{\"type\":\"ping\"}", "{\"type\":\"ping\"}garbage",
                           *JUNK_VALUES])
        return "text", junk
    if roll < 0.48:  # ids of every odd kind
        frame_id = rng.choice([*JUNK_VALUES, '"' + "i" * rng.choice([128, 129, 5000]) + '"', '"\\u0000"',
                               '"\\u202e"', f'"{"🙂" * 200}"'])
        return "text", f'{{"type":"{rng.choice(["ping", "flush", "speak"])}","id":{frame_id},"text":"x"}}'
    if roll < 0.53:  # types of every odd kind
        frame_type = rng.choice([*JUNK_VALUES, '"PING"', '"ping "', '"__proto__"', '"ack"', '"error"', '"room"'])
        return "text", f'{{"type":{frame_type},"id":"f{n}"}}'
    if roll < 0.60:  # text fields: missing, wrong type, empty, odd characters, too long
        text = rng.choice([None, 1, True, [], {}, "", "   ", rng.choice(ODD_TEXT),
                           "x" * rng.choice([501, 2001, 5001, 40_000]), "Hi. " * 300])
        frame: dict[str, Any] = {"type": rng.choice(["speak", "ask", "set_qa_context"]), "id": f"f{n}"}
        if text is not None:
            frame["text"] = text
        return "text", json.dumps(frame)
    if roll < 0.70:  # junk rtc_event payloads (reach the reassembler)
        return "text", _junk_rtc_event(rng)
    if roll < 0.73:  # the wire itself: binary, fragmented, invalid UTF-8, too large
        wire = rng.randrange(5)
        if wire == 0:
            return "bytes", rng.randbytes(rng.choice([0, 1, 100, 5000]))
        if wire == 1:
            return "fragments", ['{"type":"pi', 'ng","id":', f'"frag{n}"}}']
        if wire == 2 and rng.random() < 0.15:  # rare: the server must close it (1007), as RFC 6455 says
            return "raw", b'{"type":"ping","id":"\xed\xa0\x80"}'
        if wire == 3:
            return "text", '{"type":"ping","id":"big","pad":"' + "x" * (MAX_FRAME + rng.randint(1, 5000)) + '"}'
        return "text", f'{{"type":"ping","id":"dup","id":"f{n}","type":"ping"}}'
    if roll < 0.75:  # real commands, sometimes: speak/ask reach A2E (the simulator)
        return "text", json.dumps({"type": rng.choice(["speak", "ask"]), "id": f"f{n}", "text": "Hello there."})
    # plain valid frames, the majority of a real session: ping, flush, QA context; streams and cancels
    choice = rng.random()
    if choice < 0.5:
        return "text", json.dumps({"type": "ping", "id": rng.choice([f"f{n}", n])})
    if choice < 0.75:
        return "text", json.dumps({"type": "flush", "id": f"f{n}"})
    if choice < 0.9:
        return "text", _stream_frame(rng, n)
    return "text", json.dumps({"type": "set_qa_context", "id": f"f{n}", "text": "We open at 9."})


def _stream_frame(rng: random.Random, n: int) -> str:
    """speak_delta/speak_end of a few streams (valid, unknown, odd names) and cancels of odd ids."""
    kind = rng.choice(["speak_delta", "speak_delta", "speak_end", "cancel"])
    if kind == "cancel":  # the id is the utterance's: unknown ones, odd ones
        return json.dumps({"type": "cancel", "id": rng.choice([f"f{n}", "ut_AAAAAAAAAAA", "", 5, None])})
    stream = rng.choice(["s1", "s2", "s3", "", "s" * 129, 5, None, "\u202e"])
    frame: dict[str, Any] = {"type": kind, "id": f"f{n}", "stream": stream}
    if kind == "speak_delta":
        frame["text"] = rng.choice(["Hello", " there.", " How are", " you? ", "", "\u0000", 7, None, "x" * 600])
    return json.dumps({k: v for k, v in frame.items() if v is not None})


def hostile_frames(seed: int, count: int) -> Iterator[Frame]:
    rng = random.Random(seed)
    for n in range(count):
        yield hostile_frame(rng, n)


# -- the client side -------------------------------------------------------------------------------
SYNC_EVERY = 50  # frames between two sync pings: a connection never has more than this in flight
WAIT = 10.0  # seconds an answer may take


def expected_id(kind: str, payload: Any) -> str | None:
    """The id a frame's answer must carry (ack, pong or error), if it must get one: a text frame within
    the size limit that is a JSON object with a plain string id (``f<n>``), other than ``rtc_event``
    (a forwarded channel event is not answered when it is accepted)."""
    if kind != "text" or len(payload.encode("utf-8", "surrogatepass")) > MAX_FRAME:
        return None
    try:
        frame = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict) or frame.get("type") == "rtc_event":
        return None
    frame_id = frame.get("id")
    return frame_id if isinstance(frame_id, str) and re.fullmatch(r"f\d+", frame_id) else None


@dataclass
class Report:
    frames: int = 0
    connections: int = 0
    opened: int = 0  # websockets opened (reconnects included)
    refused_opens: int = 0
    answers: collections.Counter[str] = field(default_factory=collections.Counter)  # frame type / error code
    closes: collections.Counter[int] = field(default_factory=collections.Counter)  # close code -> count
    # closes of connections that had sent invalid UTF-8 (the server must fail those: RFC 6455 8.1)
    violation_closes: collections.Counter[int] = field(default_factory=collections.Counter)
    expected: int = 0  # frames that must get an answer carrying their id
    answered: int = 0  # ... and did
    lost_to_violation: int = 0  # ... sent behind an invalid UTF-8 frame, on a connection the server then failed
    unanswered: list[str] = field(default_factory=list)  # ids of frames that got no answer (the first few)
    final_pings: int = 0  # connections whose final ping was answered
    tracebacks: int = 0
    error_lines: int = 0
    seconds: float = 0.0

    @property
    def abnormal_closes(self) -> int:
        return sum(n for code, n in self.closes.items() if code in ABNORMAL)

    @property
    def ok(self) -> bool:
        return (self.tracebacks == 0 and self.abnormal_closes == 0 and self.final_pings == self.connections
                and self.answered == self.expected - self.lost_to_violation)

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "connections": self.connections, "opened": self.opened,
                "refused_opens": self.refused_opens, "seconds": round(self.seconds, 1),
                "answers": dict(self.answers.most_common()),
                "frames_needing_an_answer": self.expected, "answered": self.answered,
                "lost_behind_invalid_utf8": self.lost_to_violation, "unanswered_ids": self.unanswered[:20],
                "closes": {str(k): v for k, v in sorted(self.closes.items())},
                "closes_after_invalid_utf8": {str(k): v for k, v in sorted(self.violation_closes.items())},
                "abnormal_closes": self.abnormal_closes, "final_pings_answered": f"{self.final_pings}/{self.connections}",
                "tracebacks": self.tracebacks, "error_lines": self.error_lines, "ok": self.ok}


async def _open(url: str, headers: dict[str, str], report: Report) -> ClientConnection:
    for attempt in range(50):
        try:
            ws = await asyncio.wait_for(connect(url, additional_headers=headers, max_size=None, open_timeout=WAIT,
                                                ping_interval=None, close_timeout=5), WAIT + 5)
            report.opened += 1
            return ws
        except (InvalidStatus, OSError, TimeoutError):
            report.refused_opens += 1
            await asyncio.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"cannot open {url}")


def _close_code(ws: ClientConnection) -> int:
    rcvd = ws.protocol.close_rcvd
    return rcvd.code if rcvd is not None else 1006


class _Link:
    """One of the fuzzer's connections, reopened whenever the server closes it. Answers are matched to
    frames by id; a sync ping every ``SYNC_EVERY`` frames keeps what is in flight bounded."""

    def __init__(self, url: str, headers: dict[str, str], report: Report) -> None:
        self.url, self.headers, self.report = url, headers, report
        self.waiting: dict[str, asyncio.Future[None]] = {}  # ids of sent frames that must be answered
        self.pings: dict[str, asyncio.Future[None]] = {}  # the sync and final pings
        self.window: list[str] = []  # ids sent since the last sync
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.violated = False  # sent invalid UTF-8 since it opened: the server must fail the connection

    async def open(self) -> None:
        self.ws = await _open(self.url, self.headers, self.report)
        self.reader = asyncio.create_task(self._read(self.ws))
        self.violated = False

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    self.report.answers["<not json>"] += 1
                    continue
                kind = frame.get("type")
                self.report.answers[f"error:{frame.get('code')}" if kind == "error" else str(kind)] += 1
                frame_id = frame.get("id")
                future = (self.waiting.get(frame_id) or self.pings.get(frame_id)
                          if kind in ("ack", "pong", "error") and isinstance(frame_id, str) else None)
                if future is not None and not future.done():
                    future.set_result(None)
        except ConnectionClosed:
            pass

    async def reopen(self) -> None:
        """Count how the server ended the connection, and open a new one."""
        assert self.ws is not None and self.reader is not None
        await self.reader
        code = _close_code(self.ws)
        if self.violated:  # RFC 6455 8.1: the server fails the connection (1007); its TCP close may overtake it
            self.report.violation_closes[code] += 1
            # what was sent behind the bad frame was never read, and answers still due (acks) have no
            # connection to go to any more
            for future in self.waiting.values():
                if not future.done():
                    future.cancel()
                    self.report.lost_to_violation += 1
        else:
            self.report.closes[code] += 1
        self.window = []
        await self.open()

    async def send(self, kind: str, payload: Any) -> None:
        assert self.ws is not None
        frame_id = expected_id(kind, payload)
        if frame_id is not None:
            self.waiting[frame_id] = asyncio.get_running_loop().create_future()
            self.window.append(frame_id)
            self.report.expected += 1
        while True:
            try:
                if kind == "raw":
                    self.violated = True
                    await self.ws.send(payload, text=True)
                else:  # str: a text frame; bytes: binary; a list of str: one fragmented text message
                    await self.ws.send(payload)
                return
            except ConnectionClosed:
                await self.reopen()
                if kind == "raw":  # it was sent: the server closed the connection for it
                    return
                if frame_id is not None:  # send it again on the new connection
                    self.window.append(frame_id)

    async def ping(self, frame_id: str) -> bool:
        """A ping the server must answer; a connection closing for an earlier frame is reopened."""
        for _ in range(3):
            assert self.ws is not None and self.reader is not None
            pong = self.pings[frame_id] = asyncio.get_running_loop().create_future()
            try:
                await self.ws.send(json.dumps({"type": "ping", "id": frame_id}))
            except ConnectionClosed:
                await self.reopen()
                continue
            await asyncio.wait([pong, self.reader], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            if pong.done():
                del self.pings[frame_id]
                self.window = []
                return True
            if not self.reader.done():
                return False  # open, but no answer
            await self.reopen()
        return False

    async def finish(self) -> None:
        """Wait for the answers still due (acks come once A2E accepted), then count them and close."""
        due = [f for f in self.waiting.values() if not f.done()]
        if due:
            await asyncio.wait(due, timeout=WAIT)
        for frame_id, future in self.waiting.items():
            if future.done() and not future.cancelled():
                self.report.answered += 1
            elif not future.cancelled():
                self.report.unanswered.append(frame_id)
        assert self.ws is not None and self.reader is not None
        await self.ws.close()
        await self.reader
        if self.ws.protocol.close_rcvd is None:
            self.report.closes[1006] += 1  # our close got no answer


async def _connection(url: str, headers: dict[str, str], frames: list[Frame], index: int, report: Report) -> None:
    link = _Link(url, headers, report)
    await link.open()
    for number, (kind, payload) in enumerate(frames, 1):
        await link.send(kind, payload)
        report.frames += 1
        if number % SYNC_EVERY == 0:
            await link.ping(f"sync-{index}-{number}")
    if await link.ping(f"final-{index}"):
        report.final_pings += 1
    await link.finish()


async def fuzz(base_url: str, *, key: str | None, frames: int, connections: int, seed: int) -> Report:
    """Send ``frames`` hostile frames over ``connections`` websockets to one new room of the bridge at
    ``base_url``; the server's log is not read here (see :func:`count_log`)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        r = await http.post("/v1/rooms", json={"expire_seconds": 3600})
        r.raise_for_status()
        room = r.json()
        report = Report(connections=connections)
        ws_url = base_url.replace("http", "ws", 1) + f"/v1/rooms/{room['id']}/ws"
        all_frames = list(hostile_frames(seed, frames))
        shares = [all_frames[i::connections] for i in range(connections)]
        started = time.monotonic()
        await asyncio.gather(*(_connection(ws_url, headers, share, i, report) for i, share in enumerate(shares)))
        report.seconds = time.monotonic() - started
        still = await http.get(f"/v1/rooms/{room['id']}")
        report.answers["room_state:" + str(still.json().get("state"))] += 1
        await http.delete(f"/v1/rooms/{room['id']}")
    return report


def count_log(text: str, report: Report) -> None:
    report.tracebacks = text.count("Traceback (most recent call last)")
    report.error_lines = len(re.findall(r"\bERROR\b", text))


# -- the server ------------------------------------------------------------------------------------
def serve_env(key: str, log_level: str = "INFO") -> dict[str, str]:
    """The environment of the fuzzed server: the embedded simulator, one tenant key, and the frame rate
    limit raised so that the frames are parsed rather than closed as a flood (4429)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BRIDGE_DB": "memory://", "BRIDGE_API_KEYS": f"fuzz:{key}",
           "BRIDGE_LOG_LEVEL": log_level, "BRIDGE_WS_RATE_LIMIT": "1000000", "BRIDGE_WS_RATE_BURST": "1000000",
           "BRIDGE_WS_MAX_FRAME_BYTES": str(MAX_FRAME), "BRIDGE_QUEUE_SIZE": "64", "BRIDGE_IDLE_TIMEOUT": "600"}
    env.pop("A2E_API_KEY", None)
    return env


def run_against_server(frames: int, connections: int, seed: int, log_path: Path) -> Report:
    key = "fuzz-" + os.urandom(8).hex()
    with bridge_server(serve_env(key), log_path) as base:
        report = asyncio.run(fuzz(base, key=key, frames=frames, connections=connections, seed=seed))
    count_log(log_path.read_text(errors="replace"), report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--frames", type=int, default=100_000)
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", type=Path, default=None, help="where the server's log goes (default: a temp file)")
    args = parser.parse_args()
    log_path = args.log or Path(tempfile.mkdtemp(prefix="ws-fuzz-")) / "server.log"
    report = run_against_server(args.frames, args.connections, args.seed, log_path)
    print(json.dumps({**report.as_dict(), "server_log": str(log_path)}, indent=2))
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
