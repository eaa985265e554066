"""`infra up / status / down` against real servers, on an instance of their own.

The session's `servers` keep running on the default ports; these tests start a second
Kafka and Redis with a temporary state dir and other ports (the jar cache is shared), so
stopping them cannot disturb the other integration tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.cli._infra import infra_app
from streams.infra import infra_down, infra_status, infra_up
from streams.infra._process import port_is_open
from streams.settings import Settings, get_settings

pytestmark = pytest.mark.integration

KAFKA_PORT, REDIS_PORT = 29092, 26379
PASSWORD = 'p@ss "w0rd" \\ ü'  # exercises redis.conf quoting against the real server
FRAUDSTREAM = str(Path(sys.executable).with_name("fraudstream"))


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("infra") / ".fraudstream",
        local_kafka_port=KAFKA_PORT,
        local_redis_port=REDIS_PORT,
        redis_password=SecretStr(PASSWORD),
        kafka_bootstrap=None,
        redis_url=None,
    )
    yield settings
    infra_down(settings)  # whatever a failed test left behind


@pytest.fixture
def instance_env(instance: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment that makes the CLI (which reads settings from it) use `instance`."""
    env = {
        "FRAUD_STATE_DIR": str(instance.state_dir),
        "FRAUD_CACHE_DIR": str(instance.cache_dir),
        "FRAUD_LOCAL_KAFKA_PORT": str(KAFKA_PORT),
        "FRAUD_LOCAL_REDIS_PORT": str(REDIS_PORT),
        "FRAUD_REDIS_PASSWORD": PASSWORD,
    }
    for name in ("FRAUD_KAFKA_BOOTSTRAP", "FRAUD_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def by_name(statuses: list) -> dict:
    return {status.name: status for status in statuses}


def test_up_twice_is_harmless_and_the_second_is_a_no_op(instance: Settings):
    first = by_name(infra_up(instance))
    assert first["kafka"].running
    assert first["redis"].running
    assert first["kafka"].pid
    assert first["redis"].pid

    second = by_name(infra_up(instance))
    assert {name: s.pid for name, s in second.items()} == {name: s.pid for name, s in first.items()}
    assert all(s.message == "already running" for s in second.values())


def test_status_reports_both_servers_with_address_and_version(instance: Settings):
    infra_up(instance)
    status = by_name(infra_status(instance))
    assert status["kafka"].address == f"127.0.0.1:{KAFKA_PORT}"
    assert status["redis"].address == f"127.0.0.1:{REDIS_PORT}"
    assert status["kafka"].running
    assert status["redis"].running
    assert status["kafka"].version == instance.kafka_version
    assert status["redis"].version
    assert status["redis"].version[0].isdigit()
    assert PASSWORD not in json.dumps([s.as_dict() for s in status.values()])


def test_the_servers_are_real_and_configured_as_promised(instance: Settings):
    infra_up(instance)
    admin = AdminClient(instance.kafka_config())
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    config = admin.describe_configs([broker])[broker].result(timeout=30)
    assert config["auto.create.topics.enable"].value == "false"

    client = redis.Redis.from_url(instance.redis_dsn)
    assert client.ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=REDIS_PORT, password="wrong", retry=None).ping()
    client.close()


def test_external_servers_are_only_checked_never_stopped(instance: Settings):
    started = by_name(infra_up(instance))
    external = Settings(
        kafka_bootstrap=f"127.0.0.1:{KAFKA_PORT}",
        redis_url=SecretStr(instance.redis_dsn),
        state_dir=instance.state_dir,  # even with the same state dir: external wins
    )
    assert all(s.mode == "external" and s.running for s in infra_status(external))
    infra_down(external)
    infra_up(external)
    after = by_name(infra_status(instance))
    assert {n: s.pid for n, s in after.items()} == {n: s.pid for n, s in started.items()}


def test_cli_status_json_then_down_leaves_no_process_behind(
    instance: Settings, instance_env: dict[str, str]
):
    infra_up(instance)
    runner = CliRunner()

    result = runner.invoke(infra_app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    before = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert before["kafka"]["running"]
    assert before["redis"]["running"]
    assert before["kafka"]["version"] == instance.kafka_version
    pids = [before["kafka"]["pid"], before["redis"]["pid"]]
    assert all(psutil.pid_exists(pid) for pid in pids)

    result = runner.invoke(infra_app, ["down"])
    assert result.exit_code == 0, result.output
    assert "stopped" in result.stdout
    assert not any(psutil.pid_exists(pid) for pid in pids)
    for port in (KAFKA_PORT, KAFKA_PORT + 1, REDIS_PORT):
        assert not port_is_open("127.0.0.1", port)

    result = runner.invoke(infra_app, ["status", "--json"])
    after = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert not after["kafka"]["running"]
    assert after["kafka"]["pid"] is None
    assert not after["redis"]["running"]
    assert after["redis"]["pid"] is None

    result = runner.invoke(infra_app, ["down"])  # nothing running: still fine
    assert result.exit_code == 0, result.output


def test_cli_up_reports_a_taken_port_clearly(instance: Settings, instance_env: dict[str, str]):
    import socket

    infra_down(instance)
    with socket.socket() as squatter:
        # The broker just stopped on this port: its connections may linger in TIME_WAIT,
        # which a plain bind refuses. A listening squatter still takes the port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", KAFKA_PORT))
        squatter.listen()
        result = CliRunner().invoke(infra_app, ["up"])
    assert result.exit_code == 1
    assert f"port {KAFKA_PORT} is taken" in result.stderr
    assert "Traceback" not in result.output
    assert all(not s.running and s.pid is None for s in infra_status(instance))


def test_the_console_script_runs_infra_status(instance: Settings, instance_env: dict[str, str]):
    infra_up(instance)
    result = subprocess.run(
        [FRAUDSTREAM, "infra", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **instance_env},
    )
    assert result.returncode == 0, result.stderr
    assert all(entry["running"] for entry in json.loads(result.stdout))
