"""Body limits, idle and slow sockets, the connection cap, and development mode on a network address:
each attack reproduced against a real server (embedded on loopback, or a real ``a2e-bridge serve``
child with a low descriptor limit) and shown refused."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.app import create_app
from bridge.serving import (
    MIN_FD_RESERVE,
    ConfigurationError,
    DescriptorExhaustionFilter,
    GuardedH11Protocol,
    check_bind,
    connection_limit,
    is_loopback,
    server_config,
)
from bridge.settings import Settings
from bridge.simulator.state import AVATARS
from tests.helpers import ROOT, Child, assert_error, create_room_sync, free_port, poll_sync, spawn_cli, wait_http

AVATAR = AVATARS[0]["_id"]
ROOM_LIMIT = 64 * 1024
PASSTHROUGH_LIMIT = 1024 * 1024


# --- 4. request bodies -------------------------------------------------------------------------

async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length) of ``total`` bytes."""
    produced = 0
    while produced < total:
        piece = b" " * min(size, total - produced)
        produced += len(piece)
        yield piece


async def refused_mid_stream(url: str, path: str, limit: int) -> tuple[int, dict[str, Any]]:
    """Stream a chunked body past ``limit`` and never finish it; the answer must come anyway."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        piece = b" " * 65536
        for _ in range(limit // len(piece) + 2):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        # no terminating chunk: the body has no end
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        status = int(head.split()[1])
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        return status, json.loads(await reader.readexactly(length))
    finally:
        writer.close()


async def test_bodies_over_the_limit_are_refused_before_parsing(bridge: Any) -> None:
    sim_calls = bridge.sim.state.counters
    before = dict(sim_calls)
    room = (await bridge.http.post("/v1/rooms", json={"avatar_id": AVATAR})).json()
    cases = [
        ("/v1/rooms", ROOM_LIMIT),
        (f"/v1/rooms/{room['id']}/speak", ROOM_LIMIT),
        ("/v1/a2e/voice_list", PASSTHROUGH_LIMIT),
    ]
    for path, limit in cases:
        # declared too large by Content-Length: refused without being read
        body = b'{"text": "' + b"a" * limit + b'"}'
        error = assert_error(await bridge.http.post(path, content=body), 413, "payload_too_large")
        assert error["details"] == {"max_bytes": limit} and str(limit) in error["message"]
        # chunked, no Content-Length: refused once the bytes read pass the limit
        r = await bridge.http.post(path, content=chunks(limit + 256 * 1024))
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "payload_too_large")
        # ... which is before the body ends: this one never does
        status, answer = await refused_mid_stream(bridge.url, path, limit)
        assert status == 413 and answer["error"]["code"] == "payload_too_large"
    assert sim_calls.get("voice_list", 0) == before.get("voice_list", 0)  # the pass-through never reached A2E
    assert sim_calls.get("speak", 0) == before.get("speak", 0)
    # the server is healthy, the client's connection reusable, and the room untouched
    assert (await bridge.http.get("/healthz")).status_code == 200
    assert (await bridge.http.get(f"/v1/rooms/{room['id']}")).json()["state"] == "open"
    r = await bridge.http.post("/v1/a2e/voice_list", content=json.dumps({"region": "y" * (PASSTHROUGH_LIMIT - 100)}))
    assert r.status_code == 200, r.text  # a pass-through body just under its limit still goes through
    assert sim_calls["voice_list"] == before.get("voice_list", 0) + 1


async def test_the_largest_honest_room_bodies_fit(bridge: Any) -> None:
    """A 5,000-character QA context and a BRIDGE_MAX_TEXT_CHARS text, every character an emoji that
    ``json.dumps`` writes as a 12-byte escape (the worst case of multi-byte UTF-8), still fit."""
    qa = "😀" * 5000
    body = json.dumps({"avatar_id": AVATAR, "expire_seconds": 600, "qa_context": qa})  # ASCII-escaped
    assert 60_000 < len(body.encode()) <= ROOM_LIMIT
    r = await bridge.http.post("/v1/rooms", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    room = r.json()
    r = await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", content=json.dumps({"text": "é" * 5000}))
    assert r.status_code == 200 and r.json()["chars"] == 5000
    r = await bridge.http.put(f"/v1/rooms/{room['id']}/qa-context", content=chunks_of(json.dumps({"text": qa})))
    assert r.status_code == 200 and r.json()["chars"] == 5000  # chunked, same size: also fine
    text = json.dumps({"text": "😀" * 2000})  # BRIDGE_MAX_TEXT_CHARS
    r = await bridge.http.post(f"/v1/rooms/{room['id']}/speak", content=text)
    assert r.status_code == 200 and r.json()["chunks"] == 4, r.text


async def chunks_of(text: str) -> AsyncIterator[bytes]:
    data = text.encode()
    for i in range(0, len(data), 4096):
        yield data[i:i + 4096]


def test_body_limit_follows_a_larger_text_limit() -> None:
    assert Settings(_env_file=None).max_body_bytes == ROOM_LIMIT
    # an operator who allows longer texts keeps honest bodies working without touching the body limit
    raised = Settings(_env_file=None, max_text_chars=20_000)
    assert raised.max_body_bytes >= len(json.dumps({"text": "😀" * 20_000}))
    assert Settings(_env_file=None, max_text_chars=20_000, max_body_bytes=4096).max_body_bytes == 4096


# --- 10. development mode on a network address ------------------------------------------------

def dev_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"BRIDGE_API_KEYS": "", "BRIDGE_DB": str(tmp_path / "b.db"), "BRIDGE_EVENT_SOURCE": "none", **extra}


def run_to_end(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"still running:\n{out}") from None
    return out


def test_dev_mode_refuses_a_network_address(tmp_path: Path) -> None:
    proc = spawn_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), env=dev_env(tmp_path), cwd=tmp_path)
    out = run_to_end(proc)
    assert proc.returncode == 1, out
    assert "refusing to listen on '0.0.0.0' in development mode" in out
    assert "BRIDGE_ALLOW_NETWORK_DEV_MODE=true" in out and "Traceback" not in out


@pytest.mark.parametrize(("host", "env"), [
    ("0.0.0.0", {"BRIDGE_ALLOW_NETWORK_DEV_MODE": "true"}),
    ("::1", {}),
])
def test_dev_mode_starts_on_loopback_or_when_allowed(tmp_path: Path, host: str, env: dict[str, str]) -> None:
    port = free_port()
    proc = spawn_cli("serve", "--host", host, "--port", str(port), env=dev_env(tmp_path, **env), cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}" if host == "0.0.0.0" else f"http://[::1]:{port}"
        wait_http(url + "/healthz")
        assert httpx.get(url + "/healthz").status_code == 200
    finally:
        proc.terminate()
        out = run_to_end(proc)
    assert proc.returncode == 0, out
    warned = [line for line in out.splitlines() if "BRIDGE_ALLOW_NETWORK_DEV_MODE" in line]
    if env:
        # a JSON line: the default format when the log is not a terminal
        assert len(warned) == 1 and json.loads(warned[0])["level"] == "WARNING" and "ANYONE" in warned[0], out
    else:
        assert not warned, out


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.0.2.1", "10.0.0.1", "no-such-host.invalid"):
        assert not is_loopback(host), host
    dev = Settings(_env_file=None)
    assert dev.dev_mode
    check_bind(dev, "127.0.0.1")
    check_bind(Settings(_env_file=None, api_keys="t:k"), "0.0.0.0")  # not development mode
    check_bind(Settings(_env_file=None, allow_network_dev_mode=True), "0.0.0.0")
    with pytest.raises(ConfigurationError, match="BRIDGE_ALLOW_NETWORK_DEV_MODE"):
        check_bind(dev, "0.0.0.0")


# --- 5. connections ---------------------------------------------------------------------------

def test_server_config_is_built_from_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, db=str(tmp_path / "b.db"), header_timeout=3, keepalive_timeout=7,
                        max_connections=50, ws_ping_interval=9, ws_max_frame_bytes=512 * 1024)
    config = server_config(create_app(settings), settings, port=1234)
    assert config.http is GuardedH11Protocol and config.header_timeout == 3 and config.max_connections == 50
    assert config.timeout_keep_alive == 7 and config.timeout_graceful_shutdown == 5
    assert (config.host, config.port) == (settings.host, 1234)
    assert (config.ws_ping_interval, config.ws_ping_timeout, config.ws_max_size) == (9, 9, 2 * 1024 * 1024)


def test_connection_limit_keeps_descriptors_in_reserve() -> None:
    assert connection_limit(Settings(_env_file=None), 200) == 200 - MIN_FD_RESERVE
    assert connection_limit(Settings(_env_file=None), 65536) == 65536 - 65536 // 8
    assert connection_limit(Settings(_env_file=None, max_connections=100), 200) == 100
    with pytest.raises(ConfigurationError, match="BRIDGE_MAX_CONNECTIONS=150 leaves fewer than 100"):
        connection_limit(Settings(_env_file=None, max_connections=150), 200)
    with pytest.raises(ConfigurationError, match="descriptor limit"):
        connection_limit(Settings(_env_file=None), 90)


def test_a_connection_limit_without_headroom_refuses_to_start(children: Callable[..., Any], tmp_path: Path) -> None:
    child = children("serve", "--port", str(free_port()), nofile=200,
                     env=dev_env(tmp_path, BRIDGE_MAX_CONNECTIONS="150"))
    assert child.proc.wait(30) == 1, child.output
    poll_sync(lambda: "leaves fewer than" in child.output)
    assert "BRIDGE_MAX_CONNECTIONS=150 leaves fewer than 100 of the 200 file descriptors" in child.output


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(*args: str, env: dict[str, str], nofile: int | None = None) -> Child:
        child = Child(*args, env=env, cwd=tmp_path, nofile=nofile)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


class Sockets:
    """Raw client sockets, watched until the server closes each of them."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.open: dict[socket.socket, list[Any]] = {}  # socket → [name, what it has read so far]
        self.closed: dict[str, bytes] = {}  # name → everything it read before the server closed it

    def connect(self, port: int, name: str, first: bytes = b"") -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if first:
                sock.sendall(first)
        except OSError:  # reset before we could even write: closed by the server all the same
            self.closed[name] = b""
            return
        sock.setblocking(False)
        self.open[sock] = [name, b""]
        self.selector.register(sock, selectors.EVENT_READ)

    def trickle(self, prefix: str, data: bytes) -> None:
        """One more header byte on the open sockets named ``prefix…`` (their head never ends)."""
        for sock, (name, _) in list(self.open.items()):
            if name.startswith(prefix):
                try:
                    sock.send(data)
                except OSError:
                    pass  # the server closed it; the read side records that

    def read(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:  # reset: what was read before counts
                data = b""
            if data:
                self.open[sock][1] += data
                continue
            name, received = self.open.pop(sock)
            self.closed[name] = received
            self.selector.unregister(sock)
            sock.close()

    def close_all(self) -> None:
        for sock in self.open:
            sock.close()
        self.selector.close()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


def test_idle_and_slowloris_sockets_cannot_starve_the_bridge(children: Callable[..., Child]) -> None:
    """Under a 200-descriptor limit, 260 sockets that never finish a request head: past the limit
    they are refused at once (503), the others are cut at the header deadline, the bridge keeps
    answering and still reaches A2E to leave a paid room, and nothing floods its log."""
    sim_port, port = free_port(), free_port()
    sim_child = children("simulate", "--port", str(sim_port), env={"BRIDGE_LOG_LEVEL": "WARNING"})
    sim, url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
    sim_child.wait_answering(sim + "/_sim/health")
    bridge = children("serve", "--port", str(port), nofile=200, env={
        "A2E_API_KEY": "x", "A2E_BASE_URL": sim, "BRIDGE_API_KEYS": "t:k", "BRIDGE_DB": "memory://",
        "BRIDGE_EVENT_SOURCE": "none", "BRIDGE_HEADER_TIMEOUT": "1", "BRIDGE_KEEPALIVE_TIMEOUT": "1",
        "BRIDGE_LOG_LEVEL": "INFO"})
    bridge.wait_answering(url + "/healthz")
    key = {"Authorization": "Bearer k"}
    assert "limits: 100 client connections (descriptor limit 200)" in bridge.output
    room = create_room_sync(url, key, avatar_id=AVATAR)

    head = b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n"
    sockets = Sockets()
    try:
        # served once, then silent: closed by the keep-alive timeout
        sockets.connect(port, "kept-alive", head + b"\r\n")
        # served once, then trickles the next request's head: cut at the header deadline
        sockets.connect(port, "slowloris:second-request", head + b"\r\n" + head)
        # a body that never ends: refused (413) at the body limit, then not drained forever
        sockets.connect(port, "endless-body", b"POST /v1/rooms HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer k\r\n"
                                              b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(258):  # silent ones, and ones that send a head and then a byte at a time
            if i % 2:
                sockets.connect(port, f"idle-{i}")
            else:
                sockets.connect(port, f"slowloris-{i}", head)

        def all_closed() -> bool:
            sockets.trickle("slowloris", b"X")
            sockets.trickle("endless", b"10000\r\n" + b" " * 0x10000 + b"\r\n")
            sockets.read(0.05)
            return not sockets.open

        poll_sync(all_closed, timeout=60, interval=0)
    finally:
        sockets.close_all()

    assert len(sockets.closed) == 261
    assert sockets.closed["endless-body"].startswith(b"HTTP/1.1 413 "), sockets.closed["endless-body"][:200]
    assert b'"payload_too_large"' in sockets.closed["endless-body"]
    for name in ("kept-alive", "slowloris:second-request"):  # connected first: under the limit, served
        assert sockets.closed[name].startswith(b"HTTP/1.1 200 OK"), sockets.closed[name]
        assert sockets.closed[name].count(b"HTTP/1.1") == 1  # the trickled second request never completed
    refused = [data for data in sockets.closed.values() if data.startswith(b"HTTP/1.1 503")]
    assert refused, "the connection limit never refused a connection"
    assert b'"too_many_connections"' in refused[0] and b"connection: close" in refused[0]
    cut = [n for n, data in sockets.closed.items() if n.startswith("idle-") and data == b""]
    assert cut, "no idle connection was cut at the header deadline"  # (refused ones got a 503 first)
    stalled = [n for n, data in sockets.closed.items() if n.startswith(("idle-", "slowloris-")) and b" 200 " in data]
    assert not stalled  # no incomplete head was ever answered: each was cut or refused

    # the bridge answers again, and leaving the paid room still reaches A2E
    poll_sync(lambda: _status(url + "/healthz") == 200, timeout=30)
    r = httpx.delete(f"{url}/v1/rooms/{room['id']}", headers=key, timeout=20)
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    sim_rooms = {r["channel"]: r for r in httpx.get(sim + "/_sim/state", timeout=5).json()["rooms"]}
    assert sim_rooms[room["channel"]]["status"] == "left"

    out = bridge.output
    assert out.count("Too many open files") + out.count("out of system resource") <= 5, out[-3000:]
    assert 1 <= out.count("connection limit reached") <= 5, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


# --- descriptor exhaustion at accept: one log line per interval ---------------------------------

EMFILE_SERVER = textwrap.dedent("""
    import asyncio, logging, resource, sys
    from bridge.logs import configure_logging
    from bridge.serving import install_descriptor_exhaustion_filter
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    configure_logging("INFO")
    if sys.argv[1] == "filtered":
        install_descriptor_exhaustion_filter()

    async def main():
        held = []
        async def keep(reader, writer):
            held.append(writer)  # never closed: descriptors run out
        server = await asyncio.start_server(keep, "127.0.0.1", int(sys.argv[2]), backlog=2048)
        print("listening", flush=True)
        await asyncio.sleep(float(sys.argv[3]))
    asyncio.run(main())
""")


def test_descriptor_exhaustion_at_accept_is_logged_once_per_interval(tmp_path: Path) -> None:
    """The storm is asyncio's own (an accept loop that logs every failed accept(), up to backlog
    times a tick); the same script without the filter shows it, so this test can fail."""
    runs = {}
    for mode in ("filtered", "unfiltered"):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER, mode, str(port), "2"], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        clients = []
        for _ in range(80):  # twice the child's descriptors
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        out = run_to_end(proc)
        for c in clients:
            c.close()
        runs[mode] = out
    assert runs["unfiltered"].count("Too many open files") > 20  # the storm is real
    assert 1 <= runs["filtered"].count("Too many open files") <= 2, runs["filtered"][-2000:]


def test_descriptor_exhaustion_filter_counts_what_it_drops() -> None:
    now = [0.0]
    flt = DescriptorExhaustionFilter(interval=10, clock=lambda: now[0])

    def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None,
                                 (type(exc), exc, None) if exc else None)

    emfile = OSError(errno.EMFILE, "Too many open files")
    passed = [flt.filter(record("socket.accept() out of system resource", emfile)) for _ in range(1000)]
    assert passed.count(True) == 1 and passed[0]
    assert flt.filter(record("Task was destroyed but it is pending!"))  # other asyncio records pass
    now[0] = 10.5
    later = record("socket.accept() out of system resource", emfile)
    assert flt.filter(later) and "(999 similar messages suppressed in the last 10 s)" in later.getMessage()
