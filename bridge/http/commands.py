"""The bridge's REST API for what a room says: speak, ask, a streamed speak, cancel, flush, utterances.

Requests are validated and answers built with the models of :mod:`bridge.http.models`; each
handler's ``@operation`` is what ``/openapi.json`` says of it (:mod:`bridge.http.openapi`).
"""

from __future__ import annotations

import asyncio
import codecs
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.errors import BadRequest, BrainFailed, NotFound
from bridge.rooms.queue import CommandKind
from bridge.rooms.registry import LiveRoom
from bridge.settings import Settings

from .models import CancelResult, CommandAccepted, FlushResult, StreamAccepted, UtteranceView, command_body, parse_body
from .openapi import A2E_STATUSES, operation
from .rooms import answer, caller, find_open_room, rooms_of

CALLS_A2E = dict.fromkeys(A2E_STATUSES, "")
COMMAND_ERRORS = {409: "", 429: "(here: the room's queue is full; retry, or flush)", **CALLS_A2E}
# what an accepted speak, ask or stream leads to: its utterance, to read or cancel
UTTERANCE_LINKS = {name: {"operationId": f"{method}_v1_rooms_room_id_utterances_uid", "description": what,
                          "parameters": {"room_id": "$request.path.room_id", "uid": "$response.body#/utterance"}}
                   for name, method, what in (("utterance", "get", "its utterance"), ("cancel", "delete", "cancel it"))}


async def open_room(request: Request) -> LiveRoom:
    """The path's open room, if the caller may use it (a browser key: only a room it opened)."""
    return await find_open_room(request, caller(request))


def _command(kind: CommandKind) -> Any:
    return lambda settings: command_body(kind, settings.max_text_chars)


async def run_command(request: Request, kind: CommandKind) -> Response:
    caller(request)  # who it is first: a stranger learns nothing from how its body is refused
    settings: Settings = request.app.state.settings
    body: Any = await parse_body(request, command_body(kind, settings.max_text_chars))
    lr = await open_room(request)
    # Answer once A2E accepted every chunk; the queue keeps going if this client goes away.
    submission = await rooms_of(request).handle(lr).submit(lr, kind, body.text, origin="rest")
    seqs = await submission.accepted
    if not seqs:  # an ask whose brain said nothing speakable (the answers module refuses an empty answer)
        raise BrainFailed("the brain's answer had nothing to say")
    return answer(CommandAccepted, {"status": "accepted", "kind": kind, "position": seqs[0], "positions": seqs,
                                    "chunks": len(seqs), "utterance": submission.utterance,
                                    "utterances": submission.leaves()})


@operation(summary="Make the avatar say a text (queued in order; long text is split at sentences); answers once "
                   "A2E accepted it", body=_command("speak"), answer=CommandAccepted, errors=COMMAND_ERRORS,
           links=UTTERANCE_LINKS)
async def speak(request: Request) -> Response:
    return await run_command(request, "speak")


@operation(summary="Ask the avatar a question (answered by the room's brain; the reply arrives as events)",
           body=_command("ask"), answer=CommandAccepted, errors=COMMAND_ERRORS, links=UTTERANCE_LINKS)
async def ask(request: Request) -> Response:
    return await run_command(request, "ask")


@operation(summary="Speak a text streamed in the request body (UTF-8, e.g. chunked); each sentence is sent to A2E "
                   "once complete", body_media="text/plain", body_required=False, answer=StreamAccepted,
           errors={400: "the body is not UTF-8", 409: "", 413: "over BRIDGE_MAX_BODY_BYTES (the sentences complete "
                   "before that are still said)", 429: "(here: the room's queue is full)", **CALLS_A2E}, links=UTTERANCE_LINKS,
           description="The body is plain text, read as it arrives: every sentence is queued as soon as it is "
                       "complete, the rest at the end. Answers once A2E accepted every sentence.")
async def speak_stream(request: Request) -> Response:
    lr = await open_room(request)
    room = rooms_of(request).handle(lr)
    key = f"http:{secrets.token_hex(8)}"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        await room.stream_delta(lr, key, "", origin="rest")
        async for chunk in request.stream():
            if text := decoder.decode(chunk):
                await room.stream_delta(lr, key, text)
        await room.stream_delta(lr, key, decoder.decode(b"", final=True))
        stream = await room.stream_end(lr, key)
    except UnicodeDecodeError:
        await room.stream_abort(lr, key, "the body is not UTF-8")
        raise BadRequest("the body must be UTF-8 text") from None
    except BaseException:  # too large, the client went away, the queue is full: the rest is not said
        await asyncio.shield(room.stream_abort(lr, key, "the request ended before its body did"))
        raise
    seqs = await stream.done
    return answer(StreamAccepted, {"status": "accepted", "kind": "speak", "utterance": stream.utterance,
                                   "positions": seqs, "utterances": stream.leaves, "chunks": len(seqs)})


@operation(summary="Drop the room's pending commands, stop its streams and brain answers", answer=FlushResult,
           errors={409: ""})
async def flush(request: Request) -> Response:
    lr = await open_room(request)
    flushed, dropped = await rooms_of(request).handle(lr).flush(lr, origin="rest")
    return answer(FlushResult, {"flushed": flushed, "dropped": dropped})


@operation(summary="One utterance of the room (the room's last 1,000 finished ones are kept)", answer=UtteranceView,
           errors={404: "also: no such utterance", 409: ""})
async def get_utterance(request: Request) -> Response:
    lr = await open_room(request)
    uid = request.path_params["uid"]
    found = await rooms_of(request).handle(lr).utterance(lr, uid)
    if found is None:
        raise NotFound(f"no utterance {uid} in this room")
    return answer(UtteranceView, found)


@operation(summary="Cancel a queued utterance (a speak, ask, stream or one piece of it); A2E cannot stop what it "
                   "has", answer=CancelResult,
           errors={404: "also: no such utterance", 409: "also `not_cancellable`: A2E has all of it already"})
async def cancel_utterance(request: Request) -> Response:
    lr = await open_room(request)
    cancelled = await rooms_of(request).handle(lr).cancel(lr, request.path_params["uid"])
    return answer(CancelResult, {"cancelled": cancelled})


routes: list[BaseRoute] = [
    Route("/v1/rooms/{room_id}/speak", speak, methods=["POST"]),
    Route("/v1/rooms/{room_id}/speak/stream", speak_stream, methods=["POST"]),
    Route("/v1/rooms/{room_id}/ask", ask, methods=["POST"]),
    Route("/v1/rooms/{room_id}/flush", flush, methods=["POST"]),
    Route("/v1/rooms/{room_id}/utterances/{uid}", get_utterance, methods=["GET"]),
    Route("/v1/rooms/{room_id}/utterances/{uid}", cancel_utterance, methods=["DELETE"]),
]
