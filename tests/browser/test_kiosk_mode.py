"""Kiosk mode (``/kiosk``) in a real headless Chromium, against a bridge on the simulator.

A profile with short idle settings drives the page through attract → engage → ask → captions →
"are you still there?" → release → attract; the simulator's books show what the page opened and
left. The Agora CDN is blocked: the page shows its animated stand-in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.simulator.feed import answer_for
from bridge.simulator.state import AVATARS
from tests.helpers import add_fault, poll

playwright_api = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=15_000)

QA = ("The museum opens at 9am every day except Monday. Tickets cost 12 euros and children enter for free. "
      "The cafe on the top floor serves lunch until 3pm.")
QUESTION = "When does the museum open?"
SECOND = "How much do tickets cost?"
AVATAR = AVATARS[1]["_id"]

# Stands in for the Web Speech API: the test says what the visitor said (``__say``) to whichever
# recognition is listening.
FAKE_SPEECH = (Path(__file__).parent / "fake_speech.js").read_text()


def profile(**overrides: Any) -> dict[str, Any]:
    return {"avatar_id": AVATAR, "qa_context": QA, "idle_seconds": 2, "prompt_seconds": 1, **overrides}


async def kiosk_bridge(bridge_factory: Callable[..., Any], **profile_overrides: Any) -> Any:
    return await bridge_factory(kiosk_profiles={"lobby": profile(**profile_overrides)})


def sim_rooms(bridge: Any) -> list[dict[str, Any]]:
    return list(bridge.sim.state.snapshot()["rooms"])


def mints(bridge: Any) -> int:
    return int(bridge.sim.state.counters.get("agora_token", 0))


async def state_is(page: Any, state: str, timeout: float = 15_000) -> None:
    await expect(page.locator("html")).to_have_attribute("data-state", state, timeout=timeout)


async def events(page: Any) -> list[str]:
    return list(await page.evaluate("kiosk.events.map((e) => e.type)"))


async def room_id(page: Any) -> str:
    await expect(page.locator("html")).not_to_have_attribute("data-room", "")
    return str(await page.get_attribute("html", "data-room"))


async def answered(page: Any, question: str) -> None:
    await expect(page.get_by_test_id("caption")).to_have_text(answer_for(question, QA))


async def watch_csp(page: Any) -> None:
    await page.add_init_script("""window.__violations = [];
      document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.effectiveDirective));""")


async def test_attract_engage_by_typing_ask_captions_release(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory)
    page = await open_page(bridge, "/kiosk?profile=lobby", setup=watch_csp)
    await state_is(page, "attract")
    await expect(page.get_by_test_id("attract")).to_be_visible()
    await expect(page.get_by_test_id("cost")).to_contain_text("No room open while waiting")
    assert mints(bridge) == 0 and not bridge.rooms.registry.live  # nobody there: nothing spent
    coins = bridge.sim.state.coins

    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-text").press("Enter")
    await state_is(page, "engaged")
    await expect(page.get_by_test_id("heard")).to_have_text(QUESTION)
    await answered(page, QUESTION)
    rid = await room_id(page)
    live = bridge.rooms.registry.live[rid]
    assert live.room.avatar_id == AVATAR and live.room.qa_context == QA
    await expect(page.get_by_test_id("standin")).to_be_visible()  # no video: the stand-in speaks
    await page.wait_for_function("() => kiosk.events.some((e) => e.type === 'speaking' && e.on === false)")

    # quiet: "are you still there?" (seen on screen in test_still_there_keeps_the_visitor), then the
    # room is left and the attract screen is back
    await state_is(page, "attract")
    await expect(page.get_by_test_id("caption")).to_be_hidden()
    assert (await bridge.http.get(f"/v1/rooms/{rid}")).json()["close_reason"] == "client"
    (room,) = sim_rooms(bridge)
    assert room["status"] == "left" and room["refunded"] > 0
    assert bridge.sim.state.coins == coins - room["charged"] + room["refunded"]
    assert (await events(page))[-2:] == ["prompt", "released"]
    assert await page.evaluate("window.__violations") == []  # no inline script or style anywhere
    assert page.errors == []


async def test_with_client_keys_the_page_asks_for_one_and_the_websocket_uses_tickets(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    key = "kiosk-mode-key-31c7"
    bridge = await bridge_factory(api_keys={key: "acme"}, headers={"Authorization": f"Bearer {key}"},
                                  kiosk_profiles={"lobby": profile(tenant="acme", idle_seconds=30)})
    page = await open_page(bridge, "/kiosk?profile=lobby")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await expect(page.get_by_test_id("auth-panel")).to_be_visible()
    assert (await page.get_attribute("html", "data-state")) == "error"  # nothing opens without a key
    await page.get_by_test_id("api-key").fill(key)
    await page.get_by_test_id("api-key-save").click()
    await state_is(page, "attract")
    await expect(page.get_by_test_id("auth-panel")).to_be_hidden()
    assert page.url.endswith("/kiosk?profile=lobby")
    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-send").click()
    await answered(page, QUESTION)
    rid = await room_id(page)
    assert bridge.rooms.registry.live[rid].room.tenant == "acme"
    assert len(sockets) == 1 and "ticket=" in sockets[0] and key not in sockets[0]
    assert page.errors == []


async def test_still_there_keeps_the_visitor(bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=1, prompt_seconds=4)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("attract").click(force=True)  # a touch engages and opens the room
    await state_is(page, "engaged")
    rid = await room_id(page)
    await state_is(page, "prompt")
    await page.get_by_test_id("prompt-yes").click()
    await state_is(page, "engaged")
    await page.get_by_test_id("ask-text").fill(SECOND)
    await page.get_by_test_id("ask-text").press("Enter")  # a key is activity too, even under the prompt
    await answered(page, SECOND)
    assert await room_id(page) == rid and mints(bridge) == 1
    assert page.errors == []


async def test_engage_by_voice_and_push_to_talk(bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=30)

    async def setup(page: Any) -> None:
        await page.add_init_script(FAKE_SPEECH)

    page = await open_page(bridge, "/kiosk?profile=lobby", setup=setup)
    await state_is(page, "attract")
    await expect(page.get_by_test_id("ptt")).to_be_visible()
    await page.wait_for_function("() => window.__listening().includes('wake')")  # listening for a visitor
    assert await page.evaluate("window.__recognitions[0].lang") == "en-US"

    # what a visitor says to the attract screen is shown (interim, then final) and asked
    assert await page.evaluate("window.__say('When does', false)")
    await state_is(page, "engaged")
    await expect(page.get_by_test_id("heard")).to_have_attribute("data-state", "interim")
    await page.evaluate("(text) => window.__say(text)", QUESTION)
    await expect(page.get_by_test_id("heard")).to_have_text(QUESTION)
    await answered(page, QUESTION)
    assert await page.evaluate("window.__listening()") == []  # no wake listening while engaged

    # push-to-talk: hold, speak, let go
    ptt = page.get_by_test_id("ptt")
    box = await ptt.bounding_box()
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await expect(ptt).to_have_attribute("data-listening", "true")
    await page.wait_for_function("() => window.__listening().includes('ptt')")
    await page.evaluate("(text) => window.__say(text, false)", SECOND)
    await page.mouse.up()  # released before a final result: what was heard is asked
    await expect(page.get_by_test_id("heard")).to_have_attribute("data-state", "final")
    await answered(page, SECOND)
    asked = await page.evaluate("kiosk.events.filter((e) => e.type === 'asked').map((e) => [e.text, e.via])")
    assert asked == [[QUESTION, "voice"], [SECOND, "voice"]]
    assert mints(bridge) == 1
    assert page.errors == []


async def test_reload_rejoins_the_same_room(bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=30)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-send").click()
    await answered(page, QUESTION)
    rid = await room_id(page)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url.removeprefix(bridge.url)) if r.method == "POST" else None)

    await page.reload()
    await state_is(page, "engaged")
    assert await room_id(page) == rid
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-status", "open")
    assert "rejoined" in await events(page)
    assert posted == []  # the stored ticket was fresh: straight to the websocket, nothing minted
    await page.get_by_test_id("ask-text").fill(SECOND)
    await page.get_by_test_id("ask-send").click()
    await answered(page, SECOND)
    assert mints(bridge) == 1 and list(bridge.rooms.registry.live) == [rid]  # same room, no new mint
    assert bridge.rooms.registry.live[rid].clients == 1  # the old page's socket is gone
    assert page.errors == []


async def test_a_reload_after_the_ticket_expired_asks_for_a_fresh_one(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await bridge_factory(kiosk_profiles={"lobby": profile(idle_seconds=30)}, ticket_ttl=5)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("attract").click(force=True)
    rid = await room_id(page)
    # a stored ticket too close to its end (5 s, within the page's 10 s margin) is not tried
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url.removeprefix(bridge.url)) if r.method == "POST" else None)
    await page.reload()
    assert await room_id(page) == rid
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-status", "open")
    assert posted == [f"/v1/rooms/{rid}/tickets"] and mints(bridge) == 1

    # a room that ended while the page was away: back to attract, nothing minted until a visitor comes
    await page.goto("/healthz")  # the tab's storage stays
    await bridge.http.delete(f"/v1/rooms/{rid}")
    await page.goto("/kiosk?profile=lobby")
    await state_is(page, "attract")
    assert "rejoin_failed" in await events(page) and mints(bridge) == 1
    assert page.errors == []


async def test_a_killed_websocket_reconnects(bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=30)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("attract").click(force=True)
    rid = await room_id(page)
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-status", "open")
    statuses: list[str] = []
    await page.expose_function("noteStatus", lambda status: statuses.append(status))
    await page.evaluate("""() => new MutationObserver(() => noteStatus(document.getElementById('conn').dataset.status))
      .observe(document.getElementById('conn'), { attributes: true })""")
    await page.evaluate("kiosk.room._ws.close(4999, 'test drop')")
    await poll(lambda: "reconnecting" in statuses, what="the page noticing the drop")
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-status", "open")
    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-send").click()
    await answered(page, QUESTION)
    assert await room_id(page) == rid and mints(bridge) == 1
    assert bridge.rooms.registry.live[rid].clients == 1
    assert page.errors == []


async def test_a_room_closed_under_the_page_is_replaced_on_the_next_touch(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=30)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("attract").click(force=True)
    first = await room_id(page)
    assert (await bridge.http.delete(f"/v1/rooms/{first}")).json()["state"] == "closed"
    await expect(page.locator("html")).to_have_attribute("data-room", "")
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-status", "closed")
    await state_is(page, "engaged")  # the visitor is still there; no room until they touch again
    assert mints(bridge) == 1

    await page.get_by_test_id("stage").click()
    second = await room_id(page)
    assert second != first and mints(bridge) == 2
    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-send").click()
    await answered(page, QUESTION)
    opened = await page.evaluate("kiosk.events.filter((e) => e.type === 'room_opened').map((e) => e.replaced)")
    assert opened == [False, True]
    assert page.errors == []


async def test_the_watchdog_fires_when_commands_are_swallowed(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    bridge = await kiosk_bridge(bridge_factory, idle_seconds=30, watchdog_seconds=1)
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-send").click()
    await answered(page, QUESTION)  # a healthy avatar: no report
    rid = await room_id(page)

    metric = 'a2e_bridge_kiosk_watchdog_total{kind="ask"}'

    async def reported() -> float:
        text = (await bridge.http.get("/metrics")).text
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(metric)), 0.0)

    before = await reported()
    add_fault(bridge.sim, endpoint="ask", kind="swallow")  # A2E answers OK and the avatar stays silent
    caplog.set_level(logging.WARNING, logger="bridge.kiosk")
    await page.get_by_test_id("ask-text").fill(SECOND)
    await page.get_by_test_id("ask-send").click()
    await expect(page.get_by_test_id("notice")).to_have_attribute("data-kind", "watchdog")
    await expect(page.get_by_test_id("notice")).to_contain_text("not answering")
    report = await page.evaluate("kiosk.events.find((e) => e.type === 'watchdog')")
    assert report["kind"] == "ask" and report["waitedSeconds"] >= 1
    assert await page.evaluate("kiosk.counts.watchdog") == 1

    assert await reported() == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.kiosk"]
    assert any(rid in line and "ask accepted" in line for line in lines), lines
    assert page.errors == []


async def test_warm_start_takes_a_waiting_room_and_shows_its_cost(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    bridge = await kiosk_bridge(bridge_factory, warm_rooms=2)
    pool = bridge.rooms.warm
    await poll(lambda: len(pool.waiting["lobby"]) == 2, what="two warm rooms")
    waiting = {lr.room.id for lr in pool.waiting["lobby"]}
    page = await open_page(bridge, "/kiosk?profile=lobby")
    await state_is(page, "attract")
    await expect(page.get_by_test_id("cost")).to_have_text(
        "Warm start: 2 rooms kept open · ≈ 120 coins/hour while waiting · ≈ 60 coins/hour per visitor")

    await page.get_by_test_id("ask-text").fill(QUESTION)
    await page.get_by_test_id("ask-text").press("Enter")
    await answered(page, QUESTION)
    rid = await room_id(page)
    assert rid in waiting  # no wait for a mint: a room that was already open
    assert await page.evaluate("kiosk.events.find((e) => e.type === 'room_opened').warm") is True
    await poll(lambda: len(pool.waiting["lobby"]) == 2, what="the pool refilled")

    await state_is(page, "attract")  # released on idle: the visitor's room is left, the warm ones wait
    channel = (await bridge.http.get(f"/v1/rooms/{rid}")).json()["channel"]
    assert bridge.sim.state.rooms[channel].status == "left"
    assert len(pool.waiting["lobby"]) == 2 and bridge.sim.state.snapshot()["open_rooms"] == 2
    assert page.errors == []


SDK = "https://sdk.agora.test/sdk/release/AgoraRTC_N-4.22.2.js"
# A stand-in for the Agora Web SDK: records the join and lets the test play the channel's side.
FAKE_SDK = b"""window.AgoraRTC = { createClient() {
  const handlers = {};
  const rtc = { handlers, remoteUsers: [], on(name, fn) { handlers[name] = fn; },
    async subscribe() {}, async join(...args) { window.__joined = args; return 1; },
    async leave() { window.__left = (window.__left || 0) + 1; } };
  window.__rtc = rtc;
  return rtc;
} };
"""
CHANNEL_PLAYS = """async ([text]) => {
  const h = window.__rtc.handlers, avatar = { uid: 77, videoTrack: { play(box) { window.__playedIn = box.id; } },
    audioTrack: { play() {} } };
  await h["user-published"](avatar, "video");
  await h["user-published"](avatar, "audio");
  const enc = new TextEncoder();
  h["stream-message"](77, enc.encode(JSON.stringify({ type: "QA", message: text, pos: "start" })));
  h["stream-message"](77, enc.encode(JSON.stringify({ type: "QA", message: "", pos: "end" })));
  h["user-unpublished"](avatar, "audio");
}"""


async def test_with_the_agora_sdk_the_page_plays_the_video_and_forwards_the_channel(
        bridge_factory: Callable[..., Any], open_page: Callable[..., Any]) -> None:
    """BRIDGE_EVENT_SOURCE=browser: the captions come from what the page's SDK receives and forwards."""
    bridge = await bridge_factory(kiosk_profiles={"lobby": profile(idle_seconds=30)}, agora_sdk_url=SDK,
                                  event_source="browser")

    async def setup(page: Any) -> None:
        await page.route("https://sdk.agora.test/**", lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=FAKE_SDK))

    page = await open_page(bridge, "/kiosk?profile=lobby", setup=setup)
    await state_is(page, "attract")
    await page.get_by_test_id("attract").click(force=True)
    rid = await room_id(page)
    await expect(page.locator("html")).to_have_attribute("data-video", "joining")
    room = bridge.rooms.registry.live[rid].room
    assert (await page.evaluate("window.__joined"))[:2] == [room.app_id, room.channel]

    await page.evaluate(CHANNEL_PLAYS, ["Forwarded by the kiosk."])
    await expect(page.locator("html")).to_have_attribute("data-video", "playing")
    await expect(page.get_by_test_id("standin")).to_be_hidden()  # the video is there: no stand-in
    await expect(page.get_by_test_id("caption")).to_have_text("Forwarded by the kiosk.")
    await page.wait_for_function("() => kiosk.events.some((e) => e.type === 'speaking' && e.on === false)")
    assert await page.evaluate("window.__playedIn") == "video"
    replies = [e for e in bridge.rooms.registry.live[rid].events.history if e.type == "reply"]
    assert replies and all('"source":"browser"' in e.data for e in replies)
    assert page.errors == []
