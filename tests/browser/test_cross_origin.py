"""A frontend-only site on its own origin, in a real Chromium: a second local server serves a page
(``tests/browser/frontend``) that opens a room with a publishable browser key, talks over the websocket
and reads SSE; the same page from a third origin, which the bridge does not list, is refused at every
door (the CORS preflight, ``POST /v1/rooms``, SSE, the websocket handshake).

The pages live under their own server's headers: its CSP names the bridge in ``script-src`` and
``connect-src``; the bridge's own CSP only governs the pages the bridge serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bridge.http.auth import key_id
from bridge.simulator.feed import answer_for
from tests.helpers import KEYS, Bridge, serve, wait_observed

pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")

FRONTEND = Path(__file__).resolve().parent / "frontend"
CLIENT_MODULE = Path(__file__).resolve().parents[2] / "clients" / "js" / "bridge.mjs"
PK = "pk_shop_3c8e1f"
QA = "The shop opens at 9am. Bicycles are repaired on Tuesdays. Returns are free within 30 days."
QUESTION = "When does the shop open?"
WAIT_MS = 15_000


def frontend_app(config: dict[str, str]) -> Starlette:
    """The shop's own site. ``config`` (bridge, key, module) is read per request: it is filled in once
    the bridge, which must know this server's origin first, is running."""

    index_html = (FRONTEND / "index.html").read_text()

    async def index(request: Request) -> Response:
        bridge = config["bridge"]
        page = index_html.replace(
            'data-bridge="" data-key="" data-module=""',
            f'data-bridge="{bridge}" data-key="{config["key"]}" data-module="{config["module"]}"')
        csp = (f"default-src 'self'; script-src 'self' {bridge}; "
               f"connect-src 'self' {bridge} {bridge.replace('http://', 'ws://', 1)}; object-src 'none'; base-uri 'none'")
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    def script(path: Path) -> Callable[[Request], Any]:
        text = path.read_text()

        async def endpoint(request: Request) -> Response:
            return Response(text, media_type="text/javascript")
        return endpoint

    return Starlette(routes=[Route("/", index), Route("/page.mjs", script(FRONTEND / "page.mjs")),
                             Route("/bridge.mjs", script(CLIENT_MODULE))])


async def open_frontend(browser: Any, url: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    await page.goto(url)
    await page.wait_for_function("() => window.ready === true", timeout=WAIT_MS)
    return page


def mints(bridge: Bridge) -> int:
    return int(bridge.sim.state.snapshot()["calls"].get("agora_token", 0))


async def test_a_page_on_its_own_origin_opens_talks_and_listens_with_a_browser_key(
        bridge_factory: Any, browser: Any) -> None:
    config: dict[str, str] = {"key": PK}
    async with serve(frontend_app(config)) as shop:
        bridge: Bridge = await bridge_factory(api_keys=KEYS, browser_keys={PK: "acme"},
                                              tenant_limits={"acme": {"allowed_origins": [shop]}})
        # the client module itself comes from the bridge, cross-origin (a module script is a CORS request)
        config.update(bridge=bridge.url, module=f"{bridge.url}/static/bridge.mjs")
        page = await open_frontend(browser, shop + "/")

        room = await page.evaluate("(qa) => frontend.open(qa)", QA)
        stored = bridge.rooms.registry.live[room["id"]].room
        assert (stored.tenant, stored.opened_by) == ("acme", key_id(PK))
        await wait_observed(bridge, room)
        ack = await page.evaluate("(q) => frontend.ask(q)", QUESTION)
        assert ack["type"] == "ack" and ack["kind"] == "ask"
        await page.wait_for_function("() => frontend.replies().ws.length > 0 && frontend.replies().sse.length > 0",
                                     timeout=WAIT_MS)
        replies = await page.evaluate("frontend.replies()")
        assert replies == {"ws": [answer_for(QUESTION, QA)], "sse": [answer_for(QUESTION, QA)]}
        assert await page.evaluate("frontend.listRooms()") == "forbidden"
        assert await page.evaluate("frontend.end()") == "closed"
        sim_rooms = [r for r in bridge.sim.state.snapshot()["rooms"] if r["channel"] == room["channel"]]
        assert [r["status"] for r in sim_rooms] == ["left"]
        assert page.errors == []


async def test_the_same_page_on_an_unlisted_origin_is_refused_at_every_door(
        bridge_factory: Any, browser: Any, caplog: pytest.LogCaptureFixture) -> None:
    listed: dict[str, str] = {"key": PK}
    stolen: dict[str, str] = {"key": PK}
    async with serve(frontend_app(listed)) as shop, serve(frontend_app(stolen)) as elsewhere:
        bridge: Bridge = await bridge_factory(api_keys=KEYS, browser_keys={PK: "acme"},
                                              tenant_limits={"acme": {"allowed_origins": [shop]}})
        # the page brings its own copy of the client: what is refused is the bridge's API, not a script
        stolen.update(bridge=bridge.url, module="/bridge.mjs")
        # a live room of that key, opened from the listed origin, whose ticket the other page holds too
        async with httpx.AsyncClient(base_url=bridge.url) as http:
            made = await http.post("/v1/rooms", json={"expire_seconds": 60},
                                   headers={"Authorization": f"Bearer {PK}", "Origin": shop})
            assert made.status_code == 201, made.text
        room = made.json()
        before, live = mints(bridge), len(bridge.rooms.registry.live)
        caplog.set_level(logging.WARNING, "bridge.origins")

        page = await open_frontend(browser, elsewhere + "/")
        assert await page.evaluate("doors.createRoom()") == "network_error"  # the preflight found no CORS answer
        assert await page.evaluate("doors.simplePost()") == "sent"
        events_url = f"{room['events_url']}?ticket={room['ws_ticket']}"
        assert await page.evaluate("(url) => doors.sse(url)", events_url) == "refused"
        ws_url = f"{room['ws_url']}?ticket={room['ws_ticket']}"
        assert await page.evaluate("(url) => doors.ws(url)", ws_url) == "closed 1006"  # never opened

        assert (mints(bridge), len(bridge.rooms.registry.live)) == (before, live)  # it cost nothing
        assert bridge.rooms.registry.clients.count("clients_per_room", room["id"]) == 0
        refused = [(r.path, r.origin) for r in caplog.records if r.name == "bridge.origins"]  # type: ignore[attr-defined]
        assert refused == [("/v1/rooms", elsewhere), (f"/v1/rooms/{room['id']}/events", elsewhere),
                           (f"/v1/rooms/{room['id']}/ws", elsewhere)]
        # and from the listed origin the same room is still reachable
        listed.update(bridge=bridge.url, module="/bridge.mjs")
        page = await open_frontend(browser, shop + "/")
        assert await page.evaluate("(url) => doors.sse(url)", events_url) == "open"
        assert await page.evaluate("(url) => doors.ws(url)", ws_url) == "open"
