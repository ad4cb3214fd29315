"""``/docs`` in a real headless Chromium: Swagger UI from the package's files renders the bridge's
own /openapi.json under the page's Content-Security-Policy (no CDN, no inline script, no violation)."""

from __future__ import annotations

from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")
expect = playwright_api.expect

WATCH_VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  { directive: e.effectiveDirective, blocked: e.blockedURI }));"""


async def test_docs_render_offline_under_the_csp(bridge: Any, open_page: Any) -> None:
    outside: list[str] = []

    async def setup(page: Any) -> None:
        await page.add_init_script(WATCH_VIOLATIONS)
        page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(bridge.url) else None)

    page = await open_page(bridge, "/docs", setup=setup)
    await expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    assert await page.locator(".opblock").count() >= 60  # every operation, the pass-through's included
    await expect(page.locator(".info .title")).to_contain_text("a2e-bridge")
    await page.locator(".opblock-summary-path", has_text="/v1/rooms/{room_id}/speak").first.click()
    await expect(page.locator(".opblock-body").first).to_contain_text("room_id")
    assert await page.evaluate("window.__violations") == []
    assert page.errors == [] and outside == []  # nothing fetched from anywhere but the bridge
