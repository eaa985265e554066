"""Who may use the console, and proof that a form came from the console's own page.

Analysts sign in with a name and a password checked against an argon2id hash from the
settings (``FRAUD_CONSOLE_ANALYSTS``): the settings hold no password, and a leaked
settings file does not hand out sign-ins. The signed session cookie then carries the
analyst's name, which every label records as ``analyst_id``.

Forms are protected against cross-site request forgery by a synchronizer token: a random
token lives in the (signed, SameSite=strict) session and every POST must echo it in the
form. A page on another site can make the browser send the cookie, never read the token.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, MutableMapping
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

__all__ = ["Analysts", "csrf_token", "hash_password", "valid_csrf"]

#: argon2id with the library's defaults (RFC 9106's low-memory profile).
_HASHER = PasswordHasher()
_CSRF_KEY = "csrf"


def hash_password(password: str) -> str:
    """The argon2id hash to put in ``FRAUD_CONSOLE_ANALYSTS`` for ``password``."""
    return _HASHER.hash(password)


@cache
def _decoy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


class Analysts:
    """The analysts allowed to sign in, by name, with their password hashes."""

    def __init__(self, hashes: Mapping[str, SecretStr]) -> None:
        self._hashes = {name: hashed.get_secret_value() for name, hashed in hashes.items()}

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __contains__(self, name: object) -> bool:
        return name in self._hashes

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; an unknown name costs the same hash check."""
        hashed = self._hashes.get(name)
        try:
            return _HASHER.verify(hashed or _decoy_hash(), password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def valid_csrf(session: Mapping[str, Any], submitted: object) -> bool:
    """Whether a form echoed the session's token (constant-time comparison)."""
    expected = session.get(_CSRF_KEY)
    return (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and secrets.compare_digest(expected.encode(), submitted.encode())
    )
