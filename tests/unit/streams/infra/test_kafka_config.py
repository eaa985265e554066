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


# --- the SASL_SSL listener ----------------------------------------------------------------


def _pkcs8_and_chain(folder: Path) -> tuple[Path, Path, Path]:
    import trustme
    from cryptography.hazmat.primitives import serialization

    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1")
    ca, chain, key = folder / "ca.pem", folder / "chain.pem", folder / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    chain.write_bytes(server.cert_chain_pems[0].bytes())
    private = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca, chain, key


def _secure(tmp_path: Path, key: Path | None = None) -> LocalKafka:
    ca, chain, pkcs8 = _pkcs8_and_chain(tmp_path)
    settings = Settings(
        state_dir=tmp_path / "state",
        local_kafka_port=29092,
        local_kafka_listener="sasl_ssl",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="app",
        kafka_sasl_password="app-password",
        kafka_ssl_ca_location=ca,
        local_kafka_ssl_certificate_location=chain,
        local_kafka_ssl_key_location=key or pkcs8,
    )
    return LocalKafka(settings)


def test_the_sasl_ssl_listener_is_the_only_client_port(tmp_path: Path):
    kafka = _secure(tmp_path)
    text = kafka.render_config()
    conf = props(text)

    assert conf["listeners"] == "SASL_SSL://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert conf["advertised.listeners"] == "SASL_SSL://127.0.0.1:29092"
    assert conf["inter.broker.listener.name"] == "SASL_SSL"
    protocols = "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"  # no unauthenticated port
    assert conf["listener.security.protocol.map"] == protocols
    assert conf["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert conf["authorizer.class.name"].endswith("StandardAuthorizer")
    assert conf["allow.everyone.if.no.acl.found"] == "false"
    assert conf["super.users"] == "User:fraudstream-broker;User:app"
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert conf["ssl.keystore.type"] == conf["ssl.truststore.type"] == "PEM"
    assert conf["ssl.keystore.location"] == str(kafka.keystore_file)
    assert conf["ssl.truststore.location"] == str(kafka.settings.kafka_ssl_ca_location)
    assert "$" not in text
    assert "app-password" not in text  # client users come over the Admin API
    secret = kafka.broker_secret_file.read_text().strip()
    assert f'password="{secret}"' in conf["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert kafka.broker_secret_file.stat().st_mode & 0o777 == 0o600


def test_secured_files_are_private_and_the_keystore_holds_key_then_chain(tmp_path: Path):
    kafka = _secure(tmp_path)
    kafka._write_configs()

    keystore = kafka.keystore_file.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")
    assert keystore.count("-----BEGIN CERTIFICATE-----") == 1
    for path in (kafka.keystore_file, kafka.config_file, kafka.broker_secret_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert kafka.directory.stat().st_mode & 0o777 == 0o700


def test_a_key_kafka_cannot_read_is_refused_with_the_fix(tmp_path: Path):
    import trustme

    from streams.exceptions import InfraError

    traditional = tmp_path / "rsa.key"
    trustme.CA().issue_cert(
        "127.0.0.1", key_type=trustme.KeyType.RSA
    ).private_key_pem.write_to_path(str(traditional))
    kafka = _secure(tmp_path, key=traditional)
    with pytest.raises(InfraError, match=r"PKCS#8.*openssl pkcs8"):
        kafka._write_configs()


def test_a_state_formatted_without_sasl_is_not_reused_silently(tmp_path: Path):
    from streams.exceptions import InfraError

    kafka = _secure(tmp_path)
    kafka.data_dir.mkdir(parents=True)
    (kafka.data_dir / "meta.properties").write_text("formatted by a plaintext broker\n")
    with pytest.raises(InfraError, match="fresh FRAUD_STATE_DIR"):
        kafka.render_config()


def test_the_argument_file_keeps_arguments_off_the_command_line(tmp_path: Path):
    from streams.infra._kafka_tls import argument_file

    path = tmp_path / "java.args"
    with argument_file(path, ["-cp", "/libs/*", "Main", 'pa"ss\\word']) as word:
        assert word == f"@{path}"
        assert path.stat().st_mode & 0o777 == 0o600
        lines = path.read_text().splitlines()
    assert lines == ['"-cp"', '"/libs/*"', '"Main"', '"pa\\"ss\\\\word"']
    assert not path.exists()
