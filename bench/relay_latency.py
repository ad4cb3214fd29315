"""speak→ack latency through the bridge's websocket versus a minimal relay, against one simulator.

Three child processes on 127.0.0.1, each a real server: the A2E simulator (``a2e-bridge simulate``,
uvicorn), the bridge (``a2e-bridge serve``, uvicorn, talking to that simulator as its A2E) and
``bench/minimal_relay.py`` (websockets server in, httpx out to the same simulator). This process is
only the load generator: it opens ``--concurrency`` rooms per relay, one websocket each, and sends
sequential speaks, interleaving the two relays round by round (alternating which goes first) so
that drift and warm-up hit both alike. Latency is measured client-side, from just before the send
to the ack with the same id.

    python bench/relay_latency.py                     # 30 warm-up + 300 measured rounds, 1 room each
    python bench/relay_latency.py --concurrency 8     # 8 rooms per relay, 8 speaks in flight per round
    python bench/relay_latency.py --events command    # + the bridge again, its sockets on ?events=command

With ``--events``, a third relay runs in the same rounds: a second bridge process (same settings),
whose sockets ask for only those room events (``?events=``): the sender then reads its own answers
(``queued``, ``ack``) and the listed events, not the four ``utterance`` frames of each speak.

``--stack-floor`` adds the same minimal relay as a bare Starlette route on the bridge's uvicorn
configuration; ``--pool-floor`` adds the minimal relay sending through the bridge's own A2E connection
layer (``bridge.a2e.pool``), which is leaner than httpx's default: the bridge beside a relay with
the same HTTP layer shows what its rooms cost on their own.

Exit status: 0 when every speak was acked (whatever the ratio), 1 on any error or timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
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
    spawn,
    wait_ready,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


@dataclass
class Relay:
    name: str
    conns: list[ClientConnection] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0


async def speak(relay: Relay, ws: ClientConnection, frame_id: int, record: bool) -> None:
    frame = json.dumps({"type": "speak", "id": frame_id, "text": f"Welcome, visitor number {frame_id}."})
    relay.sent += 1
    start = time.perf_counter()
    try:
        await ws.send(frame)
        while True:  # the bridge also sends room events (the command itself): skip them
            answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if answer.get("id") == frame_id and answer.get("type") in ("ack", "error"):
                break
    except (TimeoutError, ConnectionClosed, OSError, ValueError) as exc:  # an error, not a latency
        relay.errors.append(f"speak {frame_id}: {type(exc).__name__}: {exc}")
        return
    elapsed = time.perf_counter() - start
    if answer["type"] != "ack":
        relay.errors.append(f"speak {frame_id}: {answer}")
    elif record:
        relay.latencies.append(elapsed)


def start_profilers(out_dir: Path, targets: list[Child]) -> list[subprocess.Popen[bytes]]:
    """py-spy on each target for the measured rounds: collapsed stacks in OUT_DIR/<name>.raw."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([str(shutil.which("py-spy")), "record", "--pid", str(t.proc.pid), "--rate", "250",
                              "--format", "raw", "--nonblocking", "-o", str(out_dir / f"{t.name}.raw")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for t in targets]


async def run_once(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """One run with fresh processes: its exit status and figures (printed as it goes)."""
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    sim_port, bridge_port, minimal_port, filtered_port, floor_port, pooled_port = (free_port() for _ in range(6))
    sim_url, bridge_url = f"http://{HOST}:{sim_port}", f"http://{HOST}:{bridge_port}"
    with children() as started:
        sim = spawn(started, workdir, "simulator", ["-m", "bridge", "simulate", "--host", HOST, "--port", str(sim_port)],
                    {"BRIDGE_LOG_LEVEL": "WARNING"})
        def bridge_env(name: str) -> dict[str, str]:
            return {
                "A2E_API_KEY": A2E_KEY, "A2E_BASE_URL": sim_url, "BRIDGE_API_KEYS": f"bench:{CLIENT_KEY}",
                "BRIDGE_DB": str(workdir / f"{name}.db"), "BRIDGE_LOG_LEVEL": "WARNING",
                "BRIDGE_EVENT_SOURCE": args.event_source,
                # the flood limit guards against abusive clients; this client is one on purpose
                "BRIDGE_WS_RATE_LIMIT": "1000000", "BRIDGE_WS_RATE_BURST": "1000000",
                "BRIDGE_MAX_ROOMS_PER_TENANT": str(max(20, args.concurrency)),
                **dict(kv.split("=", 1) for kv in args.bridge_env),
            }

        bridge = spawn(started, workdir, "bridge", ["-m", "bridge", "serve", "--host", HOST, "--port", str(bridge_port)],
                       bridge_env("bridge"))
        if args.events is not None:
            filtered = spawn(started, workdir, "filtered", ["-m", "bridge", "serve", "--host", HOST, "--port",
                                                            str(filtered_port)], bridge_env("filtered"))
        compression = "deflate" if bridge_deflate() else "none"  # as the bridge's server config has it
        minimal = spawn(started, workdir, "minimal", [str(HERE / "minimal_relay.py"), "--host", HOST, "--port",
                                                      str(minimal_port), "--speak-url", sim_url + SPEAK_PATH,
                                                      "--key", A2E_KEY, "--compression", compression], {})
        if args.stack_floor:
            floor = spawn(started, workdir, "starlette", [str(HERE / "minimal_relay.py"), "--server", "starlette",
                                                          "--host", HOST, "--port", str(floor_port), "--speak-url",
                                                          sim_url + SPEAK_PATH, "--key", A2E_KEY], {})
        if args.pool_floor:
            pooled = spawn(started, workdir, "pooled", [str(HERE / "minimal_relay.py"), "--host", HOST, "--port",
                                                        str(pooled_port), "--speak-url", sim_url + SPEAK_PATH,
                                                        "--key", A2E_KEY, "--compression", compression,
                                                        "--http-pool", "bridge"], {})
        await wait_ready(sim, url=sim_url + "/_sim/health")
        await wait_ready(bridge, url=bridge_url + "/healthz")
        if args.events is not None:
            await wait_ready(filtered, url=f"http://{HOST}:{filtered_port}/healthz")
        await wait_ready(minimal, port=minimal_port)
        if args.stack_floor:
            await wait_ready(floor, port=floor_port)
        if args.pool_floor:
            await wait_ready(pooled, port=pooled_port)

        relays = [Relay("bridge"), Relay("minimal")]
        if args.events is not None:
            relays.append(Relay("filtered"))
        if args.stack_floor:
            relays.append(Relay("starlette"))
        if args.pool_floor:
            relays.append(Relay("pooled"))
        by_name = {r.name: r for r in relays}
        auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            for _ in range(args.concurrency):
                room = await http.post(bridge_url + "/v1/rooms", json={"expire_seconds": 3600}, headers=auth)
                room.raise_for_status()
                ws = await connect(f"ws://{HOST}:{bridge_port}/v1/rooms/{room.json()['id']}/ws",
                                   additional_headers=auth, max_size=2**22)
                assert json.loads(await ws.recv())["type"] == "room"
                relays[0].conns.append(ws)
                if args.events is not None:
                    other = await http.post(f"http://{HOST}:{filtered_port}/v1/rooms", json={"expire_seconds": 3600},
                                            headers=auth)
                    other.raise_for_status()
                    ws = await connect(f"ws://{HOST}:{filtered_port}/v1/rooms/{other.json()['id']}/ws?events="
                                       f"{args.events}", additional_headers=auth, max_size=2**22)
                    assert json.loads(await ws.recv())["type"] == "room"
                    by_name["filtered"].conns.append(ws)
                for name, port in (("minimal", minimal_port), ("starlette", floor_port), ("pooled", pooled_port)):
                    if name not in by_name:
                        continue
                    minted = await http.post(sim_url + "/api/v1/streaming-avatar/agora-token",
                                             json={"avatar_id": room.json()["avatar_id"], "expire_seconds": 3600},
                                             headers={"Authorization": f"Bearer {A2E_KEY}"})
                    channel = minted.json()["data"]["channel"]
                    by_name[name].conns.append(await connect(f"ws://{HOST}:{port}/?channel={channel}",
                                                             max_size=2**22))

            frame_id = 0
            started_at = time.monotonic()
            cpu_before: dict[str, float | None] = {}
            profilers: list[subprocess.Popen[bytes]] = []
            for round_no in range(args.warmup + args.requests):
                if round_no == args.warmup:
                    cpu_before = {c.name: cpu_seconds(c.proc.pid) for c in started}
                    if args.py_spy:
                        profilers = start_profilers(args.py_spy, [bridge, minimal] + ([pooled] if args.pool_floor else []))
                first = round_no % len(relays)  # each relay goes first in turn
                order = relays[first:] + relays[:first]
                for relay in order:
                    batch = []
                    for ws in relay.conns:
                        frame_id += 1
                        batch.append(speak(relay, ws, frame_id, record=round_no >= args.warmup))
                    await asyncio.gather(*batch)
                if any(r.errors for r in relays) and not args.keep_going:
                    break
            wall = time.monotonic() - started_at
            for profiler in profilers:  # py-spy writes its file on SIGINT
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=30)
            cpu = {c.name: (now - cpu_before[c.name]) if (now := cpu_seconds(c.proc.pid)) is not None
                   and cpu_before.get(c.name) is not None else None for c in started}

            calls = (await http.get(sim_url + "/_sim/state")).json()["calls"]
            for relay in relays:
                for ws in relay.conns:
                    await ws.close()
        for child in started:
            child.check()

    sent = sum(r.sent for r in relays)
    print(machine())
    print(f"# {args.requests} measured rounds after {args.warmup} warm-up, concurrency {args.concurrency} "
          f"(rooms per relay), event source {args.event_source}, {wall:.1f} s"
          + (f"; filtered: the bridge with ?events={args.events}" if args.events is not None else ""))
    print(f"{'relay':<10}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'max ms':>10}{'errors':>8}")
    stats = {}
    for relay in relays:
        lat = [x * 1000 for x in relay.latencies]
        if not lat:
            print(f"{relay.name:<10}{0:>7}{'-':>10}{'-':>10}{'-':>10}{'-':>10}{len(relay.errors):>8}")
            continue
        stats[relay.name] = (percentile(lat, 50), percentile(lat, 99))
        print(f"{relay.name:<10}{len(lat):>7}{stats[relay.name][0]:>10.2f}{stats[relay.name][1]:>10.2f}"
              f"{statistics.fmean(lat):>10.2f}{max(lat):>10.2f}{len(relay.errors):>8}")
    ratios: dict[str, dict[str, float]] = {}
    for name, floor_name in (("bridge", "minimal"), ("filtered", "minimal"), ("bridge", "starlette"),
                             ("starlette", "minimal"), ("bridge", "pooled"), ("pooled", "minimal")):
        if name in stats and floor_name in stats:
            (b50, b99), (m50, m99) = stats[name][:2], stats[floor_name][:2]
            goal = "; goal <= 1.15, issue 12" if floor_name == "minimal" and name in ("bridge", "filtered") else ""
            print(f"{'ratio':<10}{'':>7}{b50 / m50:>10.2f}{b99 / m99:>10.2f}   ({name} / {floor_name}{goal})")
            ratios[f"{name}/{floor_name}"] = {"p50": b50 / m50, "p99": b99 / m99}
    measured = args.requests * args.concurrency
    if all(v is not None for v in cpu.values()):
        print(f"# CPU per measured speak: bridge {cpu['bridge'] * 1000 / measured:.2f} ms, "
              + (f"filtered {cpu['filtered'] * 1000 / measured:.2f} ms, " if "filtered" in cpu else "") +
              f"minimal relay {cpu['minimal'] * 1000 / measured:.2f} ms, "
              + (f"Starlette relay {cpu['starlette'] * 1000 / measured:.2f} ms, " if "starlette" in cpu else "")
              + (f"pooled relay {cpu['pooled'] * 1000 / measured:.2f} ms, " if "pooled" in cpu else "") +
              f"simulator {cpu['simulator'] * 1000 / ((len(relays)) * measured):.2f} ms")
    errors = [e for r in relays for e in r.errors]
    if calls.get("speak", 0) != sent - len(errors):
        errors.append(f"the simulator saw {calls.get('speak', 0)} speaks; {sent} were sent, {len(errors)} failed")
    for error in errors[:10]:
        print("error:", error, file=sys.stderr)
    if errors:
        print(f"server logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {"ratios": ratios, **{name: {"p50_ms": s[0], "p99_ms": s[1],
                                          "cpu_ms_per_speak": cpu[name] * 1000 / measured if cpu.get(name) else None}
                                   for name, s in stats.items()}}
    if args.json:
        print(json.dumps(result))
    return (1 if errors else 0), result


async def run(args: argparse.Namespace) -> int:
    """``--repeat`` runs, each with fresh processes, then the median (min–max) of each figure."""
    status, runs = 0, []
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"# run {i + 1} of {args.repeat}", flush=True)
        failed, result = await run_once(args)
        status = max(status, failed)
        runs.append(result)
        sys.stdout.flush()
    if args.repeat > 1:
        print(f"# over {len(runs)} runs: median (min–max)")
        for pair in runs[0]["ratios"]:
            for q in ("p50", "p99"):
                print(f"ratio {q} {pair:<22}{median_spread([r['ratios'][pair][q] for r in runs])}")
        for name in [k for k in runs[0] if k != "ratios"]:
            cpu = [r[name]["cpu_ms_per_speak"] for r in runs if r.get(name, {}).get("cpu_ms_per_speak")]
            if len(cpu) == len(runs):
                print(f"CPU ms per speak, {name:<13}{median_spread(cpu)}")
        cpu_ratio = [r["bridge"]["cpu_ms_per_speak"] / r["minimal"]["cpu_ms_per_speak"] for r in runs
                     if r.get("bridge", {}).get("cpu_ms_per_speak") and r.get("minimal", {}).get("cpu_ms_per_speak")]
        if len(cpu_ratio) == len(runs):
            print(f"CPU ratio bridge / minimal    {median_spread(cpu_ratio)}")
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description="speak→ack latency: bridge websocket vs a minimal relay")
    parser.add_argument("--requests", "-n", type=int, default=300, help="measured rounds (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured rounds first (default 30)")
    parser.add_argument("--concurrency", "-c", type=int, default=1,
                        help="rooms (one websocket each) per relay; each round sends one speak per room at once")
    parser.add_argument("--event-source", default="browser", choices=["browser", "simulator", "none"],
                        help="the bridge's BRIDGE_EVENT_SOURCE (browser: what a bridge on real A2E without the "
                             "Agora SDK does; simulator: it also watches the simulator's channel feed)")
    parser.add_argument("--bridge-env", action="append", default=[], metavar="NAME=VALUE",
                        help="one more setting of the bridge (repeatable), e.g. BRIDGE_TRANSCRIPT_BATCH_SECONDS=0")
    parser.add_argument("--events", metavar="TYPES",
                        help="also measure the bridge with its sockets on ?events=TYPES (e.g. command), in the "
                             "same rounds (a third relay)")
    parser.add_argument("--stack-floor", action="store_true",
                        help="also measure the same minimal relay as a bare Starlette route on the bridge's uvicorn "
                             "configuration (the floor of the required stack), in the same rounds")
    parser.add_argument("--pool-floor", action="store_true",
                        help="also measure the minimal relay sending through the bridge's own A2E connection layer "
                             "(bridge.a2e.pool), in the same rounds: the bridge's overhead beside the same HTTP layer")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each with fresh processes, then the median "
                        "(min–max) of every figure (default 1)")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first error")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile the bridge and the minimal relay with py-spy during the measured rounds "
                             "(collapsed stacks in DIR/bridge.raw and DIR/minimal.raw)")
    args = parser.parse_args()
    if args.requests < 1 or args.warmup < 0 or args.concurrency < 1 or args.repeat < 1:
        parser.error("--requests, --concurrency and --repeat must be positive, --warmup not negative")
    if args.py_spy and not shutil.which("py-spy"):
        parser.error("--py-spy needs py-spy on PATH (pip install py-spy)")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
