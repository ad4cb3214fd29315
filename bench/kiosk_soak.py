"""Soak: visitors cycled through one kiosk page (``/kiosk``), with short idle and expiry settings.

One ``a2e-bridge serve`` child process (its embedded A2E simulator, development mode) and one
headless Chromium page that stays open for the whole run, as a kiosk does. Each visitor engages
(typing, a voice wake through a stand-in for the Web Speech API, or a touch), asks, reads the
caption, and walks away; the page asks "are you still there?" and leaves the room. Along the way:
the websocket is killed every 7th visitor, the page is reloaded in the middle of two visits (during
the warm-up, so that the memory figures cover one page life), and a few visitors stay past the
room's expiry (the page replaces the room on their next touch).

Measured: rooms leaked (open upstream or expired upstream instead of left, live in the bridge
after the run), rooms opened per visitor, and the page's memory after a forced garbage collection
(Chromium's CDP ``Performance.getMetrics``: JS heap, DOM nodes, event listeners), whose floor is
the same page after the warm-up visitors: the ratio says whether the page grows with visitors.

    python bench/kiosk_soak.py                        # 100 visitors
    python bench/kiosk_soak.py -n 20 --screenshot docs/kiosk.png

Exit status: 0 when every visitor was answered, nothing leaked and the heap grew less than 30 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bridge.simulator.feed import answer_for  # noqa: E402  (the simulator's deterministic answers)
from bridge.simulator.state import AVATARS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QA = ("The museum opens at 9am every day except Monday. Tickets cost 12 euros and children enter for free. "
      "The cafe on the top floor serves lunch until 3pm. The shop sells posters and books.")
QUESTIONS = ["When does the museum open?", "How much do tickets cost?", "Until when is lunch served?",
             "What does the shop sell?"]
IDLE, PROMPT, EXPIRE, LEAVE_BEFORE = 1.0, 0.5, 15, 5  # seconds: quiet time, "still there?", room life
WARMUP = 10  # visitors before the memory floor is taken; reloads happen only among them
HEAP_LIMIT = 1.30  # the run fails if the heap grows more than this over the floor
FAKE_SPEECH = (ROOT / "tests" / "browser" / "fake_speech.js").read_text()  # the tests' Web Speech API


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bridge(workdir: Path, port: int, warm: int) -> subprocess.Popen[bytes]:
    profile = {"avatar_id": AVATARS[0]["_id"], "qa_context": QA, "idle_seconds": IDLE, "prompt_seconds": PROMPT,
               "expire_seconds": EXPIRE, "watchdog_seconds": 10, "warm_rooms": warm}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("A2E_", "BRIDGE_", "SIM_"))}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT), BRIDGE_DB=str(workdir / "bridge.db"),
               BRIDGE_KIOSK_PROFILES=json.dumps({"soak": profile}), BRIDGE_IDLE_TIMEOUT="5",
               BRIDGE_LEAVE_BEFORE_EXPIRY=str(LEAVE_BEFORE), BRIDGE_ROOM_CREATE_RATE="600",
               BRIDGE_ROOM_CREATE_BURST="100", BRIDGE_LOG_LEVEL="WARNING", SIM_SECONDS_PER_CHAR="0.01")
    log = (workdir / "bridge.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--port", str(port)], cwd=workdir, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


async def wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not start")
            await asyncio.sleep(0.1)


async def memory(cdp: Any) -> dict[str, float]:
    """The page's JS heap, DOM nodes and listeners after a forced garbage collection."""
    await cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {"heap_mb": metrics["JSHeapUsedSize"] / 2**20, "nodes": metrics["Nodes"],
            "listeners": metrics["JSEventListeners"]}


# The page is driven as a visitor would: mouse and keyboard input at the elements' coordinates, and
# watched with in-page waits (no locators: Playwright's injected helpers would add their own heap
# to the page's figures).

async def wait(page: Page, condition: str, arg: object = None, within_ms: float = 20_000) -> None:
    await page.wait_for_function(condition, arg=arg, timeout=within_ms)


async def state(page: Page, value: str, within_ms: float = 20_000) -> None:
    await wait(page, "(v) => document.documentElement.dataset.state === v", value, within_ms)


async def answered(page: Page, question: str) -> None:
    await wait(page, "(t) => document.getElementById('caption').textContent === t", answer_for(question, QA))


async def centre(page: Page, element_id: str) -> tuple[float, float]:
    box = await page.evaluate("(id) => { const r = document.getElementById(id).getBoundingClientRect(); "
                              "return [r.x + r.width / 2, r.y + r.height / 2]; }", element_id)
    return float(box[0]), float(box[1])


async def touch(page: Page, element_id: str) -> None:
    await page.mouse.click(*await centre(page, element_id))


async def type_question(page: Page, question: str) -> None:
    await touch(page, "ask-text")
    await page.keyboard.type(question)
    await page.keyboard.press("Enter")


async def ask(page: Page, question: str) -> None:
    await type_question(page, question)
    await answered(page, question)


async def visitor(page: Page, n: int, lingering: bool) -> None:
    """One visit: engage, ask, maybe trouble, walk away; back on the attract screen at the end."""
    await state(page, "attract")
    question = QUESTIONS[n % len(QUESTIONS)]
    how = ("typed", "voice", "touch")[n % 3]
    if how == "typed":
        await ask(page, question)
    elif how == "voice":
        await wait(page, "() => window.__listening().includes('wake')")
        await page.evaluate("(q) => window.__say(q)", question)
        await answered(page, question)
    else:
        await touch(page, "stage")
        await wait(page, "() => document.documentElement.dataset.room !== ''")
        await ask(page, question)
    if n % 7 == 0:  # the network drops: the page reconnects to the same room
        await page.evaluate("kiosk.room._ws.close(4999, 'soak drop')")
        await wait(page, "() => document.getElementById('conn').dataset.status === 'open'")
        await ask(page, QUESTIONS[(n + 1) % len(QUESTIONS)])
    if n <= WARMUP and n % 5 == 3:  # the tab reloads mid-visit: the page rejoins the same room
        await page.reload()
        await state(page, "engaged")
        await ask(page, QUESTIONS[(n + 2) % len(QUESTIONS)])
    if lingering:  # a visitor who stays past the room's life: the next touch gets a new room
        replaced = "() => kiosk.events.some((e) => e.type === 'room_opened' && e.replaced)"
        deadline = time.monotonic() + EXPIRE + 20
        while not await page.evaluate(replaced):
            if time.monotonic() > deadline:
                raise AssertionError("the expired room was not replaced")
            await touch(page, "stage")
            await asyncio.sleep(0.4)
        await ask(page, question)
    await state(page, "attract", (IDLE + PROMPT) * 1000 + 20_000)


async def run(args: argparse.Namespace) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as tmp:
        proc = start_bridge(Path(tmp), port, args.warm)
        try:
            await wait_http(url)
            return await soak(args, url)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def soak(args: argparse.Namespace, url: str) -> int:
    samples: dict[int, dict[str, float]] = {}
    lingering = {round(args.visitors * f) for f in (0.33, 0.66, 0.99)} - set(range(WARMUP + 1))
    started = time.monotonic()
    async with async_playwright() as pw, httpx.AsyncClient(base_url=url, timeout=20) as http:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        await context.add_init_script(FAKE_SPEECH)
        await context.route("**/download.agora.io/**", lambda route: route.abort())
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        await page.goto(url + "/kiosk?profile=soak")
        if args.screenshot:
            await screenshots(page, http, Path(args.screenshot))
        for n in range(1, args.visitors + 1):
            await visitor(page, n, n in lingering)
            if n == WARMUP or n % 25 == 0 or n == args.visitors:
                samples[n] = await memory(cdp)
                print(f"visitor {n:3d}: heap {samples[n]['heap_mb']:.2f} MB, {samples[n]['nodes']:.0f} nodes, "
                      f"{samples[n]['listeners']:.0f} listeners", flush=True)
        counts = await page.evaluate("kiosk.counts")
        elapsed = time.monotonic() - started
        await browser.close()
        live = (await http.get("/v1/rooms?state=live")).json()["rooms"]
        sim = (await http.get("/_a2e/_sim/state")).json()
    statuses = [r["status"] for r in sim["rooms"]]
    # open upstream beyond the warm rooms waiting for the next visitor, or expired there instead of left
    leaked = max(0, sim["open_rooms"] - args.warm) + statuses.count("expired")
    if args.visitors <= WARMUP:
        print(f"(memory: {args.visitors} visitors are no more than the {WARMUP} warm-up ones: no ratio to speak of)")
    floor, last = samples[min(samples)], samples[max(samples)]
    heap_ratio = last["heap_mb"] / floor["heap_mb"]
    report = {
        "visitors": args.visitors, "minutes": round(elapsed / 60, 1), "counts": counts,
        "rooms_minted": sim["calls"].get("agora_token", 0), "rooms_left": statuses.count("left"),
        "rooms_expired_upstream": statuses.count("expired"), "rooms_live_after": len(live), "leaked": leaked,
        "coins_charged": sum(r["charged"] for r in sim["rooms"]), "coins_refunded": sum(r["refunded"] for r in sim["rooms"]),
        "memory": samples, "heap_ratio": round(heap_ratio, 3),
        "nodes_ratio": round(last["nodes"] / floor["nodes"], 3),
        "listeners_ratio": round(last["listeners"] / floor["listeners"], 3), "page_errors": errors,
    }
    print(json.dumps(report, indent=2))
    ok = leaked == 0 and heap_ratio < HEAP_LIMIT and not errors
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


async def screenshots(page: Page, http: httpx.AsyncClient, path: Path) -> None:
    """The attract screen, and the kiosk with an answer on screen while the stand-in speaks (a long
    speak keeps it talking long enough to be caught), then back to attract for the soak."""
    await state(page, "attract")
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path.with_name(path.stem + "-attract.png")))
    question = QUESTIONS[0]
    await ask(page, question)
    room = await page.evaluate("document.documentElement.dataset.room")
    await http.post(f"/v1/rooms/{room}/speak", json={"text": "Welcome to the museum! " * 12})
    await wait(page, "() => document.getElementById('standin').classList.contains('speaking')")
    await touch(page, "stage")  # the caret out of the question box
    await page.screenshot(path=str(path))
    await state(page, "attract", 30_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--visitors", type=int, default=100)
    parser.add_argument("--warm", type=int, default=0, help="the profile's warm_rooms")
    parser.add_argument("--screenshot", help="save a PNG of the kiosk mid-answer there (and *-attract.png)")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
