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


def test_kiosk_profiles_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_API_KEYS", "acme:k1")
    monkeypatch.setenv("BRIDGE_KIOSK_PROFILES", '{"lobby": {"avatar_id": "a1", "qa_context": "We open at 9.", '
                       '"idle_seconds": 45, "language": "de-DE", "warm_rooms": 2, "tenant": "acme", "brain": "a2e"}}')
    lobby = Settings(_env_file=None).kiosk_profiles["lobby"]
    assert (lobby.avatar_id, lobby.idle_seconds, lobby.language, lobby.warm_rooms, lobby.tenant, lobby.brain) == (
        "a1", 45, "de-DE", 2, "acme", "a2e")
    assert (lobby.prompt_seconds, lobby.watchdog_seconds, lobby.expire_seconds) == (10, 10, None)  # defaults


@pytest.mark.parametrize(("keys", "profiles", "says"), [
    ("", {"bad name!": {"avatar_id": "a"}}, "is not a name"),
    ("", {"lobby": {"avatar_id": "a", "colour": "red"}}, "colour"),  # unknown fields are refused
    ("", {"lobby": {}}, "avatar_id"),
    ("", {"lobby": {"avatar_id": "a", "brain": "gpt"}}, "brain"),  # only the brains this bridge has
    ("", {"lobby": {"avatar_id": "a", "language": "en US"}}, "language"),
    ("", {"lobby": {"avatar_id": "a", "qa_context": "x" * 5001}}, "qa_context"),
    ("", {"lobby": {"avatar_id": "a", "tenant": "acme"}}, "has no key"),  # development mode: all are "dev"
    ("acme:k1", {"lobby": {"avatar_id": "a", "warm_rooms": 1}}, "needs the tenant"),
    ("acme:k1", {"lobby": {"avatar_id": "a", "tenant": "globex"}}, "has no key"),
])
def test_bad_kiosk_profiles_are_refused(keys: str, profiles: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None, api_keys=keys, kiosk_profiles=profiles)
