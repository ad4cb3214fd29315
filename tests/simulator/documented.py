"""A2E's documented answers, copied from A2E's pages as ``../shared/notes/a2e-api-*.md`` records them
(values elided there with "…" are kept as such): the contract the simulator is held to.

Each :class:`Documented` says whether the page lists every field (``complete``: the simulator answers
exactly these keys) or shows only some (``…`` in the example: it answers at least these), and which
fields the page types more loosely than its example shows (``also``: e.g. ``error_code`` "int or
null"). Types are JSON's: the simulator's value must have the example value's type, or one in ``also``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Documented:
    operation: str
    example: dict[str, Any]  # the whole envelope, as documented
    source: str  # where in the notes
    complete: bool = True
    also: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> other JSON types allowed


EXAMPLES: list[Documented] = [
    # -- streaming and account (a2e-api-streaming.md) ------------------------------------------------------------
    Documented("agora_token", {"code": 0, "data": {
        "token": "<agora rtc token>", "appId": "<agora app id>", "channel": "<channel name>", "uid": 123456,
        "expire_epoch_timestamp": 1735000000, "expire_date_UTC": "<UTC date string>"}, "trace_id": "<uuid>"},
        "2.2 Get a Streaming Avatar Token"),
    Documented("ask", {"code": 0, "data": {}, "trace_id": "9c8fd69b-80d0-4f8a-a119-941ed78d4960"},
               "2.5 Ask a Question to the Avatar"),
    Documented("api_token_generate", {"code": 0, "data": {"_id": "<token id>", "token": "<api token>"}},
               "1.2 Get API token (other data fields may exist)", complete=False),
    Documented("remaining_coins", {"code": 0, "data": {"coins": 1293, "diamonds": 3}},
               "3.2 Get User Remaining Credits"),
    Documented("exchange_diamonds", {"code": 0, "data": {}}, "3.3 Exchange Diamonds (the seed's worked example)"),
    Documented("save_url", {"code": 0, "data": {"url": "<A2E-hosted url>"}}, "3.5 Save URL to A2E's storage"),
    Documented("language_list", {"code": 0, "data": [
        {"value": "en", "label": "English", "children": [{"value": "US", "label": "United States"}]}]},
        "3.4 List Available Languages"),
    # -- face swap (a2e-api-media.md §2) -------------------------------------------------------------------------
    Documented("face_swap_image_add", {"code": 0, "data": [
        {"face_url": "https://…/ab2f….jpg", "_id": "6673bee3e7aea87e7bcddd5d",
         "createdAt": "2024-06-20T05:32:19.714Z", "updatedAt": "2024-06-20T05:32:19.714Z"}]},
        "2.1 Add Face Swap Image"),
    Documented("face_swap_preview_add", {"code": 0, "data": {
        "video_url": "https://…/x.jpeg", "face_url": "https://…/f.jpg", "current_status": "initialized",
        "result_url": "", "_id": "66…", "user_id": "63…"}},
        "2.4 Add User Face Swap Preview (error_code and faild_message once it failed)"),
    Documented("face_swap_task_add", {"code": 0, "data": {
        "name": "xxxx", "video_url": "https://…mp4", "duration": 6, "face_url": "https://…jpg",
        "current_status": "initialized", "result_url": "", "error_code": "", "faild_message": "",
        "_id": "6674f1765699df7e9d25311a", "createdAt": "…", "updatedAt": "…"}},
        "2.6 Add User Face Swap Task"),
    Documented("face_swap_task_status", {"code": 0, "data": [
        {"current_status": "processing", "result_url": "", "error_code": None, "faild_message": None,
         "_id": "6674f21f68d5dc7e6efd342a"}]},
        "2.7 Get Status of Face Swap Task (error_code int or null)",
        also={"error_code": ("int",), "faild_message": ("str",)}),
    Documented("face_swap_task_list", {"code": 0, "data": {"rows": [
        {"name": "xxxx", "video_url": "https://…mp4", "duration": 6, "face_url": "https://…jpg",
         "current_status": "completed", "result_url": "https://…mp4", "error_code": "0", "faild_message": None,
         "_id": "6674f1765699df7e9d25311a", "createdAt": "…", "updatedAt": "…", "initialized_time": "…",
         "processing_time": "…", "completed_time": "…"}], "count": 1}},
        "2.8 Get Face Swap Task Records (14 fields; error_code \"0\" on success, faild_message null)"),
    # -- avatar videos (a2e-api-tts-video-avatars.md §2.4) -------------------------------------------------------
    Documented("video_status", {"code": 0, "data": [
        {"_id": "…", "msg": "", "result": "https://…mp4", "process": 100, "status": "success", "anchor_type": "0",
         "web_bg_width": 0, "web_bg_height": 0, "color": "", "result_people_url": "", "result_bg_url": "",
         "anchor_id": "…", "replace_bg_id": "", "custom_backs_id": None, "createdAt": "…", "diff_s": 42,
         "current_date": "…"}]},
        "2.4 Obtain the Status of One Avatar Video Task (17 fields; custom_backs_id null)",
        also={"custom_backs_id": ("str",)}),
    # -- image to video (a2e-api-media.md §4) --------------------------------------------------------------------
    Documented("image_to_video_start", {"code": 0, "data": {
        "_id": "67d29023dd27a536fdf6e809", "name": "Test name", "image_url": "https://…png", "prompt": "…",
        "negative_prompt": "…", "current_status": "sent", "coins": 100, "createdAt": "2025-03-13T07:58:27.863Z",
        "failed_message": ""}}, "4.1 Start Image-to-Video (\"…\": more fields)", complete=False),
    Documented("image_to_video_get", {"code": 0, "data": {
        "_id": "67d29023dd27a536fdf6e809", "name": "Test name", "image_url": "https://…png", "prompt": "…",
        "negative_prompt": "…", "current_status": "completed", "coins": 100, "createdAt": "2025-03-13T07:58:27.863Z",
        "failed_message": "", "failed_code": "", "result_url": "https://…mp4"}, "trace_id": "…"},
        "4.2 Check Status of One Task"),
]


def json_type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            type(None): "null"}[type(value)]


def mismatches(documented: Any, answered: Any, also: dict[str, tuple[str, ...]], complete: bool,
               where: str = "data") -> list[str]:
    """Where ``answered`` departs from the documented shape: missing or extra keys, other JSON types;
    lists are compared element by element with the documented first element."""
    if isinstance(documented, list):
        if not isinstance(answered, list):
            return [f"{where}: a {json_type(answered)}, documented a list"]
        if not documented:
            return []
        return [m for i, item in enumerate(answered) for m in mismatches(documented[0], item, also, complete,
                                                                         f"{where}[{i}]")]
    if isinstance(documented, dict):
        if not isinstance(answered, dict):
            return [f"{where}: a {json_type(answered)}, documented an object"]
        problems = [f"{where}: no {k!r}" for k in documented if k not in answered]
        if complete:
            problems += [f"{where}: {k!r} is not documented" for k in answered if k not in documented]
        for key, value in documented.items():
            if key in answered:
                problems += mismatches(value, answered[key], also, complete, f"{where}.{key}") if isinstance(
                    value, (dict, list)) else _type_problem(key, value, answered[key], also, f"{where}.{key}")
        return problems
    return []


def _type_problem(key: str, documented: Any, answered: Any, also: dict[str, tuple[str, ...]], where: str) -> list[str]:
    allowed = {json_type(documented), *also.get(key, ())}
    return [] if json_type(answered) in allowed else [f"{where}: a {json_type(answered)}, documented {sorted(allowed)}"]
