"""schemathesis over a real ``a2e-bridge serve``'s ``/openapi.json``: every check, every phase
(examples, coverage, fuzzing, stateful).

    python scripts/schemathesis_run.py                    # the full run (README's figures)
    python scripts/schemathesis_run.py --max-examples 5   # shorter

It starts ``a2e-bridge serve`` on the embedded simulator with one client key (so that Bearer security
is declared and enforced) and that tenant trusted with the pass-through, then runs the schemathesis
CLI with the repository's ``schemathesis.toml``. The room event stream (SSE) is left out: for a live
room it never ends, which no request/response check can wait for (tests/test_sse.py covers it).
Prints the summary and exits with schemathesis' status (0: no failure of any kind).

``run()`` is importable (the test suite runs a bounded version).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a file (python scripts/schemathesis_run.py): the repository root, for scripts.serve
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.serve import ROOT, bridge_server  # noqa: E402

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
PHASES = "examples,coverage,fuzzing,stateful"
EXCLUDED = r"/events$"  # the SSE stream (see above)


@dataclass
class Result:
    status: int  # schemathesis' exit status
    operations: int
    cases: int
    failures: int
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.failures == 0


def _figures(output: str) -> tuple[int, int, int]:
    tested = re.search(r"Tested:\s+(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    failed = re.search(r"(\d+) failures?\b", output.rsplit("SUMMARY", 1)[-1])
    return (int(tested.group(1)) if tested else 0, int(cases.group(1)) if cases else 0,
            int(failed.group(1)) if failed else 0)


def run(*, max_examples: int | None = None, seed: int = 1, workers: int = 1, log_path: Path | None = None,
        timeout: float = 3600) -> Result:
    """Start a bridge, run schemathesis against it, stop the bridge."""
    key = "st-" + os.urandom(8).hex()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BRIDGE_DB": "memory://", "BRIDGE_API_KEYS": f"acme:{key}",
           "BRIDGE_PASSTHROUGH_TENANTS": "acme", "BRIDGE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env.pop("A2E_API_KEY", None)
    log_path = log_path or Path(tempfile.mkdtemp(prefix="schemathesis-")) / "server.log"
    with bridge_server(env, log_path) as base:
        command = [str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--checks", "all", "--phases", PHASES,
                   "-H", f"Authorization: Bearer {key}", "--exclude-path-regex", EXCLUDED,
                   "--request-timeout", "10", "--seed", str(seed), "--workers", str(workers)]
        if max_examples is not None:
            command += ["--max-examples", str(max_examples)]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, capture_output=True,
                              text=True, timeout=timeout, check=False)
        seconds = time.monotonic() - started
    output = (done.stdout + done.stderr).replace(key, "<key>")
    operations, cases, failures = _figures(output)
    return Result(done.returncode, operations, cases, failures, seconds, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=None, help="per operation and phase (default: schemathesis')")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    result = run(max_examples=args.max_examples, seed=args.seed, workers=args.workers)
    print(result.output)
    print(f"operations tested: {result.operations}, test cases: {result.cases}, failures: {result.failures}, "
          f"{result.seconds:.0f} s")
    sys.exit(result.status)


if __name__ == "__main__":
    main()
