"""The least a websocket→A2E relay can do, as the benchmark's baseline.

websockets server in, httpx out to A2E's (the simulator's) speak endpoint: no queue, no checks. A
client connects to ``ws://HOST:PORT/?channel=CH`` and sends ``{"type": "speak", "id": ..., "text":
...}``; once A2E answered, it gets ``{"type": "ack", "id": ...}``.

Clients that connect with ``&listen=1`` are the channel's audience: they get ``{"type": "joined"}``
at once, then every accepted speak as ``{"type": "command", "kind": "speak", "seq": n, "text": ...}``,
sent with ``websockets.broadcast`` right after the sender's ack (the floor of a fan-out). Without
listeners nothing is broadcast, so the speak→ack floor of ``relay_latency.py`` is unchanged.

    python bench/minimal_relay.py --port 8300 --speak-url http://127.0.0.1:8100/api/v1/streaming-avatar/speak

``--http-pool bridge`` sends to A2E through the bridge's own connection layer
(``bridge.a2e.pool.pooled_client``: asyncio transports under httpx and httpcore) instead of httpx's
default (anyio streams): the floor of a relay with the bridge's HTTP layer.

``--server starlette`` serves the same relay (the speak path only) as a bare Starlette websocket route
under the bridge's own uvicorn configuration (``bridge.serving.server_config``): the floor of the
stack the bridge is required to run on, beside the websockets library's own server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections import defaultdict
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.asyncio.server import ServerConnection, broadcast, serve


def http_client(key: str, pool: str) -> httpx.AsyncClient:
    """httpx's default client, or one on the bridge's connection layer (``--http-pool bridge``)."""
    if pool == "httpx":
        return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=15)
    from bridge.a2e.pool import pooled_client

    http = pooled_client(timeout=httpx.Timeout(15), limits=httpx.Limits())
    http.headers["Authorization"] = f"Bearer {key}"
    return http


async def main(host: str, port: int, speak_url: str, key: str, compression: Literal["deflate"] | None,
               pool: str = "httpx") -> None:
    audience: defaultdict[str, set[ServerConnection]] = defaultdict(set)
    seqs: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
    async with http_client(key, pool) as http:

        async def relay(ws: ServerConnection) -> None:
            query = parse_qs(urlsplit(ws.request.path).query)
            channel = query["channel"][0]
            if query.get("listen"):
                audience[channel].add(ws)
                try:
                    await ws.send('{"type":"joined"}')
                    await ws.wait_closed()
                finally:
                    audience[channel].discard(ws)
                return
            async for raw in ws:
                frame = json.loads(raw)
                response = await http.post(speak_url, json={"channel": channel, "text": frame["text"]})
                ok = response.status_code == 200 and response.json().get("code") == 0
                await ws.send(json.dumps({"type": "ack" if ok else "error", "id": frame.get("id")}))
                if ok and audience[channel]:
                    broadcast(audience[channel], json.dumps({"type": "command", "kind": "speak",
                                                             "seq": next(seqs[channel]), "text": frame["text"]}))

        async with serve(relay, host, port, max_size=2**20, compression=compression) as server:
            print(f"minimal relay on ws://{host}:{port}", flush=True)
            await server.serve_forever()


def starlette_relay(host: str, port: int, speak_url: str, key: str) -> None:
    """The speak relay as one Starlette websocket route, served as ``a2e-bridge serve`` serves the bridge."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from bridge.serving import server_config
    from bridge.settings import Settings

    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=15)

    async def relay(ws: WebSocket) -> None:
        channel = ws.query_params["channel"]
        await ws.accept()
        try:
            while True:
                frame = json.loads(await ws.receive_text())
                response = await http.post(speak_url, json={"channel": channel, "text": frame["text"]})
                ok = response.status_code == 200 and response.json().get("code") == 0
                await ws.send_text(json.dumps({"type": "ack" if ok else "error", "id": frame.get("id")}))
        except WebSocketDisconnect:
            pass

    app = Starlette(routes=[WebSocketRoute("/", relay)])
    print(f"minimal Starlette relay on ws://{host}:{port}", flush=True)
    uvicorn.Server(server_config(app, Settings(), host=host, port=port)).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--speak-url", required=True)
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                        help="permessage-deflate offered to clients (match the bridge's server config)")
    parser.add_argument("--server", choices=["websockets", "starlette"], default="websockets",
                        help="the websockets library's server, or a bare Starlette route on uvicorn")
    parser.add_argument("--http-pool", choices=["httpx", "bridge"], default="httpx",
                        help="httpx's default connections, or the bridge's (bridge.a2e.pool); websockets server only")
    args = parser.parse_args()
    if args.server == "starlette":
        starlette_relay(args.host, args.port, args.speak_url, args.key)
        sys.exit(0)
    asyncio.run(main(args.host, args.port, args.speak_url, args.key,
                     "deflate" if args.compression == "deflate" else None, args.http_pool))
