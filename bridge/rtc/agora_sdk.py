"""Loading the Agora Python Server SDK safely, and the one thread SDK calls run on.

Why it looks like this (see shared notes ``agora.md``):

* ``import agora`` has side effects: it may ``rm -rf`` and re-download its
  native libraries, call ``sys.exit(1)``, and it turns off TLS verification
  for urllib process-wide. So the SDK is imported lazily, in one guarded
  function, only if its native libraries are already installed, and the TLS
  default is restored afterwards. The outcome is cached per process.
* SDK calls are serialised on one dedicated executor thread, never on the
  event loop and never inside an SDK callback.

:mod:`bridge.rtc.agora` (the room observer) re-exports the public names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import logging
import pathlib
import ssl
import sys
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from .base import ObserverUnavailable

__all__ = ["AgoraUnavailable", "agora_available", "load_agora_sdk"]

# Named after the observer module these messages came from, so log filters keep matching.
log = logging.getLogger("bridge.rtc.agora")
T = TypeVar("T")


class AgoraUnavailable(ObserverUnavailable):
    """The SDK is not installed, has no native libraries, or failed to import."""


# --- guarded SDK import ---------------------------------------------------------

_SDK_MODULES = {
    "agora_service": "agora.rtc.agora_service",
    "agora_base": "agora.rtc.agora_base",
    "rtc_connection_observer": "agora.rtc.rtc_connection_observer",
    "local_user_observer": "agora.rtc.local_user_observer",
}
_sdk_lock = threading.Lock()
_sdk_cache: SimpleNamespace | AgoraUnavailable | None = None


def _import_sdk() -> SimpleNamespace:
    spec = importlib.util.find_spec("agora")  # does not execute agora/__init__.py
    if spec is None or not spec.submodule_search_locations:
        raise AgoraUnavailable("agora-python-server-sdk is not installed")
    pkg = pathlib.Path(next(iter(spec.submodule_search_locations)))
    if not (pkg / "agora_sdk" / "libagora_rtc_sdk.so").exists() or not (pkg / "version.txt").exists():
        raise AgoraUnavailable(f"agora native libraries absent under {pkg}; refusing to import "
                               "(the import would delete and re-download them)")
    saved = ssl._create_default_https_context
    try:
        mods = {name: importlib.import_module(path) for name, path in _SDK_MODULES.items()}
    except BaseException as e:  # SystemExit from sys.exit(1) in the SDK's __init__
        if isinstance(e, KeyboardInterrupt):
            raise
        for name in [m for m in sys.modules if m == "agora" or m.startswith("agora.")]:
            del sys.modules[name]  # no half-imported SDK left behind
        raise AgoraUnavailable(f"importing agora failed: {e!r}") from e
    finally:
        if ssl._create_default_https_context is not saved:
            log.warning("agora SDK import replaced ssl._create_default_https_context "
                        "(disables TLS verification); restored it")
            ssl._create_default_https_context = saved
    base = mods["agora_base"]
    return SimpleNamespace(
        AgoraService=mods["agora_service"].AgoraService,
        IRTCConnectionObserver=mods["rtc_connection_observer"].IRTCConnectionObserver,
        IRTCLocalUserObserver=mods["local_user_observer"].IRTCLocalUserObserver,
        **{n: getattr(base, n) for n in (
            "AgoraServiceConfig", "RTCConnConfig", "RtcConnectionPublishConfig", "AudioSubscriptionOptions",
            "ClientRoleType", "ChannelProfileType", "AudioScenarioType", "AudioPublishType",
            "VideoPublishType")},
    )


def load_agora_sdk(*, refresh: bool = False) -> SimpleNamespace:
    """Import the SDK once per process (guarded) and return its namespace.

    Raises:
        AgoraUnavailable: not installed, native libraries missing, or the import failed
            (including ``sys.exit`` inside the SDK). The outcome is cached unless ``refresh``.
    """
    global _sdk_cache
    with _sdk_lock:
        if _sdk_cache is None or refresh:
            try:
                _sdk_cache = _import_sdk()
            except AgoraUnavailable as e:
                _sdk_cache = e
        if isinstance(_sdk_cache, AgoraUnavailable):
            raise _sdk_cache
        return _sdk_cache


def agora_available() -> bool:
    """True if the Agora SDK can be imported (never crashes the process)."""
    try:
        load_agora_sdk()
    except AgoraUnavailable as e:
        log.info("agora observer unavailable: %s", e)
        return False
    return True


# --- one thread for SDK calls ----------------------------------------------------------

_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _sdk_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _sdk_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agora-sdk")
        return _executor


async def _run(fn: Callable[..., T], *args: Any) -> T:
    """Run an SDK call on the single SDK thread (serialised, off the loop)."""
    return await asyncio.get_running_loop().run_in_executor(_sdk_executor(), fn, *args)
