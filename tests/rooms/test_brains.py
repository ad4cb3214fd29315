"""Rooms whose ``ask`` goes to an ``openai`` brain: a local OpenAI-compatible streaming server
(``tests/fakes/llm.py``) answers, the bridge speaks the answer sentence by sentence, and every
client (websockets and SSE) gets ``reply`` and ``utterance`` events; failures are clear events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from bridge.app import create_app
from bridge.settings import ConfigurationError
from tests.fakes.llm import FakeLLM, Script
from tests.helpers import (
    ACME,
    KEYS,
    assert_error,
    bridge_settings,
    create_room,
    of_type,
    open_ws,
    poll,
    recv,
    seen_or_until,
    send,
    until,
    wait_observed,
)

KEY = "sk-test-0123456789abcdef"  # the LLM key: it must never reach a client
CONTEXT = "We open at 9am. Parking is behind the building."
ANSWER = ["We", " open", " at", " 9", "am", ".", " Parking", " is", " behind", " the", " building", "!", " Welcome"]


def brains(llm: FakeLLM, **extra: Any) -> dict[str, Any]:
    return {"gpt": {"kind": "openai", "base_url": llm.url + "/v1", "model": "fake-model", "api_key_env": "TEST_LLM_KEY",
                    "system_prompt": "Answer briefly.", **extra}}


@pytest.fixture
async def brainy(bridge_factory: Callable[..., Any], llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    return await bridge_factory(api_keys=dict(KEYS), headers=ACME, brains=brains(llm, timeout=2))


def said(bridge: Any, room: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["kind"], c["text"]) for c in bridge.sim.state.rooms[room["channel"]].commands]


async def test_a_kiosk_ask_is_answered_by_the_brain_sentence_by_sentence(brainy: Any, llm: FakeLLM) -> None:
    llm.default = Script(ANSWER, token_delay=0.002)
    room = await create_room(brainy, qa_context=CONTEXT, brain="gpt")
    assert room["brain"] == "gpt"
    await wait_observed(brainy, room)
    sse: list[dict[str, Any]] = []

    async def read_sse() -> None:
        async with brainy.http.stream("GET", f"/v1/rooms/{room['id']}/events?last_event_id=0") as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    sse.append(json.loads(line[5:]))

    reader = asyncio.create_task(read_sse())
    async with await open_ws(brainy, room["id"]) as kiosk, await open_ws(brainy, room["id"]) as other:
        await recv(kiosk)
        await recv(other)
        await poll(lambda: sse, what="the SSE stream's first event")
        await send(kiosk, {"type": "ask", "id": "q", "text": "When do you open?"})
        early: list[dict[str, Any]] = []
        queued = await until(kiosk, of_type("queued", id="q"), seen=early)
        ack = await until(kiosk, of_type("ack", id="q"), seen=early, timeout=10)
        ask_id = queued["utterance"]
        assert ack["utterance"] == ask_id and len(ack["positions"]) == len(ack["utterances"]) == 3
        sentences = ["We open at 9am.", "Parking is behind the building!", "Welcome"]
        assert said(brainy, room) == [("speak", s) for s in sentences]  # A2E's own ask is not used
        for ws in (kiosk, other):
            seen: list[dict[str, Any]] = list(early) if ws is kiosk else []
            final = next((f for f in seen if f["type"] == "reply" and f["final"]), None) or await until(
                ws, lambda f: f.get("type") == "reply" and f["final"], seen=seen)
            assert final == {"type": "reply", "text": " ".join(sentences), "final": True, "reply_id": ask_id,
                             "source": "brain"}
            partial = [f["text"] for f in seen if f["type"] == "reply" and not f["final"]]
            assert partial == ["We open at 9am.", "We open at 9am. Parking is behind the building!"]
            # the ask and each sentence go from queued to done, heard on the channel (not estimated)
            seen.append(await until(ws, lambda f: f.get("type") == "utterance" and f["id"] == ask_id
                                    and f["state"] == "done", seen=seen, timeout=10))
            states: dict[str, list[str]] = {}
            for f in seen:
                if f["type"] == "utterance":
                    states.setdefault(f["id"], []).append(f["state"])
                    assert "estimated" not in f
            assert states[ask_id] == ["queued", "sent", "speaking", "done"]
            for piece in ack["utterances"]:
                assert states[piece] == ["queued", "sent", "speaking", "done"]
    await poll(lambda: any(e["type"] == "reply" and e["final"] for e in sse), what="the final reply on SSE")
    assert {e["type"] for e in sse} >= {"reply", "utterance", "command"}
    reader.cancel()

    sent = llm.requests[0]
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["body"]["stream"] is True and sent["body"]["model"] == "fake-model"
    assert sent["body"]["messages"] == [{"role": "system", "content": "Answer briefly.\n\n" + CONTEXT},
                                        {"role": "user", "content": "When do you open?"}]
    assert KEY not in json.dumps(sse)

    # the conversation so far goes along with the next question (over REST this time)
    llm.default = Script(["Behind", " the", " building", "."])
    r = await brainy.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "Where do I park?"})
    assert r.status_code == 200 and r.json()["kind"] == "ask" and r.json()["chunks"] == 1, r.text
    assert llm.requests[1]["body"]["messages"][1:] == [
        {"role": "user", "content": "When do you open?"}, {"role": "assistant", "content": " ".join(sentences)},
        {"role": "user", "content": "Where do I park?"}]


@pytest.mark.parametrize("fault, code", [("slow", "brain_timeout"), ("http_500", "brain_error"),
                                         ("garbled", "brain_error"), ("drop", "brain_error")])
async def test_a_failing_brain_is_a_clear_event_and_leaves_the_room_usable(
        bridge_factory: Callable[..., Any], llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, fault: str, code: str) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, brains=brains(llm, timeout=0.5, max_retries=0))
    room = await create_room(bridge, brain="gpt")
    # one complete sentence, then half of one, then the fault
    llm.then(Script(["First", " sentence", ".", " Half", " of"], fault=fault, fault_after=5, slow_seconds=5))
    async with await open_ws(bridge, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "ask", "id": "q", "text": "Tell me."})
        ask_id = (await until(ws, of_type("queued", id="q")))["utterance"]
        seen: list[dict[str, Any]] = []
        answer = await until(ws, of_type("error", id="q"), seen=seen, timeout=10)
        assert answer["code"] == code
        event = await seen_or_until(ws, lambda f: f.get("type") == "error" and f.get("utterance") == ask_id, seen)
        assert event["code"] == code and "id" not in event and KEY not in event["message"]
        await seen_or_until(ws, lambda f: f.get("type") == "utterance" and f["id"] == ask_id and f["state"] == "failed",
                            seen)
        # what was complete is said once; the unfinished sentence never
        expected = [] if fault in ("slow", "http_500") else [("speak", "First sentence.")]
        await poll(lambda: said(bridge, room) == expected, what="the complete sentence only")
        # the room goes on: the next question is answered
        llm.then(Script(["All", " good", "."]))
        await send(ws, {"type": "ask", "id": "q2", "text": "Again?"})
        await until(ws, of_type("ack", id="q2"), timeout=10)
    assert said(bridge, room) == [*expected, ("speak", "All good.")]


async def test_flush_stops_a_brain_answer_in_flight(brainy: Any, llm: FakeLLM) -> None:
    gate = asyncio.Event()  # never set: the LLM is stuck before its last word
    llm.then(Script(["One", " sentence", ".", " And", " more", " to", " come"], gate=gate))
    room = await create_room(brainy, brain="gpt")
    async with await open_ws(brainy, room["id"]) as ws:
        await recv(ws)
        await send(ws, {"type": "ask", "id": "q", "text": "Talk."})
        ask_id = (await until(ws, of_type("queued", id="q")))["utterance"]
        await poll(lambda: said(brainy, room) == [("speak", "One sentence.")], what="the first sentence")
        await send(ws, {"type": "flush", "id": "f"})
        ack = await until(ws, of_type("ack", id="f"))
        assert ack["flushed"] == 0 and ack["dropped"] == [ask_id]
        assert (await until(ws, of_type("error", id="q")))["code"] == "flushed"
    await poll(lambda: llm.aborted == 1, what="the LLM's stream closed by the bridge")
    assert not brainy.rooms.relay.answering._tasks.get(room["id"])
    assert said(brainy, room) == [("speak", "One sentence.")]


async def test_brains_are_chosen_per_room_and_per_tenant(bridge_factory: Callable[..., Any], llm: FakeLLM,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, brains=brains(llm, tenants=["acme"]))
    error = assert_error(await bridge.http.post("/v1/rooms", json={"brain": "nope"}), 422, "invalid_input")
    assert error["details"] == {"brains": ["a2e", "gpt"]}
    assert_error(await bridge.http.post("/v1/rooms", json={"brain": "gpt"}, headers={"Authorization": "Bearer key-globex"}),
                 422, "invalid_input")
    assert (await create_room(bridge, brain="a2e"))["brain"] == "a2e"
    plain = await create_room(bridge)
    r = await bridge.http.post(f"/v1/rooms/{plain['id']}/ask", json={"text": "Hello?"})
    assert r.status_code == 200 and said(bridge, plain) == [("ask", "Hello?")] and llm.requests == []


def test_a_brain_without_its_key_refuses_to_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    monkeypatch.setenv("BRIDGE_BRAINS", json.dumps({"gpt": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                                                            "model": "m", "api_key_env": "TEST_LLM_KEY"}}))
    settings = bridge_settings(tmp_path)
    assert list(settings.brains) == ["gpt"]
    from bridge.rooms.brains import build_brains

    with pytest.raises(ConfigurationError, match=r"\$TEST_LLM_KEY"):
        build_brains(settings)
    monkeypatch.setenv("BRIDGE_BRAINS", json.dumps({"a2e": {"kind": "webhook", "url": "http://x", "secret_env": "S"}}))
    with pytest.raises(ValueError, match="cannot name a brain"):
        bridge_settings(tmp_path)
    assert create_app  # the app module imports cleanly with brains configured


async def test_a_webhook_brain_gets_a_signed_question_and_may_stream_its_answer(
        bridge_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import hmac

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    secret = "hook-secret-123"
    seen: list[dict[str, Any]] = []
    answers = ["stream", "json", "refuse"]

    async def hook(request: Request) -> Response:
        body = await request.body()
        stamp = request.headers["x-bridge-timestamp"]
        expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        seen.append({"valid": hmac.compare_digest(expected, request.headers["x-bridge-signature"]),
                     "body": json.loads(body)})
        kind = answers.pop(0)
        if kind == "refuse":
            return Response("no", status_code=403)
        if kind == "json":
            return JSONResponse({"text": "Short answer."})

        async def words() -> Any:
            for part in ["First part, ", "streamed. Sec", "ond part."]:
                yield part.encode()

        return StreamingResponse(words(), media_type="text/plain; charset=utf-8")

    from tests.helpers import serve

    monkeypatch.setenv("TEST_HOOK_SECRET", secret)
    async with serve(Starlette(routes=[Route("/answer", hook, methods=["POST"])])) as url:
        bridge = await bridge_factory(api_keys=dict(KEYS), headers=ACME, brains={
            "hook": {"kind": "webhook", "url": url + "/answer", "secret_env": "TEST_HOOK_SECRET"}})
        room = await create_room(bridge, brain="hook", qa_context=CONTEXT)
        r = await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "Hi?"})
        assert r.status_code == 200 and r.json()["chunks"] == 2, r.text
        r = await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "And?"})
        assert r.status_code == 200 and r.json()["chunks"] == 1
        assert_error(await bridge.http.post(f"/v1/rooms/{room['id']}/ask", json={"text": "Once more?"}), 502, "brain_error")
    assert said(bridge, room) == [("speak", "First part, streamed."), ("speak", "Second part."), ("speak", "Short answer.")]
    assert all(s["valid"] for s in seen)
    assert seen[0]["body"] == {"room": room["id"], "question": "Hi?", "qa_context": CONTEXT, "history": []}
    assert seen[1]["body"]["history"] == [{"role": "user", "content": "Hi?"},
                                          {"role": "assistant", "content": "First part, streamed. Second part."}]
    assert secret not in json.dumps(seen)
