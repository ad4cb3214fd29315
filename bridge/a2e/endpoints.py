"""The one table of A2E's REST API.

Every A2E operation the project knows is one row here (an :class:`Endpoint`, defined with its path
checks in :mod:`bridge.a2e.operation`). The client sends requests from it, the simulator builds its
routes from it, the CLI's ``call`` command and the tests iterate it. What we are unsure of (paths
and shapes marked ``GUESSED``) is visible in this file and nowhere else; when the live API proves a
row wrong, the fix is that row.

Sources: ../shared/notes/a2e-api-*.md. ``DOCUMENTED`` means an official A2E page showed it,
``CODE`` that public code calling A2E uses it, ``GUESSED`` that it is inferred from naming.
"""

from __future__ import annotations

from .errors import A2EUnknownOperation
from .operation import OBJECT_ID, PATH_PARAM_SHAPES, Certainty, Endpoint, _shown

__all__ = [
    "Certainty",
    "ENDPOINTS",
    "Endpoint",
    "GROUPS",
    "OBJECT_ID",
    "PATH_PARAM_SHAPES",
    "QA_CONTEXT_LIMIT",
    "endpoint",
]

D, C, G = Certainty.DOCUMENTED, Certainty.CODE, Certainty.GUESSED
V1 = "/api/v1"

# fmt: off
_ROWS: list[Endpoint] = [
    # --- tokens ---------------------------------------------------------------------------------
    Endpoint("login_token", "tokens", "POST", f"{V1}/user/login/account", G,
             "Obtain a login token from account credentials (old flow)", required={"email": "str", "password": "str"},
             passthrough=False),
    Endpoint("api_token_generate", "tokens", "POST", f"{V1}/token/generate", D,
             "Generate an API token (deprecated: take it from the web UI)", required={"alias": "str"}, deprecated=True,
             passthrough=False),
    Endpoint("api_token_list", "tokens", "GET", f"{V1}/token/list", G, "List API tokens", retry_safe=True, passthrough=False),
    Endpoint("api_token_delete", "tokens", "POST", f"{V1}/token/delete", G, "Delete an API token",
             retry_safe=True, required={"_id": "str"}, passthrough=False),
    # --- TTS and voice clone --------------------------------------------------------------------
    Endpoint("voice_list", "tts", "POST", f"{V1}/anchor/voice_list", D, "List public TTS voices", retry_safe=True,
             optional={"country": "str", "region": "str", "voice_map_type": "str"}, also=("GET",)),
    Endpoint("tts_list", "tts", "POST", f"{V1}/anchor/tts_list", C, "List system TTS presets", retry_safe=True),
    Endpoint("tts_generate", "tts", "POST", f"{V1}/video/send_tts", C, "Generate TTS audio (synchronous)",
             required={"msg": "str"},  # the captcha fields are for the web UI only
             optional={"tts_id": "str", "user_voice_id": "str", "country": "str", "region": "str",
                       "speechRate": "number"}, limits={"msg": 1000},  # API users: 1000 characters
             one_of=(("tts_id", "user_voice_id"),)),
    Endpoint("voice_clone_list", "tts", "GET", f"{V1}/userVoice/completedRecord", D,
             "List completed cloned voices", retry_safe=True),
    Endpoint("voice_clone_train", "tts", "POST", f"{V1}/userVoice/training", C, "Train a cloned voice",
             required={"name": "str", "voice_urls": "list"}, status_op="voice_get",
             optional={"gender": "str", "denoise": "bool", "enhance_voice_similarity": "bool", "model": "str",
                       "language": "str", "webhook_url": "str", "webhook_token": "str"}),
    Endpoint("voice_clone_training_records", "tts", "GET", f"{V1}/userVoice/trainingRecord", C,
             "List voice-training records", retry_safe=True),
    Endpoint("voice_get", "tts", "GET", f"{V1}/userVoice/{{_id}}", C, "Details of one voice", retry_safe=True),
    Endpoint("voice_delete", "tts", "DELETE", f"{V1}/userVoice/{{_id}}", C, "Delete a voice (soft)", retry_safe=True),
    # --- avatar videos --------------------------------------------------------------------------
    Endpoint("video_generate", "video", "POST", f"{V1}/video/generate", D, "Generate an avatar video",
             required={"anchor_id": "str", "anchor_type": "int", "audioSrc": "str"}, status_op="video_status",
             # the documented body and the catalog's extensions; "any" where no source gives the type
             optional={"title": "str", "back_id": "str", "custom_back_id": "str", "color": "str",
                       "resolution": "int", "web_bg_width": "int", "web_bg_height": "int",
                       "web_people_width": "int", "web_people_height": "int", "web_people_x": "int",
                       "web_people_y": "int", "isSkipRs": "bool", "anchor_background_img": "str",
                       "anchor_background_color": "str", "isAllowReverse": "str", "isToPublicPool": "bool",
                       "custom_voice": "str", "face_swap_id": "str", "wl_model": "any",
                       "web_dist_bg_width": "int", "web_dist_bg_height": "int", "web_dist_bg_x": "int",
                       "web_dist_bg_y": "int", "msg": "str", "erode_factor": "number", "isSkipGp": "bool",
                       "isCaptionEnabled": "bool", "captionAlign": "dict", "gp_model": "dict", "lip_model": "any",
                       "webhook_url": "str", "webhook_token": "str"},
             exclusive=(("back_id", "custom_back_id"),)),  # both: A2E's code 30005
    Endpoint("video_status", "video", "POST", f"{V1}/video/awsResult", D,
             "Status of one avatar video (data is a one-element array)", retry_safe=True, required={"_id": "str"}),
    Endpoint("video_list", "video", "POST", f"{V1}/video/awsList", C, "List result videos", retry_safe=True,
             optional={"current": "int", "pageSize": "int"}, also=("GET",)),  # the newer sidebar: GET
    Endpoint("video_delete", "video", "DELETE", f"{V1}/video/{{_id}}", G, "Delete or cancel a video", retry_safe=True),
    Endpoint("character_list", "video", "POST", f"{V1}/anchor/character_list", C,
             "List one or all avatars (anchors) for videos", retry_safe=True,
             optional={"type": "str", "user_video_twin_id": "str"}, also=("GET",)),  # the newer sidebar: GET
    Endpoint("lipsync_model_list", "video", "GET", f"{V1}/userVideoTwin/lipSyncModels", G,
             "List personalized lip-sync models", retry_safe=True),  # parameters unknown: none accepted
    Endpoint("language_detect", "video", "POST", f"{V1}/video/language_detect", G, "Detect the language of a text",
             retry_safe=True, required={"text": "str"}),  # body from one third-party summary; nothing else accepted
    Endpoint("public_pool_switch", "video", "POST", f"{V1}/video/toPublicPool", G,
             "Move a queued video to the public computing pool", retry_safe=True,
             required={"_id": "str"}),  # body guessed from the {_id} pattern; nothing else accepted
    # --- custom avatars and lip-sync training ---------------------------------------------------
    Endpoint("avatar_train", "avatars", "POST", f"{V1}/userVideoTwin/startTraining", D,
             "Create a custom avatar from a video or an image", required={"name": "str"},
             status_op="avatar_training_get", one_of=(("video_url", "image_url"),),
             optional={"video_url": "str", "image_url": "str", "video_background_image": "str",
                       "video_background_color": "str", "gender": "str"}),
    Endpoint("avatar_continue_training", "avatars", "POST", f"{V1}/userVideoTwin/continueTraining", D,
             "Train a personalized lip-sync model", required={"_id": "str"}, status_op="avatar_training_get"),
    Endpoint("avatar_remove", "avatars", "POST", f"{V1}/userVideoTwin/remove", C, "Remove a custom avatar",
             retry_safe=True, required={"_id": "str"}),
    Endpoint("avatar_training_records", "avatars", "GET", f"{V1}/userVideoTwin/records", C,
             "Status of all avatar tasks", retry_safe=True,
             optional={"pageNum": "int", "pageSize": "int", "status": "str"}),
    Endpoint("avatar_training_processing", "avatars", "GET", f"{V1}/userVideoTwin/trainingRecords", G,
             "Ongoing training tasks", retry_safe=True),
    Endpoint("avatar_training_get", "avatars", "GET", f"{V1}/userVideoTwin/{{_id}}", C,
             "Status of one avatar task", retry_safe=True),
    Endpoint("avatar_clone_voice", "avatars", "POST", f"{V1}/userVideoTwin/cloneVoice", G,
             "Clone the voice of a custom avatar's video", required={"_id": "str"},
             status_op="voice_get"),  # body guessed from the {_id} pattern; nothing else accepted
    # --- backgrounds ----------------------------------------------------------------------------
    Endpoint("background_list", "backgrounds", "POST", f"{V1}/custom_back/allBackground", C,
             "List system and custom backgrounds", retry_safe=True),
    Endpoint("background_add", "backgrounds", "POST", f"{V1}/custom_back/add", C, "Add a custom background",
             required={"img_url": "str"}, optional={"name": "str"}),
    Endpoint("background_delete", "backgrounds", "POST", f"{V1}/custom_back/del", C, "Delete a custom background",
             retry_safe=True, required={"_id": "str"}),
    # --- face swap ------------------------------------------------------------------------------
    Endpoint("face_swap_image_add", "face_swap", "POST", f"{V1}/userFaceSwapImage/add", D, "Add a face image",
             required={"face_url": "str"}),
    Endpoint("face_swap_image_list", "face_swap", "GET", f"{V1}/userFaceSwapImage/records", C,
             "List face images", retry_safe=True),
    Endpoint("face_swap_image_delete", "face_swap", "DELETE", f"{V1}/userFaceSwapImage/{{_id}}", C,
             "Delete a face image", retry_safe=True),
    Endpoint("face_swap_preview_add", "face_swap", "POST", f"{V1}/userFaceSwapPreview/add", D,
             "Start a face swap preview", required={"face_url": "str", "video_url": "str"},
             status_op="face_swap_preview_status"),
    Endpoint("face_swap_preview_status", "face_swap", "GET", f"{V1}/userFaceSwapPreview/status", C,
             "Status of a face swap preview", retry_safe=True, required={"_id": "str"}),
    Endpoint("face_swap_task_add", "face_swap", "POST", f"{V1}/userFaceSwapTask/add", D, "Start a face swap task",
             required={"name": "str", "face_url": "str", "video_url": "str"}, status_op="face_swap_task_get",
             optional={"cover_url": "str", "model_version": "str", "webhook_url": "str", "webhook_token": "str"}),
    Endpoint("face_swap_task_status", "face_swap", "GET", f"{V1}/userFaceSwapTask/status", D,
             "Status of all current face swap tasks", retry_safe=True),
    Endpoint("face_swap_task_list", "face_swap", "GET", f"{V1}/userFaceSwapTask/records", D,
             "Face swap task records (paginated)", retry_safe=True,
             optional={"pageNum": "int", "pageSize": "int"}),  # the docs require both; A2E checks that
    Endpoint("face_swap_task_get", "face_swap", "GET", f"{V1}/userFaceSwapTask/{{_id}}", C,
             "Details of one face swap task", retry_safe=True),
    Endpoint("face_swap_task_delete", "face_swap", "DELETE", f"{V1}/userFaceSwapTask/{{_id}}", C,
             "Delete a face swap task", retry_safe=True),
    # --- AI dubbing -----------------------------------------------------------------------------
    Endpoint("dubbing_start", "dubbing", "POST", f"{V1}/userDubbing/startDubbing", C, "Start dubbing",
             required={"source_url": "str", "target_lang": "str"}, status_op="dubbing_get",
             optional={"name": "str", "source_lang": "str", "num_speakers": "int", "drop_background_audio": "bool",
                       "webhook_url": "str", "webhook_token": "str"}),
    Endpoint("dubbing_list", "dubbing", "GET", f"{V1}/userDubbing/allRecords", C, "List dubbing tasks",
             retry_safe=True, optional={"pageNum": "int", "pageSize": "int"}),
    Endpoint("dubbing_processing", "dubbing", "GET", f"{V1}/userDubbing/allProcessing", C,
             "List dubbing tasks in progress", retry_safe=True),
    Endpoint("dubbing_get", "dubbing", "GET", f"{V1}/userDubbing/{{_id}}", C, "Details of one dubbing task",
             retry_safe=True),
    Endpoint("dubbing_delete", "dubbing", "DELETE", f"{V1}/userDubbing/{{_id}}", C, "Delete a dubbing task",
             retry_safe=True),
    # --- image to video -------------------------------------------------------------------------
    Endpoint("image_to_video_start", "image_to_video", "POST", f"{V1}/userImage2Video/start", D,
             "Start an image-to-video task", required={"image_url": "str"}, status_op="image_to_video_get",
             optional={"name": "str", "prompt": "str", "negative_prompt": "str", "lora": "str", "model_type": "str",
                       "model_version": "str", "end_image_url": "str", "extend_prompt": "bool",
                       "number_of_images": "int", "video_time": "int", "video_length": "int",
                       "skip_face_enhance": "bool", "mask_face": "bool", "minor_suspected_skip": "bool",
                       "webhook_url": "str", "webhook_token": "str"}),
    Endpoint("image_to_video_get", "image_to_video", "GET", f"{V1}/userImage2Video/{{_id}}", D,
             "Status of one image-to-video task", retry_safe=True),
    Endpoint("image_to_video_list", "image_to_video", "GET", f"{V1}/userImage2Video/allRecords", C,
             "List image-to-video tasks", retry_safe=True, optional={"pageNum": "int", "pageSize": "int"}),
    Endpoint("image_to_video_delete", "image_to_video", "DELETE", f"{V1}/userImage2Video/{{_id}}", C,
             "Delete an image-to-video task (not while in progress)", retry_safe=True),
    # --- caption removal ------------------------------------------------------------------------
    Endpoint("caption_removal_start", "caption_removal", "POST", f"{V1}/userCaptionRemoval/start", C,
             "Start caption removal", required={"name": "str", "source_url": "str"},
             status_op="caption_removal_get", optional={"webhook_url": "str", "webhook_token": "str"}),
    Endpoint("caption_removal_list", "caption_removal", "GET", f"{V1}/userCaptionRemoval/allRecords", C,
             "List caption removal tasks", retry_safe=True, optional={"pageNum": "int", "pageSize": "int"}),
    Endpoint("caption_removal_processing", "caption_removal", "GET", f"{V1}/userCaptionRemoval/allProcessing", C,
             "List caption removal tasks in progress", retry_safe=True),
    Endpoint("caption_removal_get", "caption_removal", "GET", f"{V1}/userCaptionRemoval/{{_id}}", C,
             "Details of one caption removal task", retry_safe=True),
    Endpoint("caption_removal_delete", "caption_removal", "DELETE", f"{V1}/userCaptionRemoval/{{_id}}", C,
             "Delete a caption removal task", retry_safe=True),
    # --- streaming avatar -----------------------------------------------------------------------
    Endpoint("streaming_avatars", "streaming", "GET", f"{V1}/streaming-avatar/all_avatars", D,
             "List streaming avatars", retry_safe=True, passthrough=False),
    Endpoint("agora_token", "streaming", "POST", f"{V1}/streaming-avatar/agora-token", D,
             "Mint a room: Agora token and channel (charges expire_seconds up front)",
             required={"avatar_id": "str"}, optional={"expire_seconds": "int"}, passthrough=False),
    Endpoint("set_qa_context", "streaming", "POST", f"{V1}/streaming-avatar/set-qa-context", D,
             "Set a room's QA context (at most 5,000 characters)", retry_safe=True,
             required={"channel": "str", "text": "str"}, limits={"text": 5000}, passthrough=False),
    Endpoint("get_qa_context", "streaming", "GET", f"{V1}/streaming-avatar/get-qa-context", G,
             "Read a room's QA context", retry_safe=True, required={"channel": "str"}, passthrough=False),
    Endpoint("ask", "streaming", "POST", f"{V1}/streaming-avatar/ask", D,
             "Ask the avatar; the answer arrives in the Agora channel", required={"channel": "str", "text": "str"},
             passthrough=False),
    Endpoint("speak", "streaming", "POST", f"{V1}/streaming-avatar/speak", C, "Make the avatar say a text",
             required={"channel": "str", "text": "str"}, passthrough=False),
    Endpoint("leave", "streaming", "POST", f"{V1}/streaming-avatar/leave", D,
             "Leave a room (refunds the unused time)", retry_safe=True, required={"channel": "str"}, passthrough=False),
    # --- miscellaneous --------------------------------------------------------------------------
    Endpoint("remaining_coins", "misc", "GET", f"{V1}/user/remainingCoins", C, "Remaining credits",
             retry_safe=True, also=("POST",)),  # some public callers POST it
    Endpoint("exchange_diamonds", "misc", "POST", f"{V1}/user/exchangeDiamonds", D,
             "Buy diamonds with coins, 100 coins each, not refundable (deprecated)", required={"diamonds": "int"},
             rules={"diamonds": {"minimum": 1}}, deprecated=True),
    Endpoint("language_list", "misc", "POST", f"{V1}/anchor/language_list", C, "List available languages",
             retry_safe=True, optional={"voice_map_type": "str", "lang": "str"}),
    Endpoint("save_url", "misc", "POST", f"{V1}/tos/transferToStorage", C, "Copy a URL into A2E's storage",
             retry_safe=True, required={"url": "str"}, rules={"url": {"pattern": "^https?://"}}),
    Endpoint("add_user", "misc", "POST", f"{V1}/user/add", G, "Add a user (sub-account)",
             required={"email": "str"}),  # body unknown (no source at all): only the guessed field is accepted
]
# fmt: on

ENDPOINTS: dict[str, Endpoint] = {row.name: row for row in _ROWS}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(row.group for row in _ROWS))

assert len(ENDPOINTS) == len(_ROWS), "operation names must be unique"
assert all(ENDPOINTS[r.status_op].retry_safe for r in _ROWS if r.status_op), "status ops must be reads"
assert all(p in PATH_PARAM_SHAPES for r in _ROWS for p in r.path_params), "every path parameter needs a shape"
assert not any(set(r.required) & set(r.optional) for r in _ROWS), "a field is required or optional, not both"
assert all(r.method not in r.also and len(set(r.also)) == len(r.also) for r in _ROWS), "also: other methods, once"
assert {k for r in _ROWS for k in (*r.required.values(), *r.optional.values())} <= {
    "str", "int", "number", "bool", "list", "dict", "any"}, "unknown field type"

QA_CONTEXT_LIMIT = ENDPOINTS["set_qa_context"].limits["text"]
"""The longest QA context A2E accepts, in characters (the bridge checks it before calling A2E)."""


def endpoint(name: str) -> Endpoint:
    """The row for ``name``; :class:`A2EUnknownOperation` lists the known names so a typo is easy to fix."""
    try:
        return ENDPOINTS[name]
    except KeyError:
        raise A2EUnknownOperation(f"unknown A2E operation {_shown(name)}; known: {', '.join(sorted(ENDPOINTS))}",
                                  field="operation") from None
