"""``HttpOnly``: an HTTP middleware that websockets (and lifespan) pass by, holding nothing of it."""

from __future__ import annotations

from typing import Any

from bridge.http.scopes import HttpOnly


async def test_only_http_goes_through_the_middleware() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"app {scope['type']}")

    class Recorder:
        def __init__(self, inner: Any, *, label: str) -> None:
            self.inner, self.label = inner, label

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append(f"{self.label} {scope['type']}")
            await self.inner(scope, receive, send)

    wrapped = HttpOnly(app, Recorder, label="cors")
    for kind in ("http", "websocket", "lifespan"):
        await wrapped({"type": kind}, None, None)
    assert seen == ["cors http", "app http", "app websocket", "app lifespan"]
