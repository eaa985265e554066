"""The broker's rendered configuration and helpers, without starting Java."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest

from streams.infra import LocalKafka
from streams.infra._kafka import kafka_version_of, new_cluster_id
from streams.settings import Settings


def props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture
def kafka(tmp_path: Path) -> LocalKafka:
    return LocalKafka(Settings(state_dir=tmp_path / "state", local_kafka_port=29092))


def test_single_node_kraft_on_loopback_with_the_configured_ports(kafka: LocalKafka):
    conf = props(kafka.render_config())
    assert conf["process.roles"] == "broker,controller"
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert conf["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert conf["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert conf["log.dirs"] == str(kafka.data_dir)
    assert kafka.data_dir.is_absolute()
    assert kafka.address == "127.0.0.1:29092"


def test_topics_are_never_created_by_accident(kafka: LocalKafka):
    assert props(kafka.render_config())["auto.create.topics.enable"] == "false"


def test_internal_topics_fit_a_single_broker(kafka: LocalKafka):
    conf = props(kafka.render_config())
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert conf[key] == "1"


def test_no_placeholder_is_left_unrendered(kafka: LocalKafka):
    assert "$" not in kafka.render_config()


def test_state_lives_under_the_state_dir(kafka: LocalKafka, tmp_path: Path):
    state = (tmp_path / "state" / "kafka").resolve()
    assert kafka.config_file == state / "server.properties"
    assert kafka.process.pid_file == state / "kafka.pid"
    assert kafka.process.log_file == state / "kafka.log"
    assert kafka.process.marker == str(kafka.config_file)


def test_cluster_ids_look_like_kafka_uuids():
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_the_version_comes_from_the_kafka_clients_jar(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "kafka-clients-9.9.9.jar", "w") as jar:
        jar.writestr("kafka/kafka-version.properties", "commitId=abc\nversion=9.9.9\n")
    (tmp_path / "kafka-clients-broken.jar").write_bytes(b"not a zip")
    assert kafka_version_of(tmp_path) == "9.9.9"
    assert kafka_version_of(tmp_path / "empty") is None


def test_status_of_a_broker_that_never_started_is_stopped(kafka: LocalKafka):
    status = kafka.status()
    assert (status.running, status.pid, status.mode) == (False, None, "local")
    assert status.address == "127.0.0.1:29092"
