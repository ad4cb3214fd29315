"""The operator page in a real headless Chromium: a live room appears and updates without a reload,
its transcript follows what is said, the usage chart is drawn in the page (SVG, no CDN), webhook
deliveries are listed, all under the bridge's CSP with no violation."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.simulator.feed import answer_for
from tests.helpers import ACME, GLOBEX, KEYS, WEBHOOK_SECRET, Receiver, create_room, wait_observed

playwright_api = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=15_000)

QA = "The museum opens at 9am every day. Tickets cost 12 euros."
QUESTION = "When does the museum open?"
WATCH_VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  { directive: e.effectiveDirective, blocked: e.blockedURI }));"""


async def test_operator_page_shows_a_live_room_its_transcript_and_usage(bridge_factory: Any, open_page: Any) -> None:
    receiver = await Receiver().start()
    try:
        bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, operator_key="operator-key",
                                      webhooks={"acme": {"url": receiver.url, "secret": WEBHOOK_SECRET}})

        async def watch(page: Any) -> None:
            await page.add_init_script(WATCH_VIOLATIONS)

        page = await open_page(bridge, "/operator", setup=watch)
        await expect(page.get_by_test_id("auth-panel")).to_be_visible()  # keys are configured: ask for one
        await page.get_by_test_id("api-key").fill("operator-key")
        await page.get_by_test_id("api-key-save").click()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-status", "live")
        await expect(page.get_by_test_id("who")).to_have_text("operator: every tenant")

        room = await create_room(bridge, qa_context=QA, expire_seconds=600)
        rows = page.get_by_test_id("room-row")
        await expect(rows).to_have_count(1)  # appeared without a reload
        await expect(rows.first).to_have_attribute("data-room-id", room["id"])
        await wait_observed(bridge, room)
        await rows.first.click()
        await expect(page.get_by_test_id("transcript-room")).to_have_text(room["id"])
        assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Welcome to the museum."})
                ).status_code == 200
        assert (await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": QUESTION})).status_code == 200
        texts = page.get_by_test_id("transcript-text")
        await expect(texts).to_have_text(["Welcome to the museum.", QUESTION, answer_for(QUESTION, QA)])
        await expect(page.get_by_test_id("transcript-entry")).to_have_count(3)

        bars = page.get_by_test_id("usage-bar")
        await expect(bars).to_have_count(30)
        today = page.locator("[data-testid=usage-bar][data-coins-charged='10']")
        await expect(today).to_have_count(1)  # today's 600-second room: 10 coins charged
        assert float(await today.get_attribute("height")) > 100  # the tallest bar of the chart
        await expect(page.get_by_test_id("delivery-row").first).to_be_visible()
        await expect(page.get_by_test_id("deliveries")).to_contain_text("room.opened")

        second = await create_room(bridge, headers=GLOBEX)
        await expect(rows).to_have_count(2)  # every tenant's rooms for the operator
        assert (await bridge.http.delete(f"/v1/rooms/{second['id']}", headers=GLOBEX)).status_code == 200
        await expect(rows).to_have_count(1)
        mine = (await bridge.http.get("/v1/operator/rooms", headers=GLOBEX)).json()
        assert mine["rooms"] == [] and mine["operator"] is False  # a tenant sees its own rooms only

        assert await page.evaluate("window.__violations") == []
        assert page.errors == []
    finally:
        await receiver.stop()
