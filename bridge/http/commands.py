"""The bridge's REST API for what a room says: speak, ask, a streamed speak, cancel, flush, utterances.

Each endpoint's docstring holds its OpenAPI description (YAML after ``---``), gathered at
``/openapi.json`` by Starlette's schema generator.
"""

from __future__ import annotations

import codecs
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.errors import BadRequest, NotFound
from bridge.rooms.queue import CommandKind
from bridge.rooms.registry import LiveRoom
from bridge.rooms.utterances import Utterance

from .responses import JSONResponse
from .rooms import TextBody, caller, find_open_room, parse_body, rooms_of


async def open_room(request: Request) -> LiveRoom:
    """The path's open room, if the caller may use it (a browser key: only a room it opened)."""
    return await find_open_room(request, caller(request))


async def run_command(request: Request, kind: CommandKind) -> Response:
    caller(request)  # who it is first: a stranger learns nothing from how its body is refused
    body = await parse_body(request, TextBody)
    lr = await open_room(request)
    # Answer once A2E accepted every chunk; the queue keeps going if this client goes away.
    submission = rooms_of(request).relay.submit(lr, kind, body.text, origin="rest")
    seqs = await submission.accepted
    return JSONResponse({"status": "accepted", "kind": kind, "position": seqs[0], "positions": seqs,
                         "chunks": len(seqs), "utterance": submission.utterance.id,
                         "utterances": submission.utterance.leaves})


async def speak(request: Request) -> Response:
    """
    summary: Make the avatar say a text (queued in order; long text is split at sentences)
    responses:
      200: {description: "Accepted by A2E: {position, positions, chunks, utterance, utterances}"}
      409: {description: Room not open, or the command was flushed or cancelled}
      429: {description: Queue full}
    """
    return await run_command(request, "speak")


async def ask(request: Request) -> Response:
    """
    summary: Ask the avatar a question (answered by the room's brain; the reply arrives as events)
    responses:
      200: {description: "Accepted by A2E (a brain's answer: all of it): {position, positions, utterance}"}
      502: {description: "brain_error: the room's brain failed"}
      504: {description: "brain_timeout: the room's brain was too slow"}
    """
    return await run_command(request, "ask")


async def speak_stream(request: Request) -> Response:
    """
    summary: Speak a text streamed in the request body (UTF-8, e.g. chunked); each sentence is sent to A2E once complete
    requestBody:
      content:
        text/plain: {schema: {type: string}}
    responses:
      200: {description: "The whole stream accepted by A2E: {utterance, positions, utterances, chunks}"}
      400: {description: "The body is not UTF-8"}
      413: {description: "The body is over BRIDGE_MAX_BODY_BYTES (sentences complete before that are still said)"}
    """
    lr = await open_room(request)
    relay = rooms_of(request).relay
    key = f"http:{secrets.token_hex(8)}"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        relay.stream_delta(lr, key, "", origin="rest")
        async for chunk in request.stream():
            if text := decoder.decode(chunk):
                relay.stream_delta(lr, key, text)
        relay.stream_delta(lr, key, decoder.decode(b"", final=True))
        stream = relay.stream_end(lr, key)
    except UnicodeDecodeError:
        relay.stream_abort(lr, key, "the body is not UTF-8")
        raise BadRequest("the body must be UTF-8 text") from None
    except BaseException:  # too large, the client went away, the queue is full: the rest is not said
        relay.stream_abort(lr, key, "the request ended before its body did")
        raise
    seqs = await stream.done
    return JSONResponse({"status": "accepted", "kind": "speak", "utterance": stream.utterance.id, "positions": seqs,
                         "utterances": stream.utterance.leaves, "chunks": len(seqs)})


async def flush(request: Request) -> Response:
    """
    summary: Drop the room's pending commands, stop its streams and brain answers
    responses:
      200: {description: "{flushed: commands dropped, dropped: [utterance ids cancelled]}"}
    """
    lr = await open_room(request)
    flushed, dropped = rooms_of(request).relay.flush(lr, origin="rest")
    return JSONResponse({"flushed": flushed, "dropped": dropped})


def describe(u: Utterance) -> dict[str, Any]:
    return {"id": u.id, "seq": u.seq, "kind": u.kind, "state": u.state, "parent": u.parent.id if u.parent else None,
            "position": u.position, "text": u.text, "estimated": u.estimated, "reason": u.reason,
            "pieces": [p.id for p in u.pieces]}


async def get_utterance(request: Request) -> Response:
    """
    summary: One utterance of the room (the room's last 1,000 finished ones are kept)
    responses:
      200: {description: "{id, seq, kind, state, parent, position, text, estimated, reason, pieces}"}
      404: {description: No such utterance}
    """
    lr = await open_room(request)
    uid = request.path_params["uid"]
    u = lr.utterances.get(uid) if lr.utterances is not None else None
    if u is None:
        raise NotFound(f"no utterance {uid} in this room")
    return JSONResponse(describe(u))


async def cancel_utterance(request: Request) -> Response:
    """
    summary: Cancel a queued utterance (a speak, ask, stream or one piece of it); A2E cannot stop what it has
    responses:
      200: {description: "{cancelled: [every utterance id it removed]}"}
      404: {description: No such utterance}
      409: {description: "not_cancellable: A2E has all of it already"}
    """
    lr = await open_room(request)
    return JSONResponse({"cancelled": rooms_of(request).relay.cancel(lr, request.path_params["uid"])})


routes: list[BaseRoute] = [
    Route("/v1/rooms/{room_id}/speak", speak, methods=["POST"]),
    Route("/v1/rooms/{room_id}/speak/stream", speak_stream, methods=["POST"]),
    Route("/v1/rooms/{room_id}/ask", ask, methods=["POST"]),
    Route("/v1/rooms/{room_id}/flush", flush, methods=["POST"]),
    Route("/v1/rooms/{room_id}/utterances/{uid}", get_utterance, methods=["GET"]),
    Route("/v1/rooms/{room_id}/utterances/{uid}", cancel_utterance, methods=["DELETE"]),
]
