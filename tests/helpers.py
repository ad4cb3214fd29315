"""What the tests share, as plain functions and classes (fixtures live in ``conftest.py``).

- servers: ``serve`` (uvicorn on 127.0.0.1, port 0) and ``start_bridge`` (a bridge in-process over
  ``httpx.ASGITransport`` with its lifespan run, or under uvicorn when sockets are what is tested);
- rooms: ``create_room``; errors: ``assert_error``; waiting: ``poll`` / ``poll_sync``, always bounded;
- the simulator: ``Sim``, and ``add_fault`` / ``clear_faults`` / ``fault_hits`` on its fault table;
- time: ``FakeClock``, for code that takes a clock (``RoomManager.clock``, ``SimState.clock``);
- processes: ``spawn_cli``, ``free_port``, ``wait_http``;
- websockets: ``open_ws``, ``recv``, ``send``, ``until``, ``closed``, ``RawWS`` … (every wait bounded by ``WAIT``);
- webhooks: ``Receiver`` (a backend on loopback that verifies every delivery with ``standardwebhooks``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from asgi_lifespan import LifespanManager
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.a2e.client import A2EClient
from bridge.app import create_app
from bridge.serving import WS_IMPLEMENTATION, WS_PER_MESSAGE_DEFLATE, EmbeddedServer
from bridge.settings import Settings
from bridge.simulator.faults import Fault, FaultSpec
from bridge.simulator.state import SimState

ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0  # the longest any single expected frame, event or close may take
IN_PROCESS_URL = "http://bridge.test"  # an in-process bridge's base URL (no socket behind it)

# Two tenants, for the websocket and SSE tests.
KEYS = {"key-acme": "acme", "key-globex": "globex"}
ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}


# -- time ------------------------------------------------------------------------------------------
class FakeClock:
    """A ``time.time``-like clock that moves only when told. It starts at the real time, so what
    was stamped before it was installed stays consistent."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# -- waiting ---------------------------------------------------------------------------------------
async def poll(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Wait until ``predicate()`` (sync or async) is truthy and return its value; fail after ``timeout``.

    For state that has no event to wait on; where there is one (an ``asyncio.Event``, a frame, a
    future), wait on it instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def poll_sync(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1,
              what: str = "condition") -> Any:
    """``poll`` for tests without an event loop (child processes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


# -- processes -------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nothing listens on (for a child process to take, or for a refused connection)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Wait until something answers HTTP at ``url`` (any status); TimeoutError after ``timeout``."""

    def answers() -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            return False
        return True

    try:
        poll_sync(answers, timeout=timeout, what=f"an answer from {url}")
    except AssertionError:
        raise TimeoutError(f"{url} did not answer within {timeout}s") from None


def spawn_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              preexec_fn: Callable[[], Any] | None = None) -> subprocess.Popen[str]:
    """Start ``a2e-bridge ARGS`` as a real child process (stdout and stderr merged, text).

    The child gets this environment plus ``env``; ``A2E_API_KEY`` is dropped unless ``env`` sets it,
    so a developer's key never turns a test against the simulator into one against A2E."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if "A2E_API_KEY" not in (env or {}):
        full_env.pop("A2E_API_KEY", None)
    return subprocess.Popen([sys.executable, "-m", "bridge", *args], env=full_env, cwd=cwd or ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn)


class Child:
    """``a2e-bridge ARGS`` as a child process (see :func:`spawn_cli`), optionally with a descriptor
    limit of ``nofile``; its output is drained on a thread and kept for assertions and failure messages."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path, nofile: int | None = None) -> None:
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = spawn_cli(*args, env=env, cwd=cwd, preexec_fn=limit)
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, lines: int = 60) -> str:
        return "".join(self.lines[-lines:])

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_answering(self, url: str, timeout: float = 20.0) -> None:
        """Wait until the child answers HTTP at ``url``; else fail with its last lines."""
        try:
            wait_http(url, timeout)
        except TimeoutError:
            raise AssertionError(f"no answer at {url}:\n{self.tail()}") from None

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit within {timeout}s:\n{self.tail()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class RedisServer:
    """A real ``redis-server`` (the Debian package) on a free loopback port, in its own directory,
    without persistence: ``kill()`` and ``restart()`` show what an outage and a restart that lost
    everything do to the bridge."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            return False

        poll_sync(answers, timeout=15, interval=0.05, what=f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """kill -9: Redis gone at once, its data with it (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        """Start again on the same port, empty."""
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Fleet:
    """Many instances as they are deployed: one ``a2e-bridge simulate`` standing in for A2E and
    ``a2e-bridge serve`` processes (named, each its own ``BRIDGE_INSTANCE_ID``) sharing one Redis,
    with a short lease. Clients use tenant acme's key (``ACME``)."""

    SIM_KEY = "sk_fleet_sim"

    def __init__(self, workdir: Path, redis_url: str, *, lease: float = 1.0, **env: str) -> None:
        self.workdir, self.redis_url, self.lease = workdir, redis_url, lease
        port = free_port()
        self.sim_url = f"http://127.0.0.1:{port}"
        self.sim = Child("simulate", "--port", str(port), "--api-key", self.SIM_KEY, cwd=ROOT,
                         env={"BRIDGE_LOG_LEVEL": "WARNING"})
        self.env = {"A2E_API_KEY": self.SIM_KEY, "A2E_BASE_URL": self.sim_url, "BRIDGE_API_KEYS": "acme:key-acme",
                    "BRIDGE_REDIS_URL": redis_url, "BRIDGE_LEASE_SECONDS": str(lease),
                    "BRIDGE_EVENT_SOURCE": "simulator",
                    "BRIDGE_MAX_ROOMS_PER_TENANT": "200", "BRIDGE_ROOM_CREATE_RATE": "1000",
                    "BRIDGE_ROOM_CREATE_BURST": "200", **env}
        self.instances: dict[str, Child] = {}
        self.urls: dict[str, str] = {}
        wait_http(f"{self.sim_url}/_sim/health")

    def start(self, *names: str) -> None:
        """Start the instances ``names`` (again, on the port each had) and wait until each answers."""
        for name in names:
            port = self.urls[name].rsplit(":", 1)[1] if name in self.urls else str(free_port())
            self.urls[name] = f"http://127.0.0.1:{port}"
            self.instances[name] = Child("serve", env={**self.env, "BRIDGE_INSTANCE_ID": name, "BRIDGE_PORT": port},
                                         cwd=ROOT)
        for name in names:
            self.instances[name].wait_answering(f"{self.urls[name]}/healthz")

    def kill(self, name: str) -> None:
        """kill -9: no shutdown at all."""
        self.instances[name].proc.kill()
        self.instances[name].proc.wait(10)

    def terminate(self, name: str, timeout: float = 30) -> int:
        """SIGTERM, and its exit status."""
        self.instances[name].signal(signal.SIGTERM)
        return self.instances[name].wait(timeout)

    def sim_state(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.sim_url}/_sim/state", headers={"Authorization": f"Bearer {self.SIM_KEY}"},
                              timeout=10).json())

    def said(self, channel: str) -> list[str]:
        """What A2E (the simulator) was told to say on ``channel``, in order."""
        r = httpx.get(f"{self.sim_url}/_sim/rooms/{channel}/commands",
                      headers={"Authorization": f"Bearer {self.SIM_KEY}"}, timeout=10)
        return [c["text"] for c in r.json()["commands"]]

    def open_channels(self) -> set[str]:
        """The channels A2E (the simulator) holds open: what it is charging for."""
        return {r["channel"] for r in self.sim_state()["rooms"] if r["status"] == "open"}

    def logs(self) -> str:
        """The instances' last lines (without the per-call A2E lines), for failure messages."""
        return "\n".join(f"--- {name} ---\n" + "".join([line for line in child.lines if '"bridge.a2e"' not in line
                                                         and "bridge.access" not in line][-40:])
                         for name, child in self.instances.items())

    def stop(self) -> None:
        """At the end of a test: killed outright (a graceful stop would hand rooms over, one by one)."""
        for child in self.instances.values():
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait(10)
        self.sim.stop()


class Balancer:
    """A plain TCP load balancer on loopback, as deployments put in front of the instances: each
    connection goes to the next backend in turn that accepts it (one that is down is skipped)."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = [(httpx.URL(url).host, int(httpx.URL(url).port or 80)) for url in backends]
        self._turn = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._turn % len(self.backends)]
            self._turn += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        else:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# -- servers ---------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1, port 0, in this loop; yield its base URL."""
    server = EmbeddedServer.for_app(app, **config)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def lifespan_of(app: Any) -> AsyncIterator[Any]:
    """Run ``app``'s lifespan (start-up now, shut-down on exit) without a server; yield the app to call."""
    # generous bounds: shutting a bridge down leaves its rooms, which may wait for A2E
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=60) as manager:
        yield manager.app


def asgi_transport(app: Any) -> httpx.AsyncBaseTransport:
    """An httpx transport that calls ``app`` directly. Like a server, it answers an unhandled
    exception with the app's 500 instead of raising it into the test.

    It buffers each whole response, so it cannot stream (SSE), and it has no sockets: no
    websockets, no timeouts, no dropped connections."""
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)


# -- the simulator ---------------------------------------------------------------------------------
@dataclass
class Sim:
    """A running A2E simulator: its URL and its app (whose state tests read and change directly)."""

    url: str
    app: Any

    @property
    def state(self) -> SimState:
        return self.app.state.sim


def add_fault(sim: Sim, **spec: Any) -> Fault:
    """Make the simulator fail (``FaultSpec``: endpoint, kind, rate, times, seconds), as
    ``POST /_sim/faults`` would; the returned fault counts its ``hits``."""
    return sim.app.state.sim_faults.add(FaultSpec(**spec))


def clear_faults(sim: Sim) -> None:
    sim.app.state.sim_faults.clear()


def fault_hits(sim: Sim) -> list[int]:
    """How many requests each fault has hit, in the order they were added."""
    return [f["hits"] for f in sim.app.state.sim_faults.describe()]


# -- the bridge ------------------------------------------------------------------------------------
def bridge_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"db": str(tmp_path / "bridge.db"), "sweep_interval": 0.05, "a2e_timeout": 2.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class Bridge:
    """A running bridge: ``http`` speaks to it, ``app`` and ``rooms`` are its insides, ``sim`` its A2E.

    In-process (``transport`` set) ``url`` is a name with no socket behind it: use ``http`` or
    ``client()``, not websockets nor a browser."""

    url: str
    app: Any
    sim: Sim
    http: httpx.AsyncClient
    transport: httpx.AsyncBaseTransport | None = None
    _clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)

    @property
    def rooms(self) -> Any:
        return self.app.state.rooms

    @property
    def in_process(self) -> bool:
        return self.transport is not None

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """Another HTTP client for this bridge, closed with the bridge."""
        http = http_client(self.url, self.transport, **kwargs)
        self._clients.append(http)
        return http

    async def aclose_clients(self) -> None:
        for http in self._clients:
            await http.aclose()


def http_client(url: str, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client with base URL ``url``; with ``transport``, requests to ``url``'s host go
    through it (an in-process app) while other hosts, such as ``sim.url``, are reached as usual."""
    kwargs.setdefault("timeout", 20)
    if transport is not None:
        kwargs.setdefault("mounts", {url: transport})
    return httpx.AsyncClient(base_url=url, **kwargs)


async def start_bridge(stack: contextlib.AsyncExitStack, sim: Sim, settings: Settings, *, in_process: bool,
                       headers: dict[str, str] | None = None, clock: Callable[[], float] | None = None) -> Bridge:
    """A bridge on ``sim`` whose teardown is pushed onto ``stack``: in-process (lifespan run,
    ``httpx.ASGITransport``) or under uvicorn on port 0. With ``clock``, its rooms run on that clock."""
    a2e = A2EClient("test-key", sim.url, timeout=settings.a2e_timeout, backoff_max=0.05)
    stack.push_async_callback(a2e.aclose)
    app = create_app(settings, a2e=a2e, clock=clock or time.time)
    transport = None
    if in_process:
        url = IN_PROCESS_URL
        transport = asgi_transport(await stack.enter_async_context(lifespan_of(app)))
    else:  # the websocket implementation and options a2e-bridge serve runs with (bridge.serving)
        url = await stack.enter_async_context(serve(app, ws=WS_IMPLEMENTATION, ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE))
    http = http_client(url, transport, headers=headers or {})
    stack.push_async_callback(http.aclose)
    bridge = Bridge(url, app, sim, http, transport)
    stack.push_async_callback(bridge.aclose_clients)
    return bridge


async def create_room(target: Bridge | httpx.AsyncClient, headers: dict[str, str] | None = None,
                      **body: Any) -> dict[str, Any]:
    """``POST /v1/rooms`` with ``body``; the new room (201 asserted). ``headers`` add to the client's."""
    http = target.http if isinstance(target, Bridge) else target
    response = await http.post("/v1/rooms", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def create_room_sync(url: str, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    """``create_room`` against a bridge in a child process."""
    response = httpx.post(url + "/v1/rooms", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The bridge's one error shape: ``{"error": {"code", "message", "details"?}}`` with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def wait_observed(bridge: Bridge, room: dict[str, Any], timeout: float = WAIT) -> None:
    """The bridge's simulator observer is subscribed to the room's channel feed (so no avatar
    event of what is asked next can be missed)."""
    feed = bridge.sim.app.state.sim_feed
    await poll(lambda: feed.subscribers(room["channel"]) >= 1, timeout, interval=0.01,
               what="the bridge subscribing to the simulator feed")


# -- websockets ------------------------------------------------------------------------------------
def ws_url(bridge: Bridge, room_id: str, ticket: str | None = None, events: str | None = None) -> str:
    """The room's websocket URL; ``events``: the ``?events=`` filter, as given (None: no parameter)."""
    url = bridge.url.replace("http://", "ws://", 1) + f"/v1/rooms/{room_id}/ws"
    query = [f"ticket={ticket}"] if ticket is not None else []  # as given: tests send malformed ones
    if events is not None:
        query.append(f"events={quote(events, safe=',')}")
    return f"{url}?{'&'.join(query)}" if query else url


async def open_ws(bridge: Bridge, room_id: str, *, headers: dict[str, str] | None = ACME, ticket: str | None = None,
                  events: str | None = None, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("open_timeout", WAIT)
    return await asyncio.wait_for(
        connect(ws_url(bridge, room_id, ticket, events), additional_headers=headers or {}, **kwargs), WAIT)


async def recv(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def until(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], *, seen: list[dict[str, Any]] | None = None,
                timeout: float = WAIT) -> dict[str, Any]:
    """Read frames until one matches (the others go to ``seen``)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - time.monotonic()))
        if match(frame):
            return frame
        if seen is not None:
            seen.append(frame)


async def seen_or_until(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], seen: list[dict[str, Any]],
                        timeout: float = WAIT) -> dict[str, Any]:
    """The first frame in ``seen`` that matches, else the next one read that does (``until``)."""
    found = next((f for f in seen if match(f)), None)
    if found is None:
        found = await until(ws, match, seen=seen, timeout=timeout)
        seen.append(found)
    return found


def of_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())


async def closed(ws: ClientConnection, timeout: float = WAIT) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; the close code it sent and the frames before it."""
    frames: list[dict[str, Any]] = []

    async def drain() -> None:
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), timeout)
    rcvd = ws.protocol.close_rcvd  # None: the server hung up without a close frame
    return (rcvd.code if rcvd else None), frames


async def ping_pong(ws: ClientConnection, frame_id: Any = "alive") -> None:
    """The connection still works: a ping is answered (other frames may come first)."""
    await send(ws, {"type": "ping", "id": frame_id})
    await until(ws, of_type("pong", id=frame_id))


def qa(message: str, pos: str) -> str:
    return base64.b64encode(json.dumps({"type": "QA", "message": message, "pos": pos}).encode()).decode()


def stream_message(uid: int, message: str, pos: str) -> dict[str, Any]:
    return {"kind": "stream_message", "uid": uid, "data_b64": qa(message, pos)}


class RawWS:
    """A websocket client on a bare TCP stream, for what a library client will not do: it reads
    only when told to (its kernel receive buffer is tiny) and it never answers pings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str, room_id: str, *, paused: bool = False) -> RawWS:
        host, port = base_url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        writer.write((f"GET /v1/rooms/{room_id}/ws HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
        raw = cls(reader, writer)
        if paused:
            raw.pause()
        return raw

    def pause(self) -> None:
        self.writer.transport.pause_reading()

    def resume(self) -> None:
        self.writer.transport.resume_reading()

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (unmasked, never fragmented by uvicorn)."""
        b0, b1 = await self.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await self.reader.readexactly(length)

    async def until_close(self, timeout: float = WAIT) -> tuple[int | None, list[dict[str, Any]], list[int]]:
        """Read to the server's close frame or EOF: (close code, text frames, every opcode seen)."""
        frames: list[dict[str, Any]] = []
        opcodes: list[int] = []

        async def read() -> int | None:
            while True:
                try:
                    opcode, payload = await self.frame()
                except asyncio.IncompleteReadError:
                    return None
                opcodes.append(opcode)
                if opcode == 0x1:
                    frames.append(json.loads(payload))
                elif opcode == 0x8:
                    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None

        code = await asyncio.wait_for(read(), timeout)
        return code, frames, opcodes

    def abort(self) -> None:
        self.writer.transport.abort()


class EventStream:
    """One open SSE response: ``next()`` gives ``{"id", "event", "data"}`` dicts, bounded in time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        async for line in self._lines:
            if not line:
                if "data" in fields:
                    fields["data"] = json.loads(fields["data"])
                    return fields
                fields = {}  # a comment-only block (keep-alive ping)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        return None

    async def until(self, kind: str, seen: list[dict[str, Any]] | None = None,
                    timeout: float = WAIT) -> dict[str, Any]:
        while True:
            event = await self.next(timeout)
            assert event is not None, f"the stream ended before a {kind} event"
            if seen is not None:
                seen.append(event)
            if event["event"] == kind:
                return event


# -- webhooks --------------------------------------------------------------------------------------
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a2e-bridge test webhook secret!!").decode()


class Receiver:
    """A tenant's backend: a Starlette app on 127.0.0.1 that verifies every delivery's signature with
    the ``standardwebhooks`` library (a forged or stale one is refused with 400 and kept in
    ``rejected``). It keeps its port when taken down (``stop``) and brought back (``start``).
    ``status`` is what it answers a verified delivery; ``delay`` makes it slow; ``hold()`` makes it
    answer nothing until ``release()`` (``waiting`` counts the deliveries it holds)."""

    def __init__(self, secret: str = WEBHOOK_SECRET, port: int | None = None) -> None:
        self.verifier = Webhook(secret)
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []  # every verified delivery, retries included
        self.rejected: list[str] = []
        self.status = 204
        self.delay = 0.0
        self.waiting = 0
        self._gate = asyncio.Event()
        self._gate.set()
        self._server: EmbeddedServer | None = None
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = self.verifier.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return Response(status_code=400)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.waiting += 1
        try:
            await self._gate.wait()
        finally:
            self.waiting -= 1
        self.received.append({"id": request.headers["webhook-id"], "type": payload["type"], "data": payload["data"],
                              "answered": self.status})
        return Response(status_code=self.status)

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def start(self) -> Receiver:
        self._server = EmbeddedServer.for_app(self.app, port=self.port)
        await self._server.start()
        return self

    async def stop(self) -> None:
        self.release()  # a held delivery ends now (as its sender's timeout would)
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def events(self, room_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted deliveries, duplicates (same ``webhook-id``) dropped, in arrival order."""
        seen: set[str] = set()
        out = []
        for event in self.received:
            if event["answered"] < 300 and event["id"] not in seen and (
                    room_id is None or room_id in (event["data"].get("room_id"), event["data"].get("room", {}).get("id"))):
                seen.add(event["id"])
                out.append(event)
        return out

    def types(self, room_id: str | None = None) -> list[str]:
        return [e["type"] for e in self.events(room_id)]
