"""The fake SDK keeps the real SDK's names and parameter names (signature-drift guard)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

FAKES = pathlib.Path(__file__).resolve().parents[1] / "fakes"
SNAPSHOT: dict[str, Any] = json.loads((FAKES / "agora_sdk_signatures.json").read_text())
SNAPSHOT.pop("_comment")


@pytest.fixture(autouse=True)
def fake_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    fake = sys.modules.get("agora._fake")
    if fake is not None:
        fake.reset_for_tests()
    for name in [m for m in sys.modules if m == "agora" or m.startswith("agora.")]:
        del sys.modules[name]


def fake_class(qualname: str) -> Any:
    module, _, cls = qualname.rpartition(".")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("qualname", sorted(SNAPSHOT))
def test_fake_matches_real_sdk(qualname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_default_https_context)
    real = SNAPSHOT[qualname]
    cls = fake_class(qualname)
    if "__fields__" in real:
        assert [f.name for f in dataclasses.fields(cls)] == real["__fields__"]
        return
    public = {n: f for n, f in vars(cls).items() if callable(f) and (not n.startswith("_") or n in real)}
    assert public, qualname
    for name, fn in public.items():
        assert name in real, f"{qualname}.{name} does not exist in the real SDK"
        params = [p for p in inspect.signature(fn).parameters][1:]
        assert params == real[name], f"{qualname}.{name}"


def test_adapter_callbacks_have_the_real_arity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK calls observers positionally: every override must take the real number of arguments."""
    import bridge.rtc.agora as agora_mod
    import bridge.rtc.agora_sdk as agora_sdk_mod

    monkeypatch.setattr(agora_sdk_mod, "_sdk_cache", None)
    bridge_cls = agora_mod._bridge_class(agora_mod.load_agora_sdk())
    interfaces = {**SNAPSHOT["agora.rtc.rtc_connection_observer.IRTCConnectionObserver"],
                  **SNAPSHOT["agora.rtc.local_user_observer.IRTCLocalUserObserver"]}
    overrides = [n for n in vars(bridge_cls) if n.startswith("on_")]
    assert "on_stream_message" in overrides
    for name in overrides:
        params = list(inspect.signature(getattr(bridge_cls, name)).parameters)[1:]
        assert len(params) == len(interfaces[name]), name
