import pytest

from bridge.errors import Unauthorized
from bridge.http.auth import Authenticator


def make(**kw: object) -> Authenticator:
    return Authenticator({"k1": "acme"}, dev_mode=False, ticket_ttl=60, **kw)  # type: ignore[arg-type]


def test_ticket_round_trip_binds_room_and_tenant() -> None:
    auth = make()
    ticket = auth.issue_ticket("rm_1", "acme", now=1000)
    assert auth.check_ticket(ticket, "rm_1", now=1030).tenant == "acme"


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t, "another room"),
    (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "invalid"),
    (lambda t: "garbage", "malformed"),
])
def test_bad_tickets_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    auth = make()
    ticket = mutate(auth.issue_ticket("rm_1", "acme", now=1000))
    room = "rm_2" if message == "another room" else "rm_1"
    with pytest.raises(Unauthorized, match=message):
        auth.check_ticket(ticket, room, now=1001)


def test_expired_ticket_is_refused() -> None:
    auth = make()
    ticket = auth.issue_ticket("rm_1", "acme", now=1000)
    with pytest.raises(Unauthorized, match="expired"):
        auth.check_ticket(ticket, "rm_1", now=1061)


def test_tickets_from_another_process_secret_are_refused() -> None:
    ticket = make().issue_ticket("rm_1", "acme", now=1000)
    with pytest.raises(Unauthorized):
        make().check_ticket(ticket, "rm_1", now=1001)
    shared = b"s" * 32
    assert make(ticket_secret=shared).check_ticket(
        make(ticket_secret=shared).issue_ticket("rm_1", "acme", now=1000), "rm_1", now=1001).tenant == "acme"


def test_keys_map_to_tenants_and_unknown_keys_do_not() -> None:
    auth = make()
    assert auth.tenant_for_key("k1") == "acme"
    assert auth.tenant_for_key("k2") is None
    assert auth.tenant_for_key(None) is None
