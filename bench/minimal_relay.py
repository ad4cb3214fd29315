"""The least a websocket→A2E relay can do, as the benchmark's baseline.

websockets server in, httpx out to A2E's (the simulator's) speak endpoint: no queue, no checks, no
fan-out. A client connects to ``ws://HOST:PORT/?channel=CH`` and sends ``{"type": "speak", "id":
..., "text": ...}``; once A2E answered, it gets ``{"type": "ack", "id": ...}``.

    python bench/minimal_relay.py --port 8300 --speak-url http://127.0.0.1:8100/api/v1/streaming-avatar/speak
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.asyncio.server import ServerConnection, serve


async def main(host: str, port: int, speak_url: str, key: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=15) as http:

        async def relay(ws: ServerConnection) -> None:
            channel = parse_qs(urlsplit(ws.request.path).query)["channel"][0]
            async for raw in ws:
                frame = json.loads(raw)
                response = await http.post(speak_url, json={"channel": channel, "text": frame["text"]})
                ok = response.status_code == 200 and response.json().get("code") == 0
                await ws.send(json.dumps({"type": "ack" if ok else "error", "id": frame.get("id")}))

        async with serve(relay, host, port, max_size=2**20) as server:
            print(f"minimal relay on ws://{host}:{port}", flush=True)
            await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--speak-url", required=True)
    parser.add_argument("--key", default="bench-key")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.speak_url, args.key))
