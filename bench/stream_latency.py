"""Streamed text and brains: the bridge against a bare stream relay, in one run.

1. **Sentence → speak**: from the moment a client sends the delta that completes a sentence to
   the moment A2E (the simulator) receives the speak call for it, through the bridge's websocket
   (``speak_delta`` into one open stream) and through ``bench/minimal_stream.py`` (websockets in,
   the same segmenter, httpx out: the floor).
2. **Ask → first speak** with an ``openai`` brain: from the client's ``ask`` to the simulator
   receiving the answer's first sentence, through a bridge room whose brain is a local
   OpenAI-compatible streaming server, and through the floor doing the same with the ``openai``
   package. The LLM's own time to first sentence (its request in, the sentence's last token out) is
   shown beside them.

The simulator and the fake LLM (``tests/fakes/llm.py``) run in this process, on loopback, so that
send and arrival times come from one clock; the bridge (``a2e-bridge serve``) and the floor are
child processes. Rounds alternate between the two relays.

    python bench/stream_latency.py                # 300 sentences and 20 asks per relay
    python bench/stream_latency.py -n 1000 --asks 40

Exit status: 0 when every round completed, 1 on any error or timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from relay_latency import A2E_KEY, CLIENT_KEY, HOST, children, free_port, percentile, spawn, wait_ready  # noqa: E402

from bridge.simulator.app import create_simulator_app  # noqa: E402
from bridge.simulator.embedded import EmbeddedServer  # noqa: E402
from bridge.simulator.state import SimConfig  # noqa: E402
from tests.fakes.llm import FakeLLM, Script  # noqa: E402

TIMEOUT = 10.0
ANSWER = ["Thanks", " for", " asking", ",", " we", " open", " at", " nine", "!", " Parking", " is", " behind",
          " the", " building", ".", " See", " you", " soon", "."]
SENTENCES = 3


class Arrivals:
    """The simulator's speak/ask calls as they arrive, per channel, stamped with time.monotonic()."""

    def __init__(self, state: Any) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[float, str]]] = defaultdict(asyncio.Queue)
        original = state.command

        def recording(kind: str, channel: Any, text: str) -> Any:
            room = original(kind, channel, text)
            self.queues[channel].put_nowait((time.monotonic(), text))
            return room

        state.command = recording

    async def next(self, channel: str) -> tuple[float, str]:
        return await asyncio.wait_for(self.queues[channel].get(), TIMEOUT)


async def drain(ws: ClientConnection, acks: asyncio.Queue[dict[str, Any]]) -> None:
    """Read the bridge's frames (acks, events) so that it never blocks on this client."""
    with contextlib.suppress(Exception):
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") in ("ack", "error") and frame.get("kind") != "speak_delta":
                acks.put_nowait(frame)


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:<34} n={len(ms):4d}  p50 {statistics.median(ms):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
            f"mean {statistics.fmean(ms):7.2f} ms")


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    sim_app = create_simulator_app(SimConfig(seconds_per_char=0.0001))
    arrivals = Arrivals(sim_app.state.sim)
    llm = FakeLLM(default=Script(ANSWER, first_delay=args.ttft, token_delay=args.token_delay))
    sim_server, llm_server = EmbeddedServer.for_app(sim_app), EmbeddedServer.for_app(llm.app())
    sim_url, llm_url = await sim_server.start(), await llm_server.start()
    bridge_port, floor_port = free_port(), free_port()
    bridge_url = f"http://{HOST}:{bridge_port}"
    errors: list[str] = []
    try:
        with children(workdir) as started:
            bridge = spawn(started, workdir, "bridge", ["-m", "bridge", "serve", "--host", HOST, "--port", str(bridge_port)], {
                "A2E_API_KEY": A2E_KEY, "A2E_BASE_URL": sim_url, "BRIDGE_API_KEYS": f"bench:{CLIENT_KEY}",
                "BRIDGE_DB": str(workdir / "bridge.db"), "BRIDGE_LOG_LEVEL": "WARNING", "BRIDGE_EVENT_SOURCE": "none",
                # the flood limit guards against abusive clients; this client is one on purpose
                "BRIDGE_WS_RATE_LIMIT": "1000000", "BRIDGE_WS_RATE_BURST": "1000000", "BENCH_LLM_KEY": "bench",
                "BRIDGE_BRAINS": json.dumps({"bench": {"kind": "openai", "base_url": llm_url + "/v1", "model": "bench",
                                                       "api_key_env": "BENCH_LLM_KEY", "max_retries": 0}}),
            })
            floor = spawn(started, workdir, "floor", [str(HERE / "minimal_stream.py"), "--host", HOST, "--port",
                                                      str(floor_port), "--a2e-url", sim_url, "--llm-url", llm_url + "/v1"], {})
            await wait_ready(bridge, url=bridge_url + "/healthz")
            await wait_ready(floor, port=floor_port)
            auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                async def bridge_room(**body: Any) -> tuple[ClientConnection, str, asyncio.Queue[dict[str, Any]]]:
                    room = (await http.post(bridge_url + "/v1/rooms", json={"expire_seconds": 3600, **body},
                                            headers=auth)).raise_for_status().json()
                    ws = await connect(f"ws://{HOST}:{bridge_port}/v1/rooms/{room['id']}/ws", additional_headers=auth)
                    await ws.recv()
                    acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                    asyncio.create_task(drain(ws, acks))
                    return ws, room["channel"], acks

                async def floor_room() -> tuple[ClientConnection, str]:
                    minted = (await http.post(sim_url + "/api/v1/streaming-avatar/agora-token",
                                              json={"avatar_id": "68af59a86eeedd0042ca7e27", "expire_seconds": 3600},
                                              headers={"Authorization": f"Bearer {A2E_KEY}"})).json()["data"]
                    return await connect(f"ws://{HOST}:{floor_port}/?channel={minted['channel']}"), minted["channel"]

                b_ws, b_channel, _ = await bridge_room()
                f_ws, f_channel = await floor_room()
                sentence: dict[str, list[float]] = {"bridge": [], "floor": []}

                async def one_sentence(name: str, i: int, record: bool) -> None:
                    ws, channel = (b_ws, b_channel) if name == "bridge" else (f_ws, f_channel)
                    head = f"Sentence number {i} is being said right now"
                    frame = ({"type": "speak_delta", "id": i, "stream": "s", "text": head} if name == "bridge"
                             else {"type": "delta", "text": head})
                    await ws.send(json.dumps(frame))
                    await asyncio.sleep(0.002)  # the head is in; what is timed is the delta that completes it
                    start = time.monotonic()
                    await ws.send(json.dumps({**frame, "text": "!"}))
                    arrived, text = await arrivals.next(channel)
                    if text != head + "!":
                        errors.append(f"{name}: {text!r} arrived for sentence {i}")
                    elif record:
                        sentence[name].append(arrived - start)

                for i in range(args.warmup + args.sentences):
                    order = ("bridge", "floor") if i % 2 == 0 else ("floor", "bridge")
                    for name in order:
                        await one_sentence(name, i, i >= args.warmup)

                a_ws, a_channel, a_acks = await bridge_room(brain="bench")
                g_ws, g_channel = await floor_room()
                first: dict[str, list[float]] = {"bridge": [], "floor": []}
                to_llm: dict[str, list[float]] = {"bridge": [], "floor": []}  # ask sent → the LLM has the request
                from_llm: dict[str, list[float]] = {"bridge": [], "floor": []}  # sentence 1's last token → A2E
                ttfs: list[float] = []

                async def one_ask(name: str, i: int, record: bool) -> None:
                    ws, channel = (a_ws, a_channel) if name == "bridge" else (g_ws, g_channel)
                    asked = len(llm.received_at)
                    start = time.monotonic()
                    await ws.send(json.dumps({"type": "ask", "id": f"q{i}", "text": f"Question {i}?"}))
                    arrived, text = await arrivals.next(channel)
                    for _ in range(SENTENCES - 1):
                        await arrivals.next(channel)
                    if name == "bridge":
                        ack = await asyncio.wait_for(a_acks.get(), TIMEOUT)
                        if ack.get("type") != "ack":
                            errors.append(f"bridge ask {i}: {ack}")
                    if text != "Thanks for asking, we open at nine!":
                        errors.append(f"{name}: {text!r} arrived first for ask {i}")
                    elif record:
                        first[name].append(arrived - start)
                        said = next(t for t, token in llm.sent if token == "!" and t >= llm.received_at[asked])
                        ttfs.append(said - llm.received_at[asked])
                        to_llm[name].append(llm.received_at[asked] - start)
                        from_llm[name].append(arrived - said)

                for i in range(args.ask_warmup + args.asks):
                    order = ("bridge", "floor") if i % 2 == 0 else ("floor", "bridge")
                    for name in order:
                        await one_ask(name, i, i >= args.ask_warmup)
                for ws in (b_ws, f_ws, a_ws, g_ws):
                    await ws.close()
    finally:
        await sim_server.stop()
        await llm_server.stop()

    print("1. a sentence's last delta sent → its A2E speak received")
    print("   " + summary("bridge (speak_delta, open stream)", sentence["bridge"]))
    print("   " + summary("floor (bench/minimal_stream.py)", sentence["floor"]))
    for q in (50, 99):
        b, f = percentile(sentence["bridge"], q) * 1000, percentile(sentence["floor"], q) * 1000
        print(f"   p{q}: bridge {b:.2f} ms (goal {2 if q == 50 else 10} ms), floor {f:.2f} ms, "
              f"bridge − floor {b - f:+.2f} ms, ratio {b / f:.2f}")
    print(f"2. ask → first A2E speak, openai brain (LLM: first token {args.ttft * 1000:.0f} ms, "
          f"{args.token_delay * 1000:.0f} ms per token)")
    print("   " + summary("bridge (room brain 'bench')", first["bridge"]))
    print("   " + summary("floor (openai package, same cut)", first["floor"]))
    print("   " + summary("the LLM's own time to sentence 1", ttfs))
    for name in ("bridge", "floor"):
        print(f"   {name:<6}: ask → LLM request in p50 {statistics.median(to_llm[name]) * 1000:.2f} ms, "
              f"sentence 1's last token out → A2E speak in p50 {statistics.median(from_llm[name]) * 1000:.2f} ms")
    b50, f50, l50 = (statistics.median(v) for v in (first["bridge"], first["floor"], ttfs))
    print(f"   p50 ratio: bridge / floor {b50 / f50:.3f}, bridge / LLM's own {b50 / l50:.3f} (goal ≤ 1.1)")
    for error in errors[:10]:
        print("error:", error)
    return 1 if errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--sentences", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--asks", type=int, default=20)
    parser.add_argument("--ask-warmup", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.05, help="the fake LLM's time to first token (s)")
    parser.add_argument("--token-delay", type=float, default=0.004, help="the fake LLM's time per token (s)")
    sys.exit(asyncio.run(run(parser.parse_args())))
