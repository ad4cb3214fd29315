"""Many instances on one Redis (issue 9): cross-instance versus same-instance speak→ack, and the
takeover time after kill -9 of an instance owning 100 rooms, side by side in one run.

Child processes on 127.0.0.1: a ``redis-server`` (no persistence), the A2E simulator, and
``a2e-bridge serve`` instances ``a`` and ``b`` on that Redis (``--lease``, BRIDGE_LEASE_SECONDS).

- **speak→ack**: ``--rooms`` rooms opened on ``a`` (which owns them); per room one websocket to ``a``
  (same instance: the floor, the bridge as one process runs it) and one to ``b`` (cross-instance: the
  speak is forwarded to ``a`` through Redis and acked back). Rounds interleave the two, alternating
  which goes first; latency is measured client-side, send to ack. Goal: cross / same <= 1.5.
- **takeover**: a third instance ``c`` opens ``--takeover-rooms`` rooms, then is killed (SIGKILL);
  the time from the kill until every one of them is owned again (its lease held by ``a`` or ``b``, read
  in Redis every 10 ms) is the takeover time. Its floor is the lease itself (a dead owner's lease
  must run out first). Goal: <= lease + 1 s. The simulator must still hold every room open.

    python bench/cluster.py                   # 5 rooms x 200 rounds, 100 rooms taken over, lease 5 s
    python bench/cluster.py --lease 2 --repeat 3

Exit status: 0 when every speak was acked and every room taken over and still open, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from benchlib import A2E_KEY, CLIENT_KEY, HOST, Child, children, free_port, machine, median_spread, percentile, spawn, wait_ready
from websockets.asyncio.client import ClientConnection, connect

TIMEOUT = 10.0
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


def serve(started: list[Child], workdir: Path, name: str, port: int, sim_url: str, redis_url: str,
          lease: float) -> Child:
    return spawn(started, workdir, name, ["-m", "bridge", "serve", "--host", HOST, "--port", str(port)], {
        "A2E_API_KEY": A2E_KEY, "A2E_BASE_URL": sim_url, "BRIDGE_API_KEYS": f"bench:{CLIENT_KEY}",
        "BRIDGE_REDIS_URL": redis_url, "BRIDGE_INSTANCE_ID": name, "BRIDGE_LEASE_SECONDS": str(lease),
        "BRIDGE_LOG_LEVEL": "WARNING", "BRIDGE_EVENT_SOURCE": "none", "BRIDGE_MAX_ROOMS_PER_TENANT": "1000",
        "BRIDGE_ROOM_CREATE_RATE": "10000", "BRIDGE_ROOM_CREATE_BURST": "1000",
        "BRIDGE_WS_RATE_LIMIT": "1000000", "BRIDGE_WS_RATE_BURST": "1000000"})


async def speak(ws: ClientConnection, frame_id: int) -> float:
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "speak", "id": frame_id, "text": f"Welcome, visitor number {frame_id}."}))
    while True:  # the room's events (the command itself) come too: skip them
        answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if answer.get("id") == frame_id and answer.get("type") in ("ack", "error"):
            break
    if answer["type"] != "ack":
        raise RuntimeError(f"speak {frame_id}: {answer}")
    return time.perf_counter() - start


async def open_ws(url: str, room_id: str) -> ClientConnection:
    ws = await connect(url.replace("http", "ws", 1) + f"/v1/rooms/{room_id}/ws", additional_headers=AUTH)
    assert json.loads(await ws.recv())["type"] == "room"
    return ws


async def latency(args: argparse.Namespace, http: httpx.AsyncClient, a_url: str, b_url: str) -> dict[str, list[float]]:
    rooms = []
    for _ in range(args.rooms):
        made = await http.post(a_url + "/v1/rooms", json={"expire_seconds": 3600}, headers=AUTH)
        made.raise_for_status()
        rooms.append(made.json()["id"])
    same = [await open_ws(a_url, r) for r in rooms]
    cross = [await open_ws(b_url, r) for r in rooms]
    found: dict[str, list[float]] = {"same": [], "cross": []}
    frame_id = 0
    for round_no in range(args.warmup + args.rounds):
        order = [("same", same), ("cross", cross)]
        for name, sockets in (order if round_no % 2 == 0 else order[::-1]):
            for ws in sockets:  # one speak at a time: latency, not throughput
                frame_id += 1
                took = await speak(ws, frame_id)
                if round_no >= args.warmup:
                    found[name].append(took * 1000)
    for ws in [*same, *cross]:
        await ws.close()
    return found


async def takeover(args: argparse.Namespace, http: httpx.AsyncClient, c: Child, c_url: str, redis_url: str,
                   sim_url: str) -> float:
    rooms = await asyncio.gather(*(http.post(c_url + "/v1/rooms", json={"expire_seconds": 3600}, headers=AUTH)
                                   for _ in range(args.takeover_rooms)))
    for r in rooms:
        if r.status_code != 201:
            raise RuntimeError(f"opening a room: {r.status_code} {r.text}")
    ids = [r.json()["id"] for r in rooms]
    channels = {r.json()["channel"] for r in rooms}
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert set(await store.mget([f"a2eb:lease:{i}" for i in ids])) == {"c"}
        c.proc.kill()
        killed = time.monotonic()
        while True:
            owners = await store.mget([f"a2eb:lease:{i}" for i in ids])
            if all(o in ("a", "b") for o in owners):
                took = time.monotonic() - killed
                break
            if time.monotonic() - killed > args.lease + 30:
                raise RuntimeError(f"not every room owned again after {args.lease + 30} s: {owners}")
            await asyncio.sleep(0.01)
    finally:
        await store.aclose()
    state = (await http.get(sim_url + "/_sim/state", headers={"Authorization": f"Bearer {A2E_KEY}"})).json()
    still_open = {r["channel"] for r in state["rooms"] if r["status"] == "open"}
    if not channels <= still_open:
        raise RuntimeError(f"{len(channels - still_open)} rooms taken over are no longer open at A2E")
    return took


async def run_once(args: argparse.Namespace) -> tuple[dict[str, list[float]], float]:
    workdir = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    redis_port, sim_port, a_port, b_port, c_port = (free_port() for _ in range(5))
    redis_url, sim_url = f"redis://{HOST}:{redis_port}/0", f"http://{HOST}:{sim_port}"
    urls = {n: f"http://{HOST}:{p}" for n, p in (("a", a_port), ("b", b_port), ("c", c_port))}
    try:
        with children() as started:
            spawn(started, workdir, "redis", ["-c", f"import os; os.execvp('redis-server', ['redis-server', '--port', "
                                              f"'{redis_port}', '--bind', '{HOST}', '--save', '', '--appendonly', 'no'])"], {})
            sim = spawn(started, workdir, "simulator", ["-m", "bridge", "simulate", "--host", HOST, "--port",
                                                        str(sim_port), "--api-key", A2E_KEY],
                        {"BRIDGE_LOG_LEVEL": "WARNING", "SIM_MAX_CHANNELS": "2000"})
            await wait_ready(started[0], port=redis_port)
            await wait_ready(sim, url=sim_url + "/_sim/health")
            instances = {n: serve(started, workdir, n, int(u.rsplit(":", 1)[1]), sim_url, redis_url, args.lease)
                         for n, u in urls.items()}
            for name, child in instances.items():
                await wait_ready(child, url=urls[name] + "/healthz")
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                found = await latency(args, http, urls["a"], urls["b"])
                took = await takeover(args, http, instances["c"], urls["c"], redis_url, sim_url)
            for name in ("a", "b"):
                instances[name].check()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return found, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=5, help="rooms of the latency part (default 5)")
    parser.add_argument("--rounds", type=int, default=200, help="measured rounds (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--takeover-rooms", type=int, default=100)
    parser.add_argument("--lease", type=float, default=5.0, help="BRIDGE_LEASE_SECONDS (default 5, the default)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (Debian: apt-get install redis-server)", file=sys.stderr)
        return 1
    ratios50, ratios99, takeovers, rows = [], [], [], []
    for _ in range(args.repeat):
        try:
            found, took = asyncio.run(run_once(args))
        except Exception as exc:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        same50, same99 = percentile(found["same"], 50), percentile(found["same"], 99)
        cross50, cross99 = percentile(found["cross"], 50), percentile(found["cross"], 99)
        ratios50.append(cross50 / same50)
        ratios99.append(cross99 / same99)
        takeovers.append(took)
        rows.append((same50, same99, cross50, cross99, statistics.fmean(found["cross"]), took))
    print(machine())
    print(f"# {args.rounds} measured rounds x {args.rooms} rooms after {args.warmup} warm-up; "
          f"{args.takeover_rooms} rooms taken over; lease {args.lease:g} s; {args.repeat} run(s)")
    print(f"{'run':<5}{'same p50':>10}{'same p99':>10}{'cross p50':>11}{'cross p99':>11}{'takeover s':>12}")
    for i, (s50, s99, c50, c99, _, took) in enumerate(rows, 1):
        print(f"{i:<5}{s50:>10.2f}{s99:>10.2f}{c50:>11.2f}{c99:>11.2f}{took:>12.2f}")
    print(f"speak->ack cross/same instance: p50 {median_spread(ratios50)}, p99 {median_spread(ratios99)} (goal <= 1.5)")
    print(f"takeover after kill -9, {args.takeover_rooms} rooms: {median_spread(takeovers)} s; lease {args.lease:g} s "
          f"(the floor), goal <= {args.lease + 1:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
