"""Test controls and call log of the fake SDK (not part of the real package).

``calls`` records every SDK call as ``(kind, object_id, method, args)`` in the
order it happened, across services and connections. ``callback_errors``
collects exceptions raised by observer callbacks, which the real ctypes layer
prints and swallows.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("agora.fake")

calls: list[tuple[str, int, str, tuple[Any, ...]]] = []
callback_errors: list[BaseException] = []
errors_after_release: list[str] = []
services: list[Any] = []
connections: list[Any] = []
# (token, channel, user_id) -> bool; None accepts every token
token_rule: Callable[[str, str, str], bool] | None = None
# decimal uids already broadcasting in every channel (announced by on_user_joined)
remote_users: list[str] = []
# True: connect() returns 0 and no callback ever follows (network black hole)
silent_connect = False
native_service_inited = False
_lock = threading.Lock()


def reset_for_tests() -> None:
    """Forget everything; stop leftover event threads."""
    global token_rule, native_service_inited, silent_connect
    for conn in list(connections):
        conn._events.stop()
    calls.clear()
    callback_errors.clear()
    errors_after_release.clear()
    services.clear()
    connections.clear()
    remote_users.clear()
    token_rule = None
    silent_connect = False
    native_service_inited = False


def record(kind: str, oid: int, method: str, *args: Any) -> None:
    with _lock:
        calls.append((kind, oid, method, args))


def methods(kind: str | None = None, oid: int | None = None) -> list[str]:
    with _lock:
        return [m for k, o, m, _ in calls if (kind is None or k == kind) and (oid is None or o == oid)]


def invoke(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an observer the way ctypes does: exceptions are logged and swallowed."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001
        callback_errors.append(e)
        logger.exception("Exception ignored on calling ctypes callback function")
        return 0


class EventThread:
    """One 'native' thread delivering callbacks in FIFO order."""

    def __init__(self, name: str) -> None:
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    def submit(self, fn: Callable[[], None]) -> None:
        self._q.put(fn)

    def _run(self) -> None:
        while True:
            fn = self._q.get()
            try:
                if fn is None:
                    return
                fn()
            finally:
                self._q.task_done()

    def wait_idle(self) -> None:
        self._q.join()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=5)
