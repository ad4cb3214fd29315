"""Example parameters and expected data shapes for every operation of the endpoint table.

A parameter value ``"$op"`` stands for the ``_id`` of something created by calling ``op`` with its
own example (tasks are followed to their end first, so deletes of settled tasks are legal);
``"$op.field"`` stands for that field of ``op``'s answer.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.a2e.client import A2EClient
from bridge.a2e.endpoints import ENDPOINTS
from bridge.a2e.tasks import task_id_of
from bridge.simulator.state import AVATARS

AVATAR = AVATARS[0]["_id"]
MEDIA = "https://media.example.com"
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

# shape names: task (a new task record), record (a dict with _id), records (list of such dicts),
# list, page ({rows, count}), object (any dict), url (a string URL)
EXAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    # tokens
    "login_token": ({"email": "dev@example.com", "password": "pw"}, "object"),
    "api_token_generate": ({"alias": "tests"}, "record"),
    "api_token_list": ({}, "list"),
    "api_token_delete": ({"_id": "$api_token_generate"}, "object"),
    # TTS and voices
    "voice_list": ({}, "list"),
    "tts_list": ({}, "records"),
    "tts_generate": ({"msg": "Hello there", "tts_id": "66dc3c1b7dc1f1c483cc5ab8"}, "url"),
    "voice_clone_list": ({}, "list"),
    "voice_clone_train": ({"name": "my voice", "voice_urls": [f"{MEDIA}/voice.mp3"]}, "task"),
    "voice_clone_training_records": ({}, "list"),
    "voice_get": ({"_id": "$voice_clone_train"}, "record"),
    "voice_delete": ({"_id": "$voice_clone_train"}, "object"),
    # avatar videos
    "video_generate": ({"anchor_id": AVATAR, "anchor_type": 0, "audioSrc": f"{MEDIA}/a.mp3", "title": "t"}, "task"),
    "video_status": ({"_id": "$video_generate"}, "records"),
    "video_list": ({}, "page"),
    "video_delete": ({"_id": "$video_generate"}, "object"),
    "character_list": ({}, "records"),
    "lipsync_model_list": ({}, "list"),
    "language_detect": ({"text": "hello world"}, "object"),
    "public_pool_switch": ({"_id": "$video_generate"}, "object"),
    # custom avatars
    "avatar_train": ({"name": "me", "video_url": f"{MEDIA}/me.mp4"}, "task"),
    "avatar_continue_training": ({"_id": "$avatar_train"}, "task"),
    "avatar_remove": ({"_id": "$avatar_train"}, "object"),
    "avatar_training_records": ({}, "page"),
    "avatar_training_processing": ({}, "list"),
    "avatar_training_get": ({"_id": "$avatar_train"}, "record"),
    "avatar_clone_voice": ({"_id": "$avatar_train"}, "task"),
    # backgrounds
    "background_list": ({}, "records"),
    "background_add": ({"img_url": f"{MEDIA}/bg.jpg"}, "record"),
    "background_delete": ({"_id": "$background_add"}, "object"),
    # face swap
    "face_swap_image_add": ({"face_url": f"{MEDIA}/face.jpg"}, "records"),
    "face_swap_image_list": ({}, "list"),
    "face_swap_image_delete": ({"_id": "$face_swap_image_add"}, "object"),
    "face_swap_preview_add": ({"face_url": f"{MEDIA}/face.jpg", "video_url": f"{MEDIA}/v.mp4"}, "task"),
    "face_swap_preview_status": ({"_id": "$face_swap_preview_add"}, "records"),
    "face_swap_task_add": ({"name": "swap", "face_url": f"{MEDIA}/face.jpg", "video_url": f"{MEDIA}/v.mp4"}, "task"),
    "face_swap_task_status": ({}, "list"),
    "face_swap_task_list": ({}, "page"),
    "face_swap_task_get": ({"_id": "$face_swap_task_add"}, "record"),
    "face_swap_task_delete": ({"_id": "$face_swap_task_add"}, "object"),
    # dubbing
    "dubbing_start": ({"source_url": f"{MEDIA}/talk.mp4", "target_lang": "fr"}, "task"),
    "dubbing_list": ({}, "page"),
    "dubbing_processing": ({}, "list"),
    "dubbing_get": ({"_id": "$dubbing_start"}, "record"),
    "dubbing_delete": ({"_id": "$dubbing_start"}, "object"),
    # image to video
    "image_to_video_start": ({"image_url": f"{MEDIA}/still.png", "prompt": "waves"}, "task"),
    "image_to_video_get": ({"_id": "$image_to_video_start"}, "record"),
    "image_to_video_list": ({}, "page"),
    "image_to_video_delete": ({"_id": "$image_to_video_start"}, "object"),
    # caption removal
    "caption_removal_start": ({"name": "clean", "source_url": f"{MEDIA}/captioned.mp4"}, "task"),
    "caption_removal_list": ({}, "page"),
    "caption_removal_processing": ({}, "list"),
    "caption_removal_get": ({"_id": "$caption_removal_start"}, "record"),
    "caption_removal_delete": ({"_id": "$caption_removal_start"}, "object"),
    # streaming
    "streaming_avatars": ({}, "records"),
    "agora_token": ({"avatar_id": AVATAR, "expire_seconds": 120}, "object"),
    "set_qa_context": ({"channel": "$agora_token.channel", "text": "We sell bicycles."}, "object"),
    "get_qa_context": ({"channel": "$agora_token.channel"}, "object"),
    "ask": ({"channel": "$agora_token.channel", "text": "What do you sell?"}, "object"),
    "speak": ({"channel": "$agora_token.channel", "text": "Welcome!"}, "object"),
    "leave": ({"channel": "$agora_token.channel"}, "object"),
    # miscellaneous
    "remaining_coins": ({}, "object"),
    "exchange_diamonds": ({"diamonds": 1}, "object"),
    "language_list": ({}, "list"),
    "save_url": ({"url": f"{MEDIA}/file.mp4"}, "object"),
    "add_user": ({"email": "sub@example.com"}, "record"),
}


class Resolver:
    """Fills ``$op`` placeholders by creating what they name, once per resolver."""

    def __init__(self, client: A2EClient) -> None:
        self.client = client
        self.created: dict[str, Any] = {}

    async def make(self, operation: str) -> Any:
        if operation not in self.created:
            data = await self.client.call(operation, await self.params(operation))
            if ENDPOINTS[operation].creates_task:
                await self.client.wait_for(operation, task_id_of(data) or "", timeout=20, interval=0.02)
            self.created[operation] = data
        return self.created[operation]

    async def params(self, operation: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        params, _ = EXAMPLES[operation]
        out: dict[str, Any] = {}
        for key, value in {**params, **(overrides or {})}.items():
            if isinstance(value, str) and value.startswith("$"):
                source, _, field = value[1:].partition(".")
                data = await self.make(source)
                value = data[field] if field else task_id_of(data)
                assert value, f"{source} gave nothing usable for {operation}.{key}: {data!r}"
            out[key] = value
        return out


def check_shape(operation: str, shape: str, data: Any) -> None:
    """Assert that ``data`` has the documented shape ``shape``."""
    where = f"{operation} returned {data!r}"
    if shape == "task":
        assert isinstance(data, dict), where
        assert OBJECT_ID.match(str(data.get("_id"))), where
        assert isinstance(data.get("current_status") or data.get("status"), str), where
    elif shape == "record":
        assert isinstance(data, dict) and isinstance(data.get("_id"), str) and data["_id"], where
    elif shape == "records":
        assert isinstance(data, list) and data, where
        assert all(isinstance(r, dict) and isinstance(r.get("_id"), str) for r in data), where
    elif shape == "list":
        assert isinstance(data, list), where
        assert all(isinstance(r, dict) for r in data), where
    elif shape == "page":
        assert isinstance(data, dict) and set(data) >= {"rows", "count"}, where
        assert isinstance(data["rows"], list) and isinstance(data["count"], int), where
        assert data["count"] >= len(data["rows"]), where
    elif shape == "object":
        assert isinstance(data, dict), where
    elif shape == "url":
        assert isinstance(data, str) and data.startswith(("http://", "https://")), where
    else:  # pragma: no cover
        raise AssertionError(f"unknown shape {shape!r}")
