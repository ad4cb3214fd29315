"""Servers the benchmarks start as child processes: the bridge with a chosen websocket implementation,
and the floors (a bare Starlette websocket route, websockets alone).

    python bench/servers.py bridge    --port P [--ws websockets-sansio] [--deflate on|off]
    python bench/servers.py starlette --port P [--ws websockets-sansio] [--deflate on|off]
    python bench/servers.py websockets --port P [--deflate on|off]

``bridge`` is ``a2e-bridge serve`` (settings from the environment, the one uvicorn configuration of
:func:`bridge.serving.server_config`), with only the websocket implementation and permessage-deflate
overridden when asked, so that they can be compared. ``starlette`` serves a bare Starlette app with
one websocket route under *the same* uvicorn configuration; ``websockets`` is the websockets
library's own asyncio server with the same frame size limit, ping interval and compression. Both
floors accept any path, send one frame of ``--frame-bytes`` (the size of the bridge's ``room``
frame) and then only wait for the client to leave, as an idle bridge client does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import uvicorn


def frame_text(size: int) -> str:
    head = '{"type":"room","room":{"pad":"'
    return head + "x" * max(0, size - len(head) - 3) + '"}}'


def bridge(args: argparse.Namespace) -> None:
    from bridge.app import create_app
    from bridge.serving import server_config
    from bridge.settings import Settings

    settings = Settings()
    config = server_config(create_app(settings), settings, host=args.host, port=args.port)
    serve_uvicorn(config, args)


def starlette(args: argparse.Namespace) -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from bridge.serving import server_config
    from bridge.settings import Settings

    text = frame_text(args.frame_bytes)

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(text)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass

    app = Starlette(routes=[WebSocketRoute("/{path:path}", endpoint)])
    settings = Settings()
    serve_uvicorn(server_config(app, settings, host=args.host, port=args.port), args)


def serve_uvicorn(config: Any, args: argparse.Namespace) -> None:
    from bridge.serving import install_descriptor_exhaustion_filter

    if args.ws:
        config.ws = args.ws
    if args.deflate:
        config.ws_per_message_deflate = args.deflate == "on"
    install_descriptor_exhaustion_filter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(config).run()


def websockets_alone(args: argparse.Namespace) -> None:
    from benchlib import bridge_deflate
    from websockets.asyncio.server import ServerConnection, serve

    from bridge.serving import raise_descriptor_limit
    from bridge.settings import Settings

    settings = Settings()
    text = frame_text(args.frame_bytes)
    raise_descriptor_limit()
    deflate = args.deflate == "on" if args.deflate else bridge_deflate()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(text)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, args.host, args.port, max_size=max(settings.ws_max_frame_bytes * 4, 1 << 20),
                         ping_interval=settings.ws_ping_interval, ping_timeout=settings.ws_ping_interval,
                         compression="deflate" if deflate else None) as server:
            await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["bridge", "starlette", "websockets"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", help="uvicorn websocket implementation (default: the bridge's server config)")
    parser.add_argument("--deflate", choices=["on", "off"], help="permessage-deflate (default: the bridge's)")
    parser.add_argument("--frame-bytes", type=int, default=700, help="size of the floors' first frame")
    args = parser.parse_args()
    {"bridge": bridge, "starlette": starlette, "websockets": websockets_alone}[args.kind](args)


if __name__ == "__main__":
    main()
