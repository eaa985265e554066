"""Every Redis client gets the ACL user and TLS from one URL, ``Settings.redis_dsn``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from redis.connection import SSLConnection

from streams._redis_client import redis_client
from streams.exceptions import InfraError
from streams.settings import Settings


def test_the_local_dsn_names_the_acl_user():
    settings = Settings(local_redis_port=26379, redis_password=SecretStr("s3cret"))
    assert settings.redis_dsn == "redis://fraudstream:s3cret@127.0.0.1:26379/0"


def test_user_and_password_are_url_quoted_and_reach_the_client_exactly():
    settings = Settings(redis_username="app@x", redis_password=SecretStr("p@ss:w/rd %"))
    kwargs = redis_client(settings.redis_dsn).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app@x", "p@ss:w/rd %")


def test_tls_makes_every_client_a_verifying_tls_client(tmp_path: Path):
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("x")
    settings = Settings(
        local_redis_port=26380,
        redis_tls=True,
        redis_tls_ca_location=ca,
        redis_tls_cert_location=cert,
        redis_tls_key_location=key,
    )
    assert settings.redis_dsn.startswith("rediss://fraudstream:")
    pool = redis_client(settings.redis_dsn).connection_pool
    assert pool.connection_class is SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        str(ca),
        str(cert),
        str(key),
    )
    assert kwargs.get("ssl_cert_reqs", "required") == "required"


def test_tls_applies_to_an_external_url_too(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = Settings(
        redis_url=SecretStr("redis://app:pw@cache.internal:6380/0"),
        redis_tls=True,
        redis_tls_ca_location=ca,
    )
    parts = urlsplit(settings.redis_dsn)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "rediss",
        "app:pw@cache.internal:6380",
        "/0",
    )
    assert parse_qs(parts.query) == {"ssl_ca_certs": [str(ca)]}


def test_without_tls_an_external_url_is_used_as_given():
    url = "redis://app:pw@cache.internal:6380/0"
    assert Settings(redis_url=SecretStr(url)).redis_dsn == url


def test_a_missing_certificate_file_is_a_clear_error(tmp_path: Path):
    settings = Settings(redis_tls=True, redis_tls_ca_location=tmp_path / "nope.pem")
    with pytest.raises(InfraError, match=r"ssl_ca_certs file .*nope\.pem does not exist"):
        redis_client(settings.redis_dsn)
