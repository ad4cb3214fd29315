"""``__all__`` of every rtc module is complete, sorted and importable; no SDK import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = ["bridge.rtc", "bridge.rtc.events", "bridge.rtc.reassembler", "bridge.rtc.base", "bridge.rtc.agora",
           "bridge.rtc.agora_sdk", "bridge.rtc.simulated", "bridge.rtc.wire", "bridge.rtc.accesstoken", "bridge.simulator.feed"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    mod = importlib.import_module(name)
    assert list(mod.__all__) == sorted(mod.__all__)
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.{attr}"


def test_importing_rtc_never_imports_agora() -> None:
    code = ("import sys, bridge.rtc, bridge.rtc.agora, bridge.rtc.agora_sdk, bridge.rtc.simulated; "
            "assert 'agora' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_agora_reexports_the_sdk_loader() -> None:
    agora = importlib.import_module("bridge.rtc.agora")
    agora_sdk = importlib.import_module("bridge.rtc.agora_sdk")
    for attr in agora_sdk.__all__:
        assert attr in agora.__all__ and getattr(agora, attr) is getattr(agora_sdk, attr), attr
