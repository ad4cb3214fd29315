"""What the benchmarks share: child processes on 127.0.0.1, readiness, CPU and memory of a process,
percentiles, the descriptor limit, and one line describing the machine.

The scripts in bench/ are run as ``python bench/<script>.py``, so this module is importable as
``benchlib`` (bench/ is the script's directory, first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `import bridge` means this checkout's, as in the child processes
HOST = "127.0.0.1"
A2E_KEY = "bench-a2e-key"
CLIENT_KEY = "bench-client-key"
SPEAK_PATH = "/api/v1/streaming-avatar/speak"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}:\n"
                               + self.log.read_text()[-2000:])


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Child processes started into the list are terminated (then killed) on the way out."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in started:
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()


def spawn(started: list[Child], workdir: Path, name: str, args: list[str], env: dict[str, str]) -> Child:
    """``python ARGS`` in WORKDIR (a scratch directory, so that no developer .env leaks into the
    settings), with only ENV of the A2E_/BRIDGE_/SIM_ variables, output in WORKDIR/NAME.log."""
    log = workdir / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("A2E_", "BRIDGE_", "SIM_"))}
    full_env.update(env, PYTHONUNBUFFERED="1")
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), full_env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, *args], cwd=workdir, env=full_env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    child = Child(name, proc, log)
    started.append(child)
    return child


async def wait_ready(child: Child, url: str | None = None, port: int | None = None) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            child.check()
            try:
                if url is not None:
                    if (await http.get(url)).status_code == 200:
                        return
                else:
                    _, writer = await asyncio.open_connection(HOST, port)
                    writer.close()
                    return
            except (httpx.TransportError, OSError):
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{child.name} did not become ready within 30 s")


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median_spread(values: list[float]) -> str:
    """``median (min–max)`` of repeated measurements."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def raise_nofile(need: int) -> int:
    """Raise this process's soft descriptor limit towards ``need`` within the hard limit; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> str:
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load unknown"
    return (f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, {platform.platform()}; {load}")


def bridge_deflate() -> bool:
    """Whether the bridge's server config negotiates permessage-deflate: the floors are run alike."""
    from bridge.serving import WS_PER_MESSAGE_DEFLATE

    return WS_PER_MESSAGE_DEFLATE
