"""Agora adapter against the fake SDK in tests/fakes/agora (real SDK not installable here)."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import bridge.rtc.agora as agora_mod
import bridge.rtc.agora_sdk as agora_sdk_mod
from bridge.rtc.accesstoken import ROLE_SUBSCRIBER, build_rtc_token, parse_token
from bridge.rtc.agora import (
    AgoraJoinError,
    AgoraObserver,
    AgoraSubscription,
    AgoraUnavailable,
    AppIdMismatch,
    agora_available,
    load_agora_sdk,
)
from bridge.rtc.base import ObserveTarget, RoomObserver, Subscription
from bridge.rtc.events import AudioStarted, AudioStopped, ChannelEvent, StreamMessage
from tests.helpers import poll

FAKES = pathlib.Path(__file__).resolve().parents[1] / "fakes"
APP_ID = "970CA35de60c44645bbae8a215061b33"
APP_CERT = "5CFd2fd1755d40ecb72977518be15d3b"
AVATAR = 1001
TIMEOUT = 5.0


def _purge_agora() -> None:
    for name in [m for m in sys.modules if m == "agora" or m.startswith("agora.")]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def isolated_sdk_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh import cache, process service and TLS default for every test."""
    _purge_agora()
    saved_tls = ssl._create_default_https_context
    monkeypatch.setattr(agora_sdk_mod, "_sdk_cache", None)
    monkeypatch.setattr(agora_mod, "_service", agora_mod._ProcessService())
    yield
    fake = sys.modules.get("agora._fake")
    if fake is not None:
        fake.reset_for_tests()
    _purge_agora()
    ssl._create_default_https_context = saved_tls


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(FAKES))
    load_agora_sdk()
    import agora._fake as fake_mod  # type: ignore[import-not-found]

    return fake_mod


@pytest.fixture
async def observer(fake: Any) -> AsyncIterator[AgoraObserver]:
    obs = AgoraObserver(connect_timeout=TIMEOUT, close_timeout=TIMEOUT, silence_s=0.05)
    yield obs
    await obs.aclose()


def target(channel: str = "room1", uid: int = 42, avatar_uid: int | None = None,
           token: str | None = "tok") -> ObserveTarget:
    return ObserveTarget(app_id=APP_ID, channel=channel, token=token, uid=uid, avatar_uid=avatar_uid)


async def take(sub: Subscription, n: int) -> list[ChannelEvent]:
    async def go() -> list[ChannelEvent]:
        return [await sub.__anext__() for _ in range(n)]

    return await asyncio.wait_for(go(), TIMEOUT)


def conn_of(fake: Any, i: int = 0) -> Any:
    return fake.connections[i]


# --- import guard ------------------------------------------------------------------


def make_pkg(root: pathlib.Path, init: str, native: bool = True) -> None:
    pkg = root / "agora"
    (pkg / "agora_sdk").mkdir(parents=True)
    (pkg / "rtc").mkdir()
    (pkg / "__init__.py").write_text(init)
    (pkg / "rtc" / "__init__.py").write_text("")
    if native:
        (pkg / "version.txt").write_text("x")
        (pkg / "agora_sdk" / "libagora_rtc_sdk.so").write_text("x")


def test_import_calling_sys_exit_is_contained(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    make_pkg(tmp_path, "import ssl, sys\nssl._create_default_https_context = ssl._create_unverified_context\n"
                       "sys.exit(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = ssl._create_default_https_context
    with caplog.at_level(logging.WARNING, logger="bridge.rtc.agora"):
        assert agora_available() is False
    assert ssl._create_default_https_context is before
    assert "restored" in caplog.text
    # the guard's messages keep the observer module's logger name (log filters rely on it)
    assert any(r.name == "bridge.rtc.agora" and "restored" in r.getMessage() for r in caplog.records)
    assert "agora" not in sys.modules
    with pytest.raises(AgoraUnavailable, match="SystemExit"):
        load_agora_sdk()


def test_import_raising_error_is_contained(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pkg(tmp_path, "raise OSError('no network: download.agora.io')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert agora_available() is False


def test_refuses_to_import_without_native_libraries(tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "executed"
    make_pkg(tmp_path, f"open({str(marker)!r}, 'w').close()\n", native=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AgoraUnavailable, match="native libraries absent"):
        load_agora_sdk()
    assert not marker.exists() and "agora" not in sys.modules


def test_not_installed() -> None:
    assert agora_available() is False


async def test_observe_raises_unavailable_without_sdk() -> None:
    with pytest.raises(AgoraUnavailable):
        await AgoraObserver().observe(target())


def test_fake_sdk_loads_and_tls_default_is_restored(fake: Any) -> None:
    assert agora_available() is True
    assert ssl._create_default_https_context is not ssl._create_unverified_context


# --- receiving -------------------------------------------------------------------------


async def test_observer_satisfies_protocols(observer: AgoraObserver) -> None:
    assert isinstance(observer, RoomObserver) and observer.name == "agora"
    async with await observer.observe(target()) as sub:
        assert isinstance(sub, Subscription)


async def test_receive_only_setup(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target(uid=42, token="tok-1"))
    assert sub.local_uid == "42"
    conn = conn_of(fake)
    create = next(c for c in fake.calls if c[2] == "create_rtc_connection")
    conn_cfg, pub_cfg = create[3]
    assert conn_cfg.client_role_type == 2 and conn_cfg.auto_subscribe_video == 0
    assert conn_cfg.auto_subscribe_audio == 1
    assert not pub_cfg.is_publish_audio and not pub_cfg.is_publish_video
    assert pub_cfg.audio_scenario == 0
    seq = fake.methods("conn", conn.conn_handle)
    assert seq.index("register_observer") < seq.index("connect")
    assert seq.index("register_local_user_observer") < seq.index("connect")
    assert ("conn", conn.conn_handle, "connect", ("tok-1", "room1", "42")) in fake.calls
    assert conn.local_user.volume_indication is not None
    assert not conn.local_user.subscribed_video
    await sub.aclose()
    assert fake.callback_errors == []  # e.g. the aiqos TypeError pitfall


async def test_events_from_foreign_thread_arrive_in_order(observer: AgoraObserver, fake: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen_threads: set[int] = set()
    original = AgoraSubscription._on_sdk

    def spy(self: AgoraSubscription, kind: str, *args: Any) -> None:
        seen_threads.add(threading.get_ident())
        original(self, kind, *args)

    monkeypatch.setattr(AgoraSubscription, "_on_sdk", spy)
    sub = await observer.observe(target())
    remote = conn_of(fake).remote
    payloads = [f'{{"type":"QA","message":"m{i}"}}'.encode() for i in range(50)]
    for p in payloads:
        remote.send_stream_message(str(AVATAR), p)
    remote.send_stream_message(str(AVATAR), '{"legacy":"str payload"}')  # pre-2.3 SDKs passed str
    events = await take(sub, 51)
    assert events[:50] == [StreamMessage(AVATAR, p, 1) for p in payloads]
    assert events[50] == StreamMessage(AVATAR, b'{"legacy":"str payload"}', 1)
    assert remote.thread_ident not in (None, threading.get_ident())
    assert seen_threads == {threading.get_ident()}  # every callback was hopped onto the loop thread
    await sub.aclose()


async def test_speaking_from_volume_indications(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target(uid=42))
    remote = conn_of(fake).remote
    remote.volume([("0", 200), ("42", 200)])  # ourselves: never reported
    remote.volume([(str(AVATAR), 3)])  # below threshold
    remote.volume([(str(AVATAR), 120)])
    assert await take(sub, 2) == [AudioStarted(AVATAR), AudioStopped(AVATAR)]  # stop after silence_s
    remote.volume([(str(AVATAR), 120)])
    remote.audio_state(str(AVATAR), 0)
    remote.volume([(str(AVATAR), 120)])
    remote.leave(str(AVATAR))
    assert await take(sub, 4) == [AudioStarted(AVATAR), AudioStopped(AVATAR)] * 2
    await sub.aclose()


async def test_avatar_uid_filters_other_users(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target(avatar_uid=AVATAR))
    remote = conn_of(fake).remote
    remote.send_stream_message("7", b"other")
    remote.send_stream_message("not-a-number", b"bad")
    remote.volume([("7", 200)])
    remote.send_stream_message(str(AVATAR), b"mine")
    assert await take(sub, 1) == [StreamMessage(AVATAR, b"mine", 1)]
    assert sub.filtered == 3
    await sub.aclose()


async def test_backpressure_drops_oldest_and_counts(fake: Any) -> None:
    obs = AgoraObserver(queue_size=4, connect_timeout=TIMEOUT)
    sub = await obs.observe(target())
    remote = conn_of(fake).remote
    for i in range(20):
        remote.send_stream_message(str(AVATAR), b"%d" % i)
    await asyncio.to_thread(remote.wait_idle)
    await poll(lambda: sub.dropped == 16, TIMEOUT, interval=0.005)  # counted on the fake SDK's thread
    assert [e.data for e in await take(sub, 4)] == [b"16", b"17", b"18", b"19"]  # type: ignore[union-attr]
    await obs.aclose()


# --- teardown and lifecycle ---------------------------------------------------------------


async def test_close_disconnects_then_releases_once(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target())
    conn = conn_of(fake)
    handle = conn.conn_handle
    await asyncio.gather(sub.aclose(), sub.aclose())
    await sub.aclose()
    seq = fake.methods("conn", handle)
    assert seq[-2:] == ["disconnect", "release"] and seq.count("release") == 1
    assert fake.errors_after_release == []
    assert [e async for e in sub] == []
    assert sub.end_reason == "closed"


async def test_queued_messages_after_close_are_not_delivered(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target())
    conn_of(fake).remote.send_stream_message(str(AVATAR), b"late")
    await sub.aclose()
    assert [e async for e in sub] == []


async def test_observer_close_releases_subscriptions_and_service(fake: Any) -> None:
    obs = AgoraObserver(connect_timeout=TIMEOUT)
    subs = [await obs.observe(target(channel=f"c{i}")) for i in range(3)]
    await obs.aclose()
    await obs.aclose()
    assert all(s.ended for s in subs)
    released = [m for k, _, m, _ in fake.calls if k == "conn" and m == "release"]
    assert len(released) == 3
    assert fake.methods("service")[-1] == "release"
    assert not fake.native_service_inited
    assert fake.errors_after_release == []


async def test_one_service_per_process(fake: Any) -> None:
    a, b = AgoraObserver(connect_timeout=TIMEOUT), AgoraObserver(connect_timeout=TIMEOUT)
    await a.observe(target(channel="x"))
    await b.observe(target(channel="y", uid=43))
    await a.observe(target(channel="z", uid=44))
    assert len(fake.services) == 1
    assert fake.methods("service").count("initialize") == 1
    with pytest.raises(AppIdMismatch):
        await AgoraObserver().observe(ObserveTarget("0" * 32, "w", None, 1))
    await a.aclose()
    assert fake.native_service_inited  # b still uses it
    await b.aclose()
    assert not fake.native_service_inited
    c = AgoraObserver(connect_timeout=TIMEOUT)  # a later observer gets a fresh service
    await c.observe(target())
    assert len(fake.services) == 2
    await c.aclose()


async def test_invalid_token_raises_join_error_and_releases(observer: AgoraObserver, fake: Any) -> None:
    def rule(token: str, channel: str, uid: str) -> bool:
        rtc = parse_token(token)["rtc"]
        return bool(rtc) and rtc["channel"] == channel and rtc["uid"] in ("", uid)

    fake.token_rule = rule
    wrong = build_rtc_token(APP_ID, APP_CERT, "other-room", 42, ROLE_SUBSCRIBER, 600)
    with pytest.raises(AgoraJoinError) as info:
        await observer.observe(target(token=wrong))
    assert info.value.reason == 8
    assert fake.methods("conn")[-2:] == ["disconnect", "release"]
    assert conn_of(fake)._released
    good = build_rtc_token(APP_ID, APP_CERT, "room1", 0, ROLE_SUBSCRIBER, 600)  # wildcard uid
    sub = await observer.observe(target(token=good))
    await sub.aclose()


async def test_connect_timeout(fake: Any) -> None:
    fake.silent_connect = True
    obs = AgoraObserver(connect_timeout=0.1, close_timeout=0.1)
    with pytest.raises(AgoraJoinError, match="timed out"):
        await obs.observe(target())
    assert fake.methods("conn")[-1] == "release"
    await obs.aclose()


async def test_token_expiry_ends_subscription(observer: AgoraObserver, fake: Any) -> None:
    sub = await observer.observe(target())
    conn = conn_of(fake)
    handle = conn.conn_handle
    conn.remote.send_stream_message(str(AVATAR), b"before")
    conn.remote.expire_token()
    assert [e async for e in sub] == [StreamMessage(AVATAR, b"before", 1)]
    assert "reason 9" in (sub.end_reason or "")
    await sub.aclose()
    seq = fake.methods("conn", handle)
    assert seq[-1] == "release" and "disconnect" not in seq


async def test_same_uid_login_kicks_first(observer: AgoraObserver, fake: Any) -> None:
    first = await observer.observe(target(uid=42))
    second = await observer.observe(target(uid=42))
    assert [e async for e in first] == []
    assert "reason 19" in (first.end_reason or "")
    await first.aclose()
    await second.aclose()
    assert fake.errors_after_release == []
