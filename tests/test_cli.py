"""The a2e-bridge command, as real child processes: a simulator from ``a2e-bridge simulate`` and a
whole streaming session (and a media task) driven with ``a2e-bridge call``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bridge.a2e.endpoints import ENDPOINTS
from bridge.simulator.state import AVATARS
from tests.helpers import ROOT, free_port, spawn_cli, wait_http

KEY = "sk_cli_CANARY_5be1"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        """The JSON error the command printed last on stderr (after any log lines or progress bar)."""
        start = self.err.index("{\n")
        return json.loads(self.err[start:])["error"]


@dataclass
class Simulator:
    url: str
    proc: subprocess.Popen[str]

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sim/state", timeout=5).json()

    def call(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """``a2e-bridge call ARGS`` against this simulator."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("A2E_", "SIM_", "BRIDGE_"))}
        full_env.update({"A2E_API_KEY": KEY, "A2E_BASE_URL": self.url, "PYTHONUNBUFFERED": "1"}, **(env or {}))
        done = subprocess.run([sys.executable, "-m", "bridge", "call", *args], env=full_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert KEY not in done.stdout and KEY not in done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def calls(self, *commands: tuple[str, ...], envs: list[dict[str, str] | None] | None = None) -> list[Result]:
        """Several independent ``call`` commands at once (each is a separate process)."""
        with ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args, env: self.call(*args, env=env), commands,
                                 envs or [None] * len(commands)))


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    port = free_port()
    proc = spawn_cli("simulate", "--port", str(port),
                     env={"SIM_TASK_STEP_SECONDS": "0.05", "BRIDGE_LOG_LEVEL": "WARNING"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_sim/health")
        yield Simulator(url, proc)
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert "Traceback" not in output, output
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
    assert proc.returncode in (0, -signal.SIGTERM), output


def test_call_list_shows_the_table(simulator: Simulator) -> None:
    done = simulator.call("list")
    assert done.code == 0
    for row in ENDPOINTS.values():
        assert f"  {row.name} " in done.out and row.path in done.out
    assert "streaming:" in done.out


def test_streaming_session(simulator: Simulator) -> None:
    avatars, coins = simulator.calls(("streaming_avatars",), ("remaining_coins",))
    assert avatars.code == 0 and coins.code == 0
    avatar = avatars.json()[0]["_id"]
    assert avatar == AVATARS[0]["_id"]
    coins_before = coins.json()["coins"]

    minted = simulator.call("agora_token", "--json", json.dumps({"avatar_id": avatar, "expire_seconds": 600}))
    assert minted.code == 0, minted.err
    room = minted.json()
    channel = room["channel"]  # taken from the printed JSON
    assert room["token"].startswith("007") and room["uid"]

    def on_channel(op: str, **fields: Any) -> tuple[str, ...]:
        return (op, "--json", json.dumps({"channel": channel, **fields}))

    coins, accepted, refused, asked, spoken = simulator.calls(
        ("remaining_coins",),
        on_channel("set_qa_context", text="a" * 5000),
        on_channel("set_qa_context", text="a" * 5001),
        on_channel("ask", text="What do you sell?"),
        on_channel("speak", text="Welcome!"),
    )
    assert coins.json()["coins"] == coins_before - 10  # 600 s at a coin a minute, paid up front
    assert accepted.code == 0 and accepted.json() == {}
    assert refused.code == 1 and refused.out == ""
    error = refused.error()
    assert error["kind"] == "A2EBadRequest" and error["code"] == 400 and "5000" in error["msg"]
    assert error["operation"] == "set_qa_context" and error["trace_id"]
    for done in (asked, spoken):
        assert done.code == 0 and done.json() == {}, done.err

    assert simulator.call(*on_channel("leave")).code == 0

    late, coins = simulator.calls(on_channel("speak", text="anyone?"), ("remaining_coins",))
    assert late.code == 1
    assert late.error()["kind"] == "A2ENotFound" and "left" in late.error()["msg"]
    (record,) = [r for r in simulator.state()["rooms"] if r["channel"] == channel]
    assert record["status"] == "left" and record["commands"] == 2 and record["qa_context_chars"] == 5000
    assert record["refunded"] > 0
    assert coins.json()["coins"] == coins_before - 10 + record["refunded"]


def test_media_task_with_wait(simulator: Simulator) -> None:
    params = {"anchor_id": AVATARS[0]["_id"], "anchor_type": 0, "audioSrc": "https://media.example.com/a.mp3"}
    # a video passes through 5 steps: at the default SIM_TASK_STEP_SECONDS (1 s) it would not end within
    # --timeout 4, at the 0.05 s the simulator was started with it does
    done = simulator.call("video_generate", "--json", json.dumps(params), "--wait", "--interval", "0.05",
                          "--timeout", "4")
    assert done.code == 0, done.err
    result = done.json()
    assert result["status"] == "success"
    assert result["result_url"].startswith("https://") and result["created"]["_id"] in result["result_url"]
    assert result["final"]["_id"] == result["created"]["_id"]


def test_failing_task_with_wait(simulator: Simulator) -> None:
    params = {"source_url": "https://media.example.com/fail.mp4", "target_lang": "fr"}
    done = simulator.call("dubbing_start", "--json", json.dumps(params), "--wait", "--interval", "0.05")
    assert done.code == 1
    assert done.error()["kind"] == "TaskFailed"


def test_usage_errors_fail_clearly_without_calling(simulator: Simulator) -> None:
    calls_before = simulator.state()["calls"]
    cases = [
        (("nope",), "unknown operation 'nope'; run 'a2e-bridge call list'"),
        (("video_delete",), "needs _id"),
        (("agora_token", "--json", json.dumps({"avatar_id": AVATARS[0]["_id"]}), "--wait"), "does not create a task"),
        (("remaining_coins", "--json", "{oops"), "not JSON"),
        (("remaining_coins", "--json", "[1]"), "must be a JSON object"),
    ]
    for (args, message), done in zip(cases, simulator.calls(*(args for args, _ in cases)), strict=True):
        assert done.code == 2, (args, done)
        assert message in done.err, (args, done.err)
    assert simulator.state()["calls"] == calls_before  # none of them reached the simulator


def test_no_key_and_unreachable_a2e(simulator: Simulator) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    no_key, down, retried, redirected = simulator.calls(
        ("remaining_coins",), ("remaining_coins",), ("remaining_coins",),
        ("remaining_coins", "--base-url", simulator.url),  # --base-url wins over A2E_BASE_URL
        envs=[{"A2E_API_KEY": ""}, {"A2E_BASE_URL": nowhere, "A2E_MAX_ATTEMPTS": "1"},
              {"A2E_BASE_URL": nowhere, "A2E_MAX_ATTEMPTS": "2"}, {"A2E_BASE_URL": nowhere}],
    )
    assert no_key.code == 1 and "A2E_API_KEY" in no_key.err
    assert down.code == 1 and down.error()["kind"] == "A2EUnavailable"
    assert "retrying" not in down.err  # A2E_MAX_ATTEMPTS reaches the client
    assert retried.code == 1 and retried.err.count("retrying A2E call") == 1
    assert redirected.code == 0 and "coins" in redirected.json()
