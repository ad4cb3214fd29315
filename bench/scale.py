"""The bridge at scale, each figure beside its floor measured in the same run (issue 12).

    python bench/scale.py fanout               # the sender's ack and the fan-out to 1,000 subscribers
    python bench/scale.py fanout --rooms 10    # 10,000 subscribers across one process (10 rooms × 1,000)
    python bench/scale.py memory -c 10000      # resident memory per idle websocket
    python bench/scale.py rooms                # 500 rooms × (a sender + 4 listeners), 60 s of speaks

Every subcommand takes ``--repeat K`` (fresh processes each time) and prints each run, then the
median and the spread (min–max) of each figure over the runs. The exit status is 1 if anything
failed (a speak not acked, a subscriber that missed an event or was dropped, a socket that did not
open), 0 otherwise, whatever the ratios.

Processes, all on 127.0.0.1: the A2E simulator (``a2e-bridge simulate``), the bridge
(``bench/servers.py bridge``: ``a2e-bridge serve``'s own server configuration), the floors
(``bench/minimal_relay.py``: websockets + httpx, ``websockets.broadcast`` to a channel's audience;
``bench/servers.py starlette|websockets``: a bare websocket route), the audiences
(``bench/listeners.py``: sans-I/O clients that timestamp what reaches them), and this process,
which drives the senders and collects the figures. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    A2E_KEY,
    CLIENT_KEY,
    HERE,
    HOST,
    SPEAK_PATH,
    Child,
    bridge_deflate,
    children,
    cpu_seconds,
    free_port,
    machine,
    median_spread,
    percentile,
    raise_nofile,
    rss_kib,
    spawn,
    wait_ready,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 30.0
PER_LISTENER_PROCESS = 5000
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


# -- processes --------------------------------------------------------------------------------------
class Listeners:
    """One ``listeners.py`` child: many clients, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc, self.name = proc, name

    @classmethod
    async def start(cls, workdir: Path, name: str) -> Listeners:
        log = (workdir / f"{name}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(sys.executable, str(HERE / "listeners.py"), stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=log, limit=1 << 26)
        return cls(proc, name)

    async def ask(self, cmd: str, wait: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait)
        if not line:
            raise RuntimeError(f"{self.name} exited (see its log)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # end of commands: it closes its clients and exits
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, OSError):
                self.proc.kill()
                await self.proc.wait()


async def audience_of(workdir: Path, name: str, urls: list[str], headers: dict[str, str], *,
                   deflate: bool = False, per_process: int = PER_LISTENER_PROCESS) -> list[Listeners]:
    """Open one client per URL, spread over listener processes; every one must have its first frame."""
    procs = [await Listeners.start(workdir, f"{name}-{i}") for i in range(math.ceil(len(urls) / per_process))]
    answers = await asyncio.gather(*(p.ask("open", wait=600, urls=urls[i::len(procs)], headers=headers,
                                           deflate=deflate) for i, p in enumerate(procs)))
    failures = sum(a["failures"] for a in answers)
    if failures:
        raise RuntimeError(f"{name}: {failures} of {len(urls)} clients did not open: {answers[0]['failed']}")
    return procs


def start_simulator(started: list[Child], workdir: Path, channels: int = 200) -> tuple[Child, str]:
    port = free_port()
    child = spawn(started, workdir, "simulator", ["-m", "bridge", "simulate", "--host", HOST, "--port", str(port)],
                  {"BRIDGE_LOG_LEVEL": "WARNING", "SIM_MAX_CHANNELS": str(max(200, channels)),
                   "SIM_COINS": str(max(20000, channels * 100))})
    return child, f"http://{HOST}:{port}"


def start_bridge(started: list[Child], workdir: Path, sim_url: str, settings: dict[str, str], *,
                 ws: str | None = None, deflate: str | None = None) -> tuple[Child, str]:
    """The bridge against the simulator. ``settings`` are the benchmark's own (caps sized for it)."""
    port = free_port()
    env = {"A2E_API_KEY": A2E_KEY, "A2E_BASE_URL": sim_url, "BRIDGE_API_KEYS": f"bench:{CLIENT_KEY}",
           "BRIDGE_DB": str(workdir / "bridge.db"), "BRIDGE_LOG_LEVEL": "WARNING", "BRIDGE_EVENT_SOURCE": "browser",
           **settings}
    args = [str(HERE / "servers.py"), "bridge", "--host", HOST, "--port", str(port)]
    args += ["--ws", ws] if ws else []
    args += ["--deflate", deflate] if deflate else []
    return spawn(started, workdir, "bridge", args, env), f"http://{HOST}:{port}"


def start_minimal(started: list[Child], workdir: Path, sim_url: str) -> tuple[Child, int]:
    port = free_port()
    deflate = "deflate" if bridge_deflate() else "none"
    child = spawn(started, workdir, "minimal", [str(HERE / "minimal_relay.py"), "--host", HOST, "--port", str(port),
                                                "--speak-url", sim_url + SPEAK_PATH, "--key", A2E_KEY,
                                                "--compression", deflate], {})
    return child, port


async def bridge_rooms(http: httpx.AsyncClient, url: str, count: int, headers: dict[str, str] = AUTH) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await http.post(url + "/v1/rooms", json={"expire_seconds": 1800}, headers=headers)
        if answer.status_code != 201:
            raise RuntimeError(f"the bridge refused a room: {answer.status_code} {answer.text}")
        ids.append(answer.json()["id"])
    return ids


async def sim_channels(http: httpx.AsyncClient, sim_url: str, count: int) -> list[str]:
    avatars = (await http.get(sim_url + "/api/v1/streaming-avatar/all_avatars",
                              headers={"Authorization": f"Bearer {A2E_KEY}"})).json()["data"]
    channels = []
    for _ in range(count):
        minted = await http.post(sim_url + "/api/v1/streaming-avatar/agora-token",
                                 json={"avatar_id": avatars[0]["_id"], "expire_seconds": 1800},
                                 headers={"Authorization": f"Bearer {A2E_KEY}"})
        channels.append(minted.json()["data"]["channel"])
    return channels


def bridge_ws(url: str, room: str) -> str:
    return url.replace("http://", "ws://") + f"/v1/rooms/{room}/ws"


# -- speaking ---------------------------------------------------------------------------------------
_ids = iter(range(1, 1 << 62))


def marked(text: str) -> str:
    """Text carrying the sender's clock, which the listeners subtract from their own."""
    return f"{text} ~t={time.monotonic():.6f}~"


async def speak(ws: ClientConnection, text: str) -> float:
    """Send a speak and wait for its ack (skipping room events and the bridge's ``queued`` answer,
    which comes first with the same id); the latency in seconds."""
    frame_id = next(_ids)
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "speak", "id": frame_id, "text": marked(text)}))
    while True:
        answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if answer.get("id") == frame_id and answer.get("type") != "queued":
            if answer.get("type") != "ack":
                raise RuntimeError(f"speak {frame_id}: {answer}")
            return time.perf_counter() - start


async def open_sender(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    ws = await connect(url, additional_headers=headers, max_size=2**22, open_timeout=TIMEOUT)
    await asyncio.wait_for(ws.recv(), TIMEOUT)  # the first frame: room (bridge) or joined (floor)
    return ws


def ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


def pct(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 99)


# -- fanout -----------------------------------------------------------------------------------------
@dataclass
class Stack:
    """A server under test, as the benchmark drives it."""

    name: str
    lonely: ClientConnection  # the sender of a room without audience
    senders: list[ClientConnection]  # one per room with an audience
    audience: list[Listeners]
    acks_empty: list[float] = field(default_factory=list)
    acks_full: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)
    rounds: int = 0

    async def delivered(self, within: float) -> list[float]:
        """Wait until every subscriber has every event so far; their latencies (s)."""
        latencies: list[float] = []
        deadline = time.monotonic() + within
        while True:
            answers = await asyncio.gather(*(p.ask("collect") for p in self.audience))
            for answer in answers:
                latencies += answer["latencies"]
                if answer["closed"]:
                    raise RuntimeError(f"{self.name}: subscribers were closed: {answer['closed']}")
            behind = sum(1 for a in answers for n in a["per_client"] if n < self.rounds)
            if not behind:
                return latencies
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {behind} subscribers missed event {self.rounds}")
            await asyncio.sleep(0.02)


async def fanout_once(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    subscribers = args.rooms * args.subscribers
    with children() as started:
        sim, sim_url = start_simulator(started, workdir, 2 * (args.rooms + 1))
        bridge, bridge_url = start_bridge(started, workdir, sim_url, {
            # sized for this run (a room of 1,000 listeners is the point); the defaults guard against abuse
            "BRIDGE_MAX_CLIENTS_PER_ROOM": str(args.subscribers + 1),
            "BRIDGE_MAX_CLIENTS_PER_TENANT": str(subscribers + args.rooms + 1),
            "BRIDGE_MAX_CONNECTIONS": str(subscribers + args.rooms + 200),
            "BRIDGE_MAX_ROOMS_PER_TENANT": str(max(20, args.rooms + 1)),
        }, ws=args.ws, deflate=args.deflate)
        minimal, minimal_port = start_minimal(started, workdir, sim_url)
        await wait_ready(sim, url=sim_url + "/_sim/health")
        await wait_ready(bridge, url=bridge_url + "/healthz")
        await wait_ready(minimal, port=minimal_port)
        stacks: list[Stack] = []
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            rooms = await bridge_rooms(http, bridge_url, args.rooms + 1)
            wanted = "" if args.events is None else f"?events={args.events}"  # the listeners' filter, if any
            urls = [bridge_ws(bridge_url, r) + wanted for r in rooms[1:] for _ in range(args.subscribers)]
            stacks.append(Stack("bridge", await open_sender(bridge_ws(bridge_url, rooms[0]), AUTH),
                                [await open_sender(bridge_ws(bridge_url, r), AUTH) for r in rooms[1:]],
                                await audience_of(workdir, "bridge-audience", urls, AUTH)))
            channels = await sim_channels(http, sim_url, args.rooms + 1)
            base = f"ws://{HOST}:{minimal_port}/?channel="
            urls = [f"{base}{c}&listen=1" for c in channels[1:] for _ in range(args.subscribers)]
            lonely = await connect(base + channels[0], max_size=2**22)
            stacks.append(Stack("floor", lonely, [await connect(base + c, max_size=2**22) for c in channels[1:]],
                                await audience_of(workdir, "floor-audience", urls, {})))
            cpu_before = {c.name: cpu_seconds(c.proc.pid) for c in started}
            try:
                for round_no in range(args.warmup + args.requests):
                    record = round_no >= args.warmup
                    if round_no == args.warmup:
                        cpu_before = {c.name: cpu_seconds(c.proc.pid) for c in started}
                    for stack in stacks if round_no % 2 == 0 else stacks[::-1]:
                        empty = await speak(stack.lonely, f"Round {round_no}, nobody listens.")
                        await asyncio.sleep(args.pause)
                        full = await asyncio.gather(*(speak(ws, f"Round {round_no}, for everyone.")
                                                      for ws in stack.senders))
                        stack.rounds += 1
                        delivered = await stack.delivered(TIMEOUT)
                        if record:
                            stack.acks_empty.append(empty)
                            stack.acks_full += full
                            stack.delivery += delivered
                        await asyncio.sleep(args.pause)
                cpu = {c.name: (cpu_seconds(c.proc.pid) or 0) - (cpu_before[c.name] or 0) for c in started}
            finally:
                for stack in stacks:
                    for p in stack.audience:
                        await p.stop()
            for child in started:
                child.check()
    result: dict[str, Any] = {"subscribers": subscribers, "rooms": args.rooms}
    for stack in stacks:
        result[stack.name] = {
            "ack_empty": pct(ms(stack.acks_empty)), "ack_full": pct(ms(stack.acks_full)),
            "delivery": pct(ms(stack.delivery)), "deliveries": len(stack.delivery),
            "cpu_ms_per_round": cpu[stack.name if stack.name == "bridge" else "minimal"] * 1000 / args.requests,
        }
    b, f = result["bridge"], result["floor"]
    result["ratios"] = {
        "bridge ack full/empty p50": b["ack_full"][0] / b["ack_empty"][0],
        "bridge ack full/empty p99": b["ack_full"][1] / b["ack_empty"][1],
        "delivery bridge/floor p50": b["delivery"][0] / f["delivery"][0],
        "delivery bridge/floor p99": b["delivery"][1] / f["delivery"][1],
        "ack full bridge/floor p50": b["ack_full"][0] / f["ack_full"][0],
    }
    return result


def print_fanout(result: dict[str, Any]) -> None:
    print(f"{'server':<8}{'ack alone p50/p99 ms':>24}{'ack, audience p50/p99':>24}{'delivery p50/p99 ms':>24}"
          f"{'deliveries':>12}{'CPU ms/round':>14}")
    for name in ("bridge", "floor"):
        r = result[name]
        print(f"{name:<8}{r['ack_empty'][0]:>12.2f} /{r['ack_empty'][1]:>9.2f}{r['ack_full'][0]:>12.2f} /"
              f"{r['ack_full'][1]:>9.2f}{r['delivery'][0]:>12.2f} /{r['delivery'][1]:>9.2f}{r['deliveries']:>12}"
              f"{r['cpu_ms_per_round']:>14.1f}")
    print("  ".join(f"{k}: {v:.2f}" for k, v in result["ratios"].items()))


# -- memory -----------------------------------------------------------------------------------------
async def memory_once(args: argparse.Namespace, workdir: Path, kind: str, ws: str | None) -> dict[str, Any]:
    """Resident memory per idle websocket of one server: (RSS with N more clients − RSS before) / N."""
    count, warm = args.connections, 100
    with children() as started:
        port = free_port()
        if kind == "bridge":
            per_room = min(count + warm, 1000)
            rooms = math.ceil((count + warm) / per_room)
            sim, sim_url = start_simulator(started, workdir, rooms)
            server, url = start_bridge(started, workdir, sim_url, {
                "BRIDGE_MAX_CLIENTS_PER_ROOM": str(per_room),
                "BRIDGE_MAX_CLIENTS_PER_TENANT": str(count + warm),
                "BRIDGE_MAX_CONNECTIONS": str(count + warm + 200),
                "BRIDGE_MAX_ROOMS_PER_TENANT": str(max(20, rooms)),
            }, ws=ws, deflate=args.deflate)
            await wait_ready(sim, url=sim_url + "/_sim/health")
            await wait_ready(server, url=url + "/healthz")
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                ids = await bridge_rooms(http, url, rooms)
            urls = [bridge_ws(url, ids[i % rooms]) for i in range(count + warm)]
            headers = AUTH
        else:
            args_ = [str(HERE / "servers.py"), kind, "--host", HOST, "--port", str(port),
                     "--frame-bytes", str(args.frame_bytes)]
            args_ += ["--ws", ws] if ws else []
            args_ += ["--deflate", args.deflate] if args.deflate else []
            server = spawn(started, workdir, kind, args_, {"BRIDGE_LOG_LEVEL": "WARNING",
                                                          "BRIDGE_MAX_CONNECTIONS": str(count + warm + 200)})
            await wait_ready(server, port=port)
            urls = [f"ws://{HOST}:{port}/idle/{i}" for i in range(count + warm)]
            headers = {}
        procs = await audience_of(workdir, f"{kind}-warm", urls[:warm], headers, deflate=args.client_deflate)
        await asyncio.sleep(1)
        before = rss_kib(server.proc.pid)
        procs += await audience_of(workdir, f"{kind}-idle", urls[warm:], headers, deflate=args.client_deflate)
        await asyncio.sleep(args.settle)
        after = rss_kib(server.proc.pid)
        answers = await asyncio.gather(*(p.ask("collect") for p in procs))
        closed = sum(sum(a["closed"].values()) for a in answers)
        for p in procs:
            await p.stop()
        server.check()
    if closed:
        raise RuntimeError(f"{kind}: {closed} idle clients were closed")
    return {"kind": kind, "ws": ws or "default", "connections": count, "rss_before_mib": before / 1024,
            "rss_after_mib": after / 1024, "kib_per_connection": (after - before) / count}


# -- rooms ------------------------------------------------------------------------------------------
def slow_room_frames() -> list[str]:
    """A slow room's stream on the bridge: a kiosk forwarding the avatar's answers, one 8 KiB chunk a
    second in replies of 8 chunks (reply events of 8 to 64 KiB, each to every client of the room).
    Light on purpose: on two cores, the benchmark's own clients parsing a heavy stream would take
    the CPU the servers are measured on."""
    frames = []
    for pos in ("start", "middle", "middle", "middle", "middle", "middle", "middle", "end"):
        data = base64.b64encode(json.dumps({"type": "QA", "message": "x" * 8192, "pos": pos}).encode()).decode()
        frames.append(json.dumps({"type": "rtc_event", "event": {"kind": "stream_message", "uid": 7, "data_b64": data}}))
    return frames


@dataclass
class RoomsStack:
    senders: list[ClientConnection]  # the speaking rooms' senders (not the slow rooms)
    audience: list[Listeners]  # the speaking rooms' listeners
    slow: Listeners | None  # the slow rooms' clients: a streamer (bridge only) and the listeners
    streamers: list[int] = field(default_factory=list)  # in ``slow``: who streams (bridge only)


async def rooms_phase(name: str, stack: RoomsStack, seconds: float, interval: float) -> dict[str, Any]:
    """Every sender speaks every ``interval`` s (staggered) for ``seconds`` while the slow rooms
    stream; acks per room, deliveries, and what became of the slow rooms' readers."""
    acks: list[list[float]] = [[] for _ in stack.senders]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    everyone = stack.audience + ([stack.slow] if stack.slow else [])
    await asyncio.gather(*(p.ask("collect") for p in everyone))  # forget what came before

    async def one(i: int, ws: ClientConnection) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        n = 0
        while time.monotonic() < stop_at:
            due = time.monotonic() + interval
            try:
                acks[i].append(await speak(ws, f"Room {i}, line {n}."))
            except (RuntimeError, TimeoutError, ConnectionClosed) as exc:
                errors.append(f"room {i}: {exc}")
                return
            n += 1
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    if stack.slow and stack.streamers:
        await stack.slow.ask("stream", clients=stack.streamers, frames=slow_room_frames(), interval=1.0,
                             seconds=seconds)
    await asyncio.gather(*(one(i, ws) for i, ws in enumerate(stack.senders)))
    await asyncio.sleep(2)  # the last events reach the listeners
    answers = await asyncio.gather(*(p.ask("collect") for p in stack.audience))
    slow = (await stack.slow.ask("collect")) if stack.slow else {"closed": {}}
    delivery = [x for a in answers for x in a["latencies"]]
    closed = {k: v for a in answers for k, v in a["closed"].items()}
    all_acks = [x for room in acks for x in room]
    room_p99 = sorted(percentile(ms(room), 99) for room in acks if room)
    return {"name": name, "speaks": len(all_acks), "ack": pct(ms(all_acks)), "delivery": pct(ms(delivery)),
            "deliveries": len(delivery), "room_p99_median": statistics.median(room_p99),
            "room_p99_worst": room_p99[-1], "slow_closed": slow["closed"], "errors": errors[:5],
            "error_count": len(errors), "closed": closed}


async def rooms_once(args: argparse.Namespace, workdir: Path, order: list[str]) -> dict[str, Any]:
    tenants = math.ceil(args.rooms / 20)  # 20 rooms per tenant: the default cap, kept
    keys = [f"t{i}:{CLIENT_KEY}-{i}" for i in range(tenants)]
    clients = args.rooms * (args.listeners + 1)
    k, per = args.slow_rooms, args.listeners
    with children() as started:
        sim, sim_url = start_simulator(started, workdir, 2 * args.rooms)
        bridge, bridge_url = start_bridge(started, workdir, sim_url, {
            "BRIDGE_API_KEYS": ",".join(keys), "BRIDGE_MAX_CONNECTIONS": str(clients + 500)}, ws=args.ws,
            deflate=args.deflate)
        minimal, minimal_port = start_minimal(started, workdir, sim_url)
        await wait_ready(sim, url=sim_url + "/_sim/health")
        await wait_ready(bridge, url=bridge_url + "/healthz")
        await wait_ready(minimal, port=minimal_port)
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            rooms: list[tuple[str, str]] = []  # (room id, its tenant's Authorization)
            for i in range(args.rooms):
                auth = f"Bearer {keys[i // 20].split(':', 1)[1]}"
                rooms += [(r, auth) for r in await bridge_rooms(http, bridge_url, 1, {"Authorization": auth})]
            channels = await sim_channels(http, sim_url, args.rooms)
        stacks: dict[str, RoomsStack] = {}
        # the bridge: the slow rooms are the first ones (of the first tenant: k <= 20)
        senders = [await open_sender(bridge_ws(bridge_url, r), {"Authorization": a}) for r, a in rooms[k:]]
        by_key: dict[str, list[str]] = {}
        for r, a in rooms[k:]:
            by_key.setdefault(a, []).extend([bridge_ws(bridge_url, r)] * per)
        audience: list[Listeners] = []
        for n, (auth, urls) in enumerate(by_key.items()):
            audience += await audience_of(workdir, f"bridge-listeners-{n}", urls, {"Authorization": auth})
        slow = None
        if k:
            urls = [bridge_ws(bridge_url, r) for r, _ in rooms[:k] for _ in range(per + 1)]
            [slow] = await audience_of(workdir, "bridge-slow-rooms", urls, {"Authorization": rooms[0][1]})
            await slow.ask("pause", clients=[i * (per + 1) + 1 for i in range(k)])  # one listener per slow room
        stacks["bridge"] = RoomsStack(senders, audience, slow, [i * (per + 1) for i in range(k)])
        base = f"ws://{HOST}:{minimal_port}/?channel="
        senders = [await connect(base + c, max_size=2**22) for c in channels[k:]]
        audience = await audience_of(workdir, "floor-listeners", [f"{base}{c}&listen=1" for c in channels[k:]
                                                                  for _ in range(per)], {})
        slow = None
        if k:  # the floor forwards nothing: its slow rooms only have a listener that does not read
            [slow] = await audience_of(workdir, "floor-slow-rooms", [f"{base}{c}&listen=1" for c in channels[:k]
                                                                     for _ in range(per)], {})
            await slow.ask("pause", clients=[i * per for i in range(k)])
        stacks["floor"] = RoomsStack(senders, audience, slow)
        results = {}
        try:
            for name in order:
                child = bridge if name == "bridge" else minimal
                before = cpu_seconds(child.proc.pid) or 0
                results[name] = await rooms_phase(name, stacks[name], args.seconds, args.interval)
                results[name]["cpu_s"] = (cpu_seconds(child.proc.pid) or 0) - before
        finally:
            for stack in stacks.values():
                for p in stack.audience + ([stack.slow] if stack.slow else []):
                    await p.stop()
        for child in started:
            child.check()
    b, f = results["bridge"], results["floor"]
    results["ratios"] = {"ack p50": b["ack"][0] / f["ack"][0], "ack p99": b["ack"][1] / f["ack"][1],
                         "delivery p50": b["delivery"][0] / f["delivery"][0],
                         "delivery p99": b["delivery"][1] / f["delivery"][1]}
    return results


def print_rooms(result: dict[str, Any]) -> None:
    print(f"{'server':<8}{'speaks':>8}{'ack p50/p99 ms':>20}{'delivery p50/p99 ms':>24}{'deliveries':>12}"
          f"{'room p99 median/worst':>24}{'CPU s':>8}{'errors':>8}")
    for name in ("bridge", "floor"):
        r = result[name]
        print(f"{name:<8}{r['speaks']:>8}{r['ack'][0]:>10.2f} /{r['ack'][1]:>8.2f}{r['delivery'][0]:>12.2f} /"
              f"{r['delivery'][1]:>9.2f}{r['deliveries']:>12}{r['room_p99_median']:>14.2f} /{r['room_p99_worst']:>8.2f}"
              f"{r['cpu_s']:>8.1f}{r['error_count']:>8}")
        print(f"  {name}: slow rooms' clients closed (close code: count): {r['slow_closed'] or 'none'}; "
              f"the speaking rooms' listeners closed: {r['closed'] or 'none'}")
        for error in r["errors"]:
            print(f"  {name} error: {error}")
    print("  ".join(f"{k}: {v:.2f}" for k, v in result["ratios"].items()))


# -- main -------------------------------------------------------------------------------------------
def summarize(runs: list[dict[str, Any]], figures: dict[str, Callable[[dict[str, Any]], float]]) -> None:
    print(f"# over {len(runs)} run(s): median (min–max)")
    for label, get in figures.items():
        print(f"{label:<40}{median_spread([get(r) for r in runs])}")


async def run(args: argparse.Namespace) -> int:
    raise_nofile(1 << 20)
    print(machine(), flush=True)
    runs: list[dict[str, Any]] = []
    failed = False
    for i in range(args.repeat):
        workdir = Path(tempfile.mkdtemp(prefix=f"scale-{args.command}-"))
        try:
            if args.command == "fanout":
                result = await fanout_once(args, workdir)
                print(f"# run {i + 1}: {result['subscribers']} subscribers in {result['rooms']} room(s)"
                      + (f" (the bridge's on ?events={args.events})" if args.events is not None else "") + ", "
                      f"{args.requests} rounds after {args.warmup} warm-up")
                print_fanout(result)
            elif args.command == "memory":
                result = {}
                for kind, ws in [("bridge", w) for w in args.ws_impls] + [("starlette", w) for w in args.ws_impls] + \
                                [("websockets", None)]:
                    r = await memory_once(args, workdir, kind, ws)
                    result[f"{kind}/{r['ws']}"] = r
                    print(f"# run {i + 1}: {kind:<11}{r['ws']:<19}{r['connections']:>7} idle: RSS "
                          f"{r['rss_before_mib']:.1f} → {r['rss_after_mib']:.1f} MiB, "
                          f"{r['kib_per_connection']:.1f} KiB per connection", flush=True)
            else:
                order = ["bridge", "floor"] if i % 2 == 0 else ["floor", "bridge"]
                result = await rooms_once(args, workdir, order)
                print(f"# run {i + 1}: {args.rooms} rooms × (1 sender + {args.listeners} listeners), a speak every "
                      f"{args.interval:g} s per room for {args.seconds:g} s per server ({' then '.join(order)})")
                print_rooms(result)
                if result["bridge"]["error_count"] or result["floor"]["error_count"]:
                    failed = True
            runs.append(result)
            shutil.rmtree(workdir, ignore_errors=True)
        except (RuntimeError, TimeoutError, ConnectionClosed, OSError, httpx.HTTPError) as exc:
            print(f"error in run {i + 1}: {type(exc).__name__}: {exc}; logs kept in {workdir}", file=sys.stderr)
            failed = True
        sys.stdout.flush()
    if runs and args.command == "fanout":
        summarize(runs, {
            "bridge ack alone p50 ms": lambda r: r["bridge"]["ack_empty"][0],
            "bridge ack with audience p50 ms": lambda r: r["bridge"]["ack_full"][0],
            "bridge ack with audience p99 ms": lambda r: r["bridge"]["ack_full"][1],
            "floor ack with audience p50 ms": lambda r: r["floor"]["ack_full"][0],
            "bridge delivery p50 ms": lambda r: r["bridge"]["delivery"][0],
            "bridge delivery p99 ms": lambda r: r["bridge"]["delivery"][1],
            "floor delivery p50 ms": lambda r: r["floor"]["delivery"][0],
            "floor delivery p99 ms": lambda r: r["floor"]["delivery"][1],
            **{k: (lambda r, k=k: r["ratios"][k]) for k in runs[0]["ratios"]},
        })
    elif runs and args.command == "memory":
        figures: dict[str, Callable[[dict[str, Any]], float]] = {
            f"{k} KiB/conn": (lambda r, k=k: r[k]["kib_per_connection"]) for k in runs[0]}
        for ws in args.ws_impls:
            figures[f"bridge/starlette {ws}"] = (lambda r, ws=ws: r[f"bridge/{ws}"]["kib_per_connection"]
                                                 / r[f"starlette/{ws}"]["kib_per_connection"])
        summarize(runs, figures)
    elif runs:
        summarize(runs, {
            **{f"{n} {fig} p{(50, 99)[i]} ms": (lambda r, n=n, fig=fig, i=i: r[n][fig][i])
               for n in ("bridge", "floor") for fig in ("ack", "delivery") for i in (0, 1)},
            "bridge room p99 worst ms": lambda r: r["bridge"]["room_p99_worst"],
            "floor room p99 worst ms": lambda r: r["floor"]["room_p99_worst"],
            **{k: (lambda r, k=k: r["ratios"][k]) for k in runs[0]["ratios"]},
        })
    if args.json:
        print(json.dumps(runs))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description="the bridge at scale, beside its floors")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repeat", type=int, default=1, help="runs, each with fresh processes (default 1)")
    common.add_argument("--ws", help="uvicorn websocket implementation for the bridge (default: its server config)")
    common.add_argument("--deflate", choices=["on", "off"], help="permessage-deflate (default: the bridge's config)")
    common.add_argument("--json", action="store_true", help="also print every run as one JSON line")
    fan = sub.add_parser("fanout", parents=[common], help="the sender's ack and the fan-out to an audience")
    fan.add_argument("--subscribers", "-s", type=int, default=1000, help="listeners per room (default 1000)")
    fan.add_argument("--rooms", type=int, default=1, help="rooms with an audience, speaking at once (default 1)")
    fan.add_argument("--events", metavar="TYPES", help="the bridge's listeners connect with ?events=TYPES (e.g. "
                     "command: what the floor's listeners get); by default they take every event of the room")
    fan.add_argument("--requests", "-n", type=int, default=100, help="measured rounds (default 100)")
    fan.add_argument("--warmup", type=int, default=10, help="unmeasured rounds first (default 10)")
    fan.add_argument("--pause", type=float, default=0.05, help="seconds between two speaks (default 0.05)")
    mem = sub.add_parser("memory", parents=[common], help="resident memory per idle websocket")
    mem.add_argument("--connections", "-c", type=int, default=2000, help="idle clients per server (default 2000)")
    mem.add_argument("--ws-impls", nargs="+", default=["websockets-sansio", "websockets", "wsproto"],
                     help="uvicorn websocket implementations to measure (bridge and bare Starlette)")
    mem.add_argument("--client-deflate", action=argparse.BooleanOptionalAction, default=True,
                     help="clients offer permessage-deflate, as browsers do (default: yes)")
    mem.add_argument("--frame-bytes", type=int, default=760, help="size of the floors' first frame (the room frame's)")
    mem.add_argument("--settle", type=float, default=3.0, help="seconds idle before measuring (default 3)")
    rooms = sub.add_parser("rooms", parents=[common], help="many rooms under a sustained speak load")
    rooms.add_argument("--rooms", type=int, default=500, help="rooms (default 500)")
    rooms.add_argument("--listeners", type=int, default=4, help="listeners per room besides the sender (default 4)")
    rooms.add_argument("--seconds", type=float, default=60.0, help="seconds of load per server (default 60)")
    rooms.add_argument("--interval", type=float, default=5.0,
                       help="seconds between a room's speaks (default 5: 100 speaks/s with 500 rooms)")
    rooms.add_argument("--slow-rooms", type=int, default=5,
                       help="rooms (no speaks) with one listener that never reads and, on the bridge, a stream of "
                            "big reply events forwarded by a kiosk (default 5)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
