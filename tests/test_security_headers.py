"""The security headers and the kiosk page's SDK settings, on a real bridge over loopback (httpx).

The browser side (the policy actually enforced, the query string ignored) is in
tests/browser/test_kiosk_security.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect

from bridge.settings import DEFAULT_AGORA_CONNECT_SRC, DEFAULT_AGORA_SDK_URL, Settings

SDK = "https://sdk.agora.test/sdk/release/AgoraRTC_N-4.22.2.js"
INTEGRITY = "sha384-" + base64.b64encode(hashlib.sha384(b"window.AgoraRTC = {};").digest()).decode()


def policy(response: Any) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]} (each directive once)."""
    header = response.headers.get("content-security-policy")
    assert header, f"no CSP on {response.request.url}"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, header
        directives[name] = sources
    return directives


def assert_strict(response: Any, *, sdk: str | None = DEFAULT_AGORA_SDK_URL) -> dict[str, list[str]]:
    csp = policy(response)
    host = response.request.url.netloc.decode()
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == (["'self'", sdk] if sdk else ["'self'"])
    agora = DEFAULT_AGORA_CONNECT_SRC.split() if sdk else []
    assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}", *agora]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert csp["media-src"] == ["'self'", "blob:"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["worker-src"] == (["'self'", "blob:"] if sdk else ["'self'"])
    every_source = [s for sources in csp.values() for s in sources]
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(csp["script-src"] + csp["default-src"])
    assert "'unsafe-inline'" not in every_source and "'unsafe-eval'" not in every_source
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    return csp


async def test_every_response_carries_the_policy(bridge: Any) -> None:
    for path in ("/", "/?agora_sdk=data:text/javascript,alert(1)", "/static/index.html", "/static/kiosk.js",
                 "/static/kiosk.css", "/static/bridge.mjs", "/healthz", "/v1/avatars", "/openapi.json", "/metrics",
                 "/no-such-page", "/_a2e/_sim/state"):
        response = await bridge.http.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        assert_strict(response)
    response = await bridge.http.post("/v1/rooms", content=b"not json")  # an error answer too
    assert response.status_code == 400
    assert_strict(response)


async def test_the_page_names_the_configured_sdk_and_ignores_the_query(bridge_factory: Any) -> None:
    bridge = await bridge_factory(agora_sdk_url=SDK, agora_sdk_integrity=INTEGRITY)
    page = await bridge.http.get("/")
    assert page.headers["content-type"].startswith("text/html") and page.headers["cache-control"] == "no-cache"
    assert f'<html lang="en" data-agora-sdk="{SDK}" data-agora-sdk-integrity="{INTEGRITY}">' in page.text
    assert "<script>" not in page.text and " style=" not in page.text and " on" + "click=" not in page.text
    assert_strict(page, sdk=SDK)
    hostile = await bridge.http.get("/", params={"agora_sdk": "http://127.0.0.1:1/evil.js"})
    assert hostile.text == page.text and "evil" not in hostile.headers["content-security-policy"]

    # the default: the pinned SDK on Agora's CDN, no integrity hash
    default = await (await bridge_factory()).http.get("/")
    assert f'data-agora-sdk="{html.escape(DEFAULT_AGORA_SDK_URL)}" data-agora-sdk-integrity=""' in default.text


async def test_video_off_drops_agora_from_the_policy(bridge_factory: Any) -> None:
    bridge = await bridge_factory(agora_sdk_url="")
    page = await bridge.http.get("/")
    assert 'data-agora-sdk="" data-agora-sdk-integrity=""' in page.text
    csp = assert_strict(page, sdk=None)
    assert not any("agora" in s or "sd-rtn" in s for s in csp["connect-src"])


async def test_a_forged_host_header_cannot_add_directives(bridge: Any) -> None:
    response = await bridge.http.get("/", headers={"Host": "evil.test; script-src *"})
    csp = response.headers["content-security-policy"]
    assert "evil" not in csp and "script-src *" not in csp
    assert policy(response)["connect-src"][:2] == ["'self'", DEFAULT_AGORA_CONNECT_SRC.split()[0]]


async def test_streams_and_websockets_are_untouched(bridge: Any) -> None:
    room = (await bridge.http.post("/v1/rooms", json={})).json()
    async with bridge.http.stream("GET", f"/v1/rooms/{room['id']}/events") as events:
        assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
        assert "content-security-policy" in events.headers
        lines = events.aiter_lines()
        speak = asyncio.create_task(bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Hello."}))
        async with asyncio.timeout(10):
            async for line in lines:  # events arrive while the response is still open
                if line.startswith("data:") and json.loads(line[5:])["type"] == "command":
                    break
        assert (await speak).status_code == 200
    async with asyncio.timeout(10), connect(room["ws_url"]) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "room" and first["room"]["id"] == room["id"]
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        assert json.loads(await ws.recv()) == {"type": "pong", "id": "p"}
    await bridge.http.delete(f"/v1/rooms/{room['id']}")


@pytest.mark.parametrize("url", [
    "http://download.agora.io/sdk/release/AgoraRTC_N-4.22.2.js",  # not https
    "data:text/javascript,window.pwned=1",
    "javascript:alert(1)",
    "//download.agora.io/AgoraRTC_N.js",
    "https:///AgoraRTC_N.js",
    "https://user:pw@cdn.test/AgoraRTC_N.js",
    "https://cdn.test/a.js; script-src *",
    "https://cdn.test/a.js' 'unsafe-inline",
    'https://cdn.test/a.js"><script>alert(1)</script>',
    "https://cdn.test/a b.js",
    "https://cdn.test/a.js#x",
])
def test_only_a_plain_https_sdk_url_is_accepted(url: str) -> None:
    with pytest.raises(ValidationError, match="BRIDGE_AGORA_SDK_URL"):
        Settings(_env_file=None, agora_sdk_url=url)


def test_sdk_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BRIDGE_AGORA_SDK_URL", "BRIDGE_AGORA_SDK_INTEGRITY", "BRIDGE_AGORA_CONNECT_SRC"):
        monkeypatch.delenv(name, raising=False)
    default = Settings(_env_file=None)
    assert default.agora_sdk_url.startswith("https://download.agora.io/sdk/release/AgoraRTC_N-4.")
    assert default.agora_sdk_integrity is None and default.agora_connect_src == DEFAULT_AGORA_CONNECT_SRC.split()
    monkeypatch.setenv("BRIDGE_AGORA_SDK_URL", SDK)
    monkeypatch.setenv("BRIDGE_AGORA_SDK_INTEGRITY", f" {INTEGRITY} ")
    monkeypatch.setenv("BRIDGE_AGORA_CONNECT_SRC", "https://*.agora.io:*, wss://*.agora.io:* https:")
    s = Settings(_env_file=None)
    assert (s.agora_sdk_url, s.agora_sdk_integrity) == (SDK, INTEGRITY)
    assert s.agora_connect_src == ["https://*.agora.io:*", "wss://*.agora.io:*", "https:"]
    assert Settings(_env_file=None, agora_sdk_integrity="").agora_sdk_integrity is None


@pytest.mark.parametrize("integrity", ["md5-abc", "sha384", "sha384-abc def", "sha384-ab\"c", "sha384-abc; x"])
def test_a_malformed_integrity_hash_is_refused(integrity: str) -> None:
    with pytest.raises(ValidationError, match="BRIDGE_AGORA_SDK_INTEGRITY"):
        Settings(_env_file=None, agora_sdk_integrity=integrity)


@pytest.mark.parametrize("sources", ["'unsafe-inline'", "'self'", "https://x.test;script-src",
                                     "https://x.test/'a", "*.agora.io:port"])
def test_connect_sources_are_checked(sources: str) -> None:
    with pytest.raises(ValidationError, match="BRIDGE_AGORA_CONNECT_SRC"):
        Settings(_env_file=None, agora_connect_src=sources)
