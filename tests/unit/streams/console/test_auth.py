"""Sign-in checks against argon2 hashes (no password in settings) and the CSRF token helpers."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

from streams.console import Analysts, _auth, hash_password
from streams.console._auth import csrf_token, valid_csrf


@pytest.fixture(scope="module")
def analysts() -> Analysts:
    return Analysts({"alice": SecretStr(hash_password("correct horse")), "bob": SecretStr("x")})


def test_the_hash_is_argon2id_and_never_holds_the_password() -> None:
    hashed = hash_password("correct horse")

    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert hash_password("correct horse") != hashed  # salted


def test_the_right_password_signs_in_and_a_wrong_one_does_not(analysts: Analysts) -> None:
    assert analysts.verify("alice", "correct horse")
    assert not analysts.verify("alice", "correct horse ")
    assert not analysts.verify("alice", "")
    assert not analysts.verify("Alice", "correct horse")  # names are exact


def test_a_malformed_stored_hash_refuses_instead_of_raising(analysts: Analysts) -> None:
    assert not analysts.verify("bob", "x")


class _SpyHasher(PasswordHasher):
    """Records which hashes were checked; with ``accept`` every check succeeds."""

    def __init__(self, accept: bool) -> None:
        super().__init__()
        self.accept = accept
        self.checked: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.checked.append(str(hash))
        return True if self.accept else super().verify(hash, password)


@pytest.mark.parametrize("accept", [False, True])
def test_an_unknown_name_costs_one_hash_check_and_is_refused(
    monkeypatch: pytest.MonkeyPatch, analysts: Analysts, accept: bool
) -> None:
    spy = _SpyHasher(accept)
    monkeypatch.setattr(_auth, "_HASHER", spy)

    # Even a check that passes (the decoy's password guessed) does not sign anyone in.
    assert not analysts.verify("mallory", "anything")
    assert len(spy.checked) == 1
    assert spy.checked[0] == _auth._decoy_hash()
    assert spy.checked[0].startswith("$argon2id$")


def test_no_accounts_is_falsy_and_refuses_everyone() -> None:
    nobody = Analysts({})

    assert not nobody
    assert not nobody.verify("alice", "correct horse")


def test_the_csrf_token_is_made_once_per_session() -> None:
    session: dict[str, Any] = {}
    token = csrf_token(session)

    assert len(token) >= 32
    assert csrf_token(session) == token
    assert session == {"csrf": token}
    assert csrf_token({}) != token


def test_a_non_string_token_in_the_session_is_replaced() -> None:
    session: dict[str, Any] = {"csrf": 12345}

    token = csrf_token(session)

    assert isinstance(token, str)
    assert session["csrf"] == token


def test_only_the_sessions_own_token_is_valid() -> None:
    session: dict[str, Any] = {}
    token = csrf_token(session)
    other = csrf_token({})

    assert valid_csrf(session, token)
    assert not valid_csrf(session, other)
    assert not valid_csrf(session, token[:-1])
    assert not valid_csrf(session, "")
    assert not valid_csrf(session, None)
    assert not valid_csrf(session, [token])
    assert not valid_csrf({}, token)  # no token issued: nothing is valid
