import pytest
from pydantic import ValidationError

from bridge.settings import Settings, parse_api_keys


def test_api_keys_bind_keys_to_tenants() -> None:
    assert parse_api_keys("acme:key1, globex:key2") == {"key1": "acme", "key2": "globex"}
    assert parse_api_keys("") == {}


@pytest.mark.parametrize("raw", ["acme", "acme:", ":key", "a:k,b:k"])
def test_malformed_api_keys_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_api_keys(raw)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_API_KEYS", "acme:k1")
    monkeypatch.setenv("BRIDGE_IDLE_TIMEOUT", "7.5")
    monkeypatch.setenv("A2E_API_KEY", "sk_secret")
    s = Settings(_env_file=None)
    assert s.api_keys == {"k1": "acme"}
    assert s.idle_timeout == 7.5
    assert not s.uses_simulator and not s.dev_mode
    assert "sk_secret" not in repr(s) and "sk_secret" not in str(s.model_dump())


def test_defaults_fit_a_kiosk_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("A2E_API_KEY", "BRIDGE_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.uses_simulator and s.dev_mode
    assert s.max_rooms_per_tenant >= 20 and s.queue_size >= 64 and s.idle_timeout == 120


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_QUEUE_SIZE", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
