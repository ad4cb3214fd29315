"""Simulated A2E media operations: TTS and voices, avatar videos, custom avatars, backgrounds, face
swap, and the task families (dubbing, image to video, caption removal)."""

from __future__ import annotations

from typing import Any

from .records import face_swap_task_created, status_row
from .registry import HANDLERS, Params, handles, page
from .state import AVATARS, SimError, SimState, object_id


# -- TTS and voices -------------------------------------------------------------------------
@handles("voice_list")
def voice_list(s: SimState, p: Params) -> Any:
    return [{"label": "English", "value": "en", "children": [
        {"label": "Andrew Multilingual", "value": "66d3fb1bc051cfb134c60f20", "gender": "male"},
        {"label": "Ava", "value": "6625ebd4613f49985c349f95", "gender": "female"}]}]


@handles("tts_list")
def tts_list(s: SimState, p: Params) -> Any:
    return [{"_id": "66dc3c1b7dc1f1c483cc5ab8", "name": "Default narrator"}]


@handles("tts_generate")
def tts_generate(s: SimState, p: Params) -> Any:
    if len(p["msg"]) > 1000:
        raise SimError(400, "msg is too long: API users may send at most 1000 characters")
    if not (p.get("tts_id") or p.get("user_voice_id")):
        raise SimError(400, "one of tts_id or user_voice_id is required")
    return f"https://sim.a2e.invalid/tts/{object_id()}.mp3"


@handles("voice_clone_train")
def voice_clone_train(s: SimState, p: Params) -> Any:
    if not p["voice_urls"]:
        raise SimError(400, "voice_urls needs at least one URL")
    return s.create_task("voice", {"name": p["name"], "voice_urls": p["voice_urls"], "train_mode": "best"}, cost=10)


@handles("voice_clone_list")
def voice_clone_list(s: SimState, p: Params) -> Any:
    return [dict(r, speaker_id=r["_id"]) for r in s.tasks_of("voice") if r["current_status"] == "completed"]


@handles("voice_clone_training_records")
def voice_clone_training_records(s: SimState, p: Params) -> Any:
    return s.tasks_of("voice")


@handles("voice_get")
def voice_get(s: SimState, p: Params) -> Any:
    return s.task_record(s.task("voice", p["_id"]))


@handles("voice_delete")
def voice_delete(s: SimState, p: Params) -> Any:
    s.delete_task("voice", p["_id"])
    return {}


# -- avatar videos --------------------------------------------------------------------------
@handles("video_generate")
def video_generate(s: SimState, p: Params) -> Any:
    if p.get("back_id") and p.get("custom_back_id"):
        raise SimError(30005, "back_id and custom_back_id cannot be used together")
    kept = ("anchor_id", "anchor_type", "audioSrc", "title", "back_id", "custom_back_id", "color", "web_bg_width",
            "web_bg_height")
    return s.create_task("video", {k: p[k] for k in kept if k in p}, cost=5)


@handles("video_status")
def video_status(s: SimState, p: Params) -> Any:
    return [s.task_record(s.task("video", p["_id"]))]  # A2E answers a one-element array


@handles("video_list")
def video_list(s: SimState, p: Params) -> Any:
    return page(s.tasks_of("video"), p, page_key="current")


@handles("video_delete")
def video_delete(s: SimState, p: Params) -> Any:
    s.delete_task("video", p["_id"])
    return {}


@handles("character_list")
def character_list(s: SimState, p: Params) -> Any:
    system = [dict(a, type="default") for a in AVATARS]
    custom = [{"_id": r["_id"], "name": r.get("name"), "type": "custom", "user_video_twin_id": r["_id"]}
              for r in s.tasks_of("avatar") if r["current_status"] == "completed"]
    kind = p.get("type")
    return custom if kind == "custom" else system if kind == "default" else system + custom


@handles("lipsync_model_list")
def lipsync_model_list(s: SimState, p: Params) -> Any:
    return [r for r in s.tasks_of("avatar") if r["current_status"] == "completed" and r.get("lipsync")]


@handles("language_detect")
def language_detect(s: SimState, p: Params) -> Any:
    text = p["text"]
    return {"language": "zh-CN" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en-US"}


@handles("public_pool_switch")
def public_pool_switch(s: SimState, p: Params) -> Any:
    s.task("video", p["_id"]).fields["isToPublicPool"] = True
    return {}


# -- custom avatars -------------------------------------------------------------------------
@handles("avatar_train")
def avatar_train(s: SimState, p: Params) -> Any:
    if not (p.get("video_url") or p.get("image_url")):
        raise SimError(400, "one of video_url or image_url is required")
    media: dict[str, Any] = {k: p[k] for k in ("name", "video_url", "image_url", "gender") if k in p}
    return s.create_task("avatar", media, cost=0 if p.get("video_url") else 1)


@handles("avatar_continue_training")
def avatar_continue_training(s: SimState, p: Params) -> Any:
    base = s.task("avatar", p["_id"])
    return s.create_task("avatar", {**base.fields, "lipsync": True, "base_id": base.task_id}, cost=1)


@handles("avatar_remove")
def avatar_remove(s: SimState, p: Params) -> Any:
    s.delete_task("avatar", p["_id"])
    return {}


@handles("avatar_training_records")
def avatar_training_records(s: SimState, p: Params) -> Any:
    return page(s.tasks_of("avatar"), p)


@handles("avatar_training_processing")
def avatar_training_processing(s: SimState, p: Params) -> Any:
    return s.tasks_of("avatar", running_only=True)


@handles("avatar_training_get")
def avatar_training_get(s: SimState, p: Params) -> Any:
    return s.task_record(s.task("avatar", p["_id"]))


@handles("avatar_clone_voice")
def avatar_clone_voice(s: SimState, p: Params) -> Any:
    base = s.task("avatar", p["_id"])
    return s.create_task("voice", {"name": f"voice of {base.fields.get('name', base.task_id)}"}, cost=10)


# -- backgrounds ----------------------------------------------------------------------------
@handles("background_list")
def background_list(s: SimState, p: Params) -> Any:
    return s.list_assets("background")


@handles("background_add")
def background_add(s: SimState, p: Params) -> Any:
    return s.add_asset("background", {"img_url": p["img_url"], "type": "custom"})


@handles("background_delete")
def background_delete(s: SimState, p: Params) -> Any:
    s.delete_asset("background", p["_id"])
    return {}


# -- face swap ------------------------------------------------------------------------------
@handles("face_swap_image_add")
def face_swap_image_add(s: SimState, p: Params) -> Any:
    s.add_asset("face_image", {"face_url": p["face_url"]})
    return s.list_assets("face_image")  # A2E answers the whole list


@handles("face_swap_image_list")
def face_swap_image_list(s: SimState, p: Params) -> Any:
    return s.list_assets("face_image")


@handles("face_swap_image_delete")
def face_swap_image_delete(s: SimState, p: Params) -> Any:
    s.delete_asset("face_image", p["_id"])
    return {}


@handles("face_swap_preview_add")
def face_swap_preview_add(s: SimState, p: Params) -> Any:
    return s.create_task("face_swap_preview", {"face_url": p["face_url"], "video_url": p["video_url"]})


@handles("face_swap_preview_status")
def face_swap_preview_status(s: SimState, p: Params) -> Any:
    # undocumented: the shape of the documented task status (an array of status rows)
    return [status_row(s.task_record(s.task("face_swap_preview", p["_id"])))]


@handles("face_swap_task_add")
def face_swap_task_add(s: SimState, p: Params) -> Any:
    fields: dict[str, Any] = {k: p[k] for k in ("name", "face_url", "video_url", "cover_url", "model_version") if k in p}
    return face_swap_task_created(s.create_task("face_swap_task", {**fields, "duration": 6}, cost=5))


@handles("face_swap_task_status")
def face_swap_task_status(s: SimState, p: Params) -> Any:
    return [status_row(r) for r in s.tasks_of("face_swap_task", running_only=True)]


@handles("face_swap_task_list")
def face_swap_task_list(s: SimState, p: Params) -> Any:
    return page(s.tasks_of("face_swap_task"), p)


@handles("face_swap_task_get")
def face_swap_task_get(s: SimState, p: Params) -> Any:
    return s.task_record(s.task("face_swap_task", p["_id"]))


@handles("face_swap_task_delete")
def face_swap_task_delete(s: SimState, p: Params) -> Any:
    s.delete_task("face_swap_task", p["_id"], only_settled=True)
    return {}


# -- dubbing, image to video, caption removal: the same task CRUD -------------------------
def _task_family(kind: str, prefix: str, create_fields: tuple[str, ...], cost: int) -> None:
    HANDLERS[f"{prefix}_get"] = lambda s, p: s.task_record(s.task(kind, p["_id"]))
    HANDLERS[f"{prefix}_list"] = lambda s, p: page(s.tasks_of(kind), p)

    def delete(s: SimState, p: Params) -> Any:
        s.delete_task(kind, p["_id"], only_settled=True)
        return {}

    HANDLERS[f"{prefix}_delete"] = delete
    HANDLERS[f"{prefix}_processing"] = lambda s, p: s.tasks_of(kind, running_only=True)

    def create(s: SimState, p: Params) -> Any:
        return s.create_task(kind, {k: p[k] for k in create_fields if k in p}, cost=cost)

    HANDLERS[f"{prefix}_start"] = create


_task_family("dubbing", "dubbing", ("name", "source_url", "source_lang", "target_lang", "num_speakers"), cost=10)
_task_family("image_to_video", "image_to_video", ("name", "image_url", "prompt", "negative_prompt"), cost=100)
_task_family("caption_removal", "caption_removal", ("name", "source_url"), cost=5)
