"""AccessToken2: known vectors from Agora's own test-suite, round trip, verify."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.rtc.accesstoken import (
    PRIVILEGE_JOIN_CHANNEL,
    ROLE_PUBLISHER,
    ROLE_SUBSCRIBER,
    TokenError,
    build_rtc_token,
    parse_token,
    verify_token,
)

# AgoraIO/Tools DynamicKey/AgoraDynamicKey/python3/test/AccessToken2Test.py (fixed salt and issue time)
APP_ID = "970CA35de60c44645bbae8a215061b33"
APP_CERT = "5CFd2fd1755d40ecb72977518be15d3b"
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
VECTOR_UID = (
    "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcw"
    "Mk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj"
)
VECTOR_UID0 = (
    "007eJxTYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcw"
    "Mk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo="
)


def vector(uid: int) -> str:
    return build_rtc_token(APP_ID, APP_CERT, CHANNEL, uid, ROLE_SUBSCRIBER, 600, issued_at=1111111, salt=1)


@pytest.mark.parametrize(("uid", "expected"), [(2882341273, VECTOR_UID), (0, VECTOR_UID0)])
def test_known_vectors(uid: int, expected: str) -> None:
    assert vector(uid) == expected
    assert verify_token(expected, APP_CERT)


def test_user_account_string_gives_same_token_as_numeric_uid() -> None:
    assert vector("2882341273") == VECTOR_UID  # type: ignore[arg-type]


def test_parse_known_vector() -> None:
    info = parse_token(VECTOR_UID)
    assert info["app_id"] == APP_ID
    assert (info["issue_ts"], info["expire"], info["salt"]) == (1111111, 600, 1)
    assert info["expires_at"] == 1111711
    assert info["rtc"] == {"type": 1, "name": "rtc", "privileges": {PRIVILEGE_JOIN_CHANNEL: 600},
                           "channel": CHANNEL, "uid": "2882341273"}
    assert parse_token(VECTOR_UID0)["rtc"]["uid"] == ""


def test_publisher_privileges_and_roles_by_name() -> None:
    tok = build_rtc_token(APP_ID, APP_CERT, "room", 7, "publisher", 3600, issued_at=10, privilege_expire=60)
    rtc = parse_token(tok)["rtc"]
    assert rtc["privileges"] == {1: 60, 2: 60, 3: 60, 4: 60}
    assert parse_token(build_rtc_token(APP_ID, APP_CERT, "room", 7, ROLE_PUBLISHER, 5))["rtc"] == {
        **rtc, "privileges": {1: 5, 2: 5, 3: 5, 4: 5}}


def test_verify_rejects_wrong_certificate_and_tampering() -> None:
    assert not verify_token(VECTOR_UID, "0" * 32)
    assert not verify_token("garbage", APP_CERT)


@pytest.mark.parametrize("bad", ["", "006abc", "007!!!", "007" + "QUJD", 42])
def test_parse_rejects_malformed(bad: object) -> None:
    with pytest.raises(TokenError):
        parse_token(bad)  # type: ignore[arg-type]


def test_build_rejects_bad_input() -> None:
    with pytest.raises(TokenError):
        build_rtc_token("not-hex", APP_CERT, "c", 1, ROLE_PUBLISHER, 60)
    with pytest.raises(TokenError):
        build_rtc_token(APP_ID, APP_CERT, "c", 1, "king", 60)
    with pytest.raises(TokenError):
        build_rtc_token(APP_ID, APP_CERT, "c", 1, ROLE_PUBLISHER, -1)


hex32 = st.binary(min_size=16, max_size=16).map(bytes.hex)


@given(hex32, hex32, st.text(min_size=1, max_size=64), st.integers(0, 2**32 - 1),
       st.sampled_from([ROLE_PUBLISHER, ROLE_SUBSCRIBER]), st.integers(0, 86400), st.integers(0, 2**32 - 1))
def test_round_trip(app_id: str, cert: str, channel: str, uid: int, role: int, expire: int, ts: int) -> None:
    tok = build_rtc_token(app_id, cert, channel, uid, role, expire, issued_at=ts)
    info = parse_token(tok)
    assert (info["app_id"], info["issue_ts"], info["expire"]) == (app_id, ts, expire)
    assert 1 <= info["salt"] <= 99_999_999
    assert info["rtc"]["channel"] == channel
    assert info["rtc"]["uid"] == ("" if uid == 0 else str(uid))
    assert set(info["rtc"]["privileges"]) == ({1, 2, 3, 4} if role == ROLE_PUBLISHER else {1})
    assert verify_token(tok, cert)
