"""Simulated A2E account and streaming operations (tokens, streaming avatars, miscellaneous); the
media operations are in :mod:`.media`. Importing this module registers every handler."""

from __future__ import annotations

from typing import Any

from bridge.a2e.errors import CODE_INSUFFICIENT_CREDITS

from . import media  # noqa: F401  (registers the media handlers)
from .registry import HANDLERS, Params, handles
from .state import AVATARS, SimError, SimState, object_id

__all__ = ["HANDLERS"]


# -- tokens ---------------------------------------------------------------------------------
@handles("login_token")
def login_token(s: SimState, p: Params) -> Any:
    return {"token": "sim-login-" + object_id()}


@handles("api_token_generate")
def api_token_generate(s: SimState, p: Params) -> Any:
    record = {"_id": object_id(), "alias": p["alias"], "token": "sk_sim_" + object_id()}
    s.assets["api_token"][record["_id"]] = record
    return record


@handles("api_token_list")
def api_token_list(s: SimState, p: Params) -> Any:
    return [{"_id": r["_id"], "alias": r["alias"]} for r in s.assets["api_token"].values()]


@handles("api_token_delete")
def api_token_delete(s: SimState, p: Params) -> Any:
    s.assets["api_token"].pop(p["_id"], None)
    return {}


# -- streaming ------------------------------------------------------------------------------
@handles("streaming_avatars")
def streaming_avatars(s: SimState, p: Params) -> Any:
    return [dict(a) for a in AVATARS]


@handles("agora_token")
def agora_token(s: SimState, p: Params) -> Any:
    return s.mint(p["avatar_id"], p.get("expire_seconds"))


@handles("set_qa_context")
def set_qa_context(s: SimState, p: Params) -> Any:
    s.set_qa_context(p["channel"], p["text"])
    return {}


@handles("get_qa_context")
def get_qa_context(s: SimState, p: Params) -> Any:
    return {"channel": p["channel"], "text": s.room(p["channel"], must_be_open=False).qa_context}


@handles("ask", "speak")
def command(s: SimState, p: Params) -> Any:
    raise AssertionError("ask and speak are handled by the app, which also drives the event feed")


@handles("leave")
def leave(s: SimState, p: Params) -> Any:
    s.leave(p["channel"])
    return {}


# -- miscellaneous --------------------------------------------------------------------------
@handles("remaining_coins")
def remaining_coins(s: SimState, p: Params) -> Any:
    return {"coins": s.coins, "diamonds": s.diamonds}


COINS_PER_DIAMOND = 100  # the seed's worked example: {"diamonds": 1} spends 100 coins, which cannot be had back


@handles("exchange_diamonds")
def exchange_diamonds(s: SimState, p: Params) -> Any:
    """Buy diamonds with coins; too few coins is refused as any short balance is (code 1002)."""
    diamonds = p["diamonds"]
    if diamonds < 1:
        raise SimError(400, f"diamonds must be at least 1, not {diamonds}", http_status=400)
    cost = diamonds * COINS_PER_DIAMOND
    if cost > s.coins:
        raise SimError(CODE_INSUFFICIENT_CREDITS, f"insufficient coins: need {cost}, have {s.coins}")
    s.coins -= cost
    s.diamonds += diamonds
    return {}


@handles("language_list")
def language_list(s: SimState, p: Params) -> Any:
    return [{"value": "en", "label": "English", "children": [{"value": "US", "label": "United States"}]},
            {"value": "zh", "label": "Chinese", "children": [{"value": "CN", "label": "China"}]}]


@handles("save_url")
def save_url(s: SimState, p: Params) -> Any:
    if not str(p["url"]).startswith(("http://", "https://")):
        raise SimError(400, "url must be an http(s) URL")
    return {"url": f"https://sim.a2e.invalid/storage/{object_id()}"}


@handles("add_user")
def add_user(s: SimState, p: Params) -> Any:
    return {"_id": object_id(), "email": p["email"]}
