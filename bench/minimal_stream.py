"""The least a stream→A2E relay can do, as the floor of ``bench/stream_latency.py``.

websockets in, the bridge's segmenter (``bridge.rooms.text.Segmenter``: the same sentence cut), httpx
out to A2E's (the simulator's) speak endpoint; no queue, no acks, no checks, no events. A client
connects to ``ws://HOST:PORT/?channel=CH`` and sends ``{"type": "delta", "text": ...}`` (each
complete sentence is spoken at once) or ``{"type": "ask", "text": ...}`` (the question goes to an
OpenAI-compatible server with the ``openai`` package, streaming, and its answer is spoken sentence by
sentence, like a room's ``openai`` brain).

    python bench/minimal_stream.py --port 8301 --a2e-url http://127.0.0.1:8100 --llm-url http://127.0.0.1:8200/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from openai import AsyncOpenAI
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bridge.rooms.text import Segmenter  # noqa: E402

SPEAK_PATH = "/api/v1/streaming-avatar/speak"


async def main(host: str, port: int, a2e_url: str, key: str, llm_url: str) -> None:
    async with httpx.AsyncClient(base_url=a2e_url, headers={"Authorization": f"Bearer {key}"}, timeout=15) as http, \
            AsyncOpenAI(base_url=llm_url, api_key="bench", max_retries=0) as llm:

        async def say(channel: str, segmenter: Segmenter, text: str, final: bool = False) -> None:
            pieces, rest = segmenter.cut(text, final=final)
            segmenter.commit(pieces, rest)
            for piece in pieces:
                await http.post(SPEAK_PATH, json={"channel": channel, "text": piece})

        async def relay(ws: ServerConnection) -> None:
            channel = parse_qs(urlsplit(ws.request.path).query)["channel"][0]
            segmenter = Segmenter()
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "delta":
                    await say(channel, segmenter, frame["text"])
                    continue
                answer = Segmenter()
                stream = await llm.chat.completions.create(model="bench", stream=True,
                                                           messages=[{"role": "user", "content": frame["text"]}])
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        await say(channel, answer, chunk.choices[0].delta.content)
                await say(channel, answer, "", final=True)

        async with serve(relay, host, port, max_size=2**20) as server:
            print(f"minimal stream relay on ws://{host}:{port}", flush=True)
            await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8301)
    parser.add_argument("--a2e-url", required=True)
    parser.add_argument("--key", default="bench-a2e-key")
    parser.add_argument("--llm-url", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.a2e_url, args.key, args.llm_url))
