"""Every Kafka client over SASL_SSL (SCRAM-SHA-512, TLS) against a private secured broker.

The module starts its own broker (``FRAUD_LOCAL_KAFKA_LISTENER=sasl_ssl``) on free ports,
with a CA and a server certificate for 127.0.0.1 made here by ``trustme``. The clients
are configured exactly as an operator configures them against a secured cluster: the
``FRAUD_KAFKA_*`` variables only. The CLI, the scorer (Bytewax) and the feedback service
(Faust/aiokafka) each move records through it; a wrong password, a plaintext client and
a client that does not trust the CA are each refused.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import trustme
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography.hazmat.primitives import serialization

from models.offline_store import applied_label_files, read_joined_labels
from streams.infra import LocalKafka
from streams.infra._kafka_tls import upsert_scram_user
from streams.producing import DeliveryStats, RecordProducer
from streams.settings import Settings
from tests.doubles import decision_payload, label_payload
from tests.integration._decisions import WAIT_S, run_tag, wait_for_records
from tests.integration._feedback import FeedbackProcess, FeedbackTopics, send
from tests.integration._scorer import (
    FRAUDSTREAM,
    Scorer,
    ScoreTopics,
    create_topics,
    free_port,
    isolated_events,
    keyed,
    produce,
    read_all,
    wait_until,
)

USER = "fraudstream-test"
CLI_TIMEOUT_S = 120


@dataclass(frozen=True)
class SecuredBroker:
    """The running broker, the client settings that reach it, and the files behind them."""

    broker: LocalKafka
    client_env: dict[str, str]  # FRAUD_* only: what a client process is given
    certs: Path

    @property
    def settings(self) -> Settings:
        return settings_from(self.client_env)

    def env(self, **changes: str) -> dict[str, str]:
        """A child environment: this process's, the client settings, then ``changes``."""
        return {**os.environ, **self.client_env, **changes}


def settings_from(env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {name.removeprefix("FRAUD_").lower(): v for name, v in env.items()}
    return Settings(**values)


def _write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """CA, server chain and the server's PKCS#8 key (what Kafka's PEM keystore reads)."""
    authority = trustme.CA(key_type=trustme.KeyType.RSA)
    server = authority.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    ca, chain, key = folder / "ca.pem", folder / "server-chain.pem", folder / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    chain.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    private = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return ca, chain, key


@pytest.fixture(scope="module")
def secured(servers: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """A private SASL_SSL broker; `servers` for the shared Redis the services write to."""
    root = tmp_path_factory.mktemp("kafka-sasl-ssl")
    certs = root / "certs"
    certs.mkdir()
    ca, chain, key = _write_certificates(certs)
    port = free_port(2)  # client port, controller port + 1
    client_env = {
        "FRAUD_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "FRAUD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUD_KAFKA_SASL_USERNAME": USER,
        "FRAUD_KAFKA_SASL_PASSWORD": secrets.token_urlsafe(18),
        "FRAUD_KAFKA_SSL_CA_LOCATION": str(ca),
    }
    broker_env = {
        **{k: v for k, v in client_env.items() if k != "FRAUD_KAFKA_BOOTSTRAP"},
        "FRAUD_STATE_DIR": str(root / "state"),
        "FRAUD_LOCAL_KAFKA_PORT": str(port),
        "FRAUD_LOCAL_KAFKA_LISTENER": "sasl_ssl",
        "FRAUD_LOCAL_KAFKA_SSL_CERTIFICATE_LOCATION": str(chain),
        "FRAUD_LOCAL_KAFKA_SSL_KEY_LOCATION": str(key),
    }
    broker = LocalKafka(settings_from(broker_env))
    status = broker.start()
    assert status.running, status
    try:
        yield SecuredBroker(broker, client_env, certs)
    finally:
        broker.stop()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FRAUDSTREAM, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _topic_env(tag: str) -> dict[str, str]:
    return {
        "FRAUD_TOPIC_TRANSACTIONS": f"sec-tx-{tag}",
        "FRAUD_TOPIC_DECISIONS": f"sec-decisions-{tag}",
        "FRAUD_TOPIC_LABELS": f"sec-labels-{tag}",
        "FRAUD_TOPIC_DLQ": f"sec-dlq-{tag}",
        "FRAUD_TOPIC_MODEL_UPDATES": f"sec-model-updates-{tag}",
        "FRAUD_PARTITIONS": "3",
    }


def _metadata_error(conf: dict[str, Any]) -> str | None:
    """None when the client gets the broker list; else the client's error text."""
    admin = AdminClient({**conf, "log_level": 0, "socket.connection.setup.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=8)
    except KafkaException as exc:
        return str(exc)
    return None


# --- the clients, over SASL_SSL ---------------------------------------------------------


def test_the_cli_creates_topics_and_produces_over_sasl_ssl(secured: SecuredBroker) -> None:
    topics = _topic_env(uuid.uuid4().hex[:10])
    env = secured.env(**topics)

    created = _cli(env, "topics", "create")
    assert created.returncode == 0, created.stdout + created.stderr
    produced = _cli(env, "produce", "--count", "40", "--rate", "0", "--seed", "3")
    assert produced.returncode == 0, produced.stdout + produced.stderr

    records = read_all(secured.settings, topics["FRAUD_TOPIC_TRANSACTIONS"])
    assert len(records) == 40
    assert len({orjson.loads(r.value)["tx_id"] for r in records}) == 40
    print(f"cli over SASL_SSL: 5 topics created, {len(records)} transactions read back")


def test_the_scorer_decides_over_sasl_ssl(
    secured: SecuredBroker, model_dir: Path, tmp_path: Path
) -> None:
    settings = secured.settings
    topics = ScoreTopics.fresh()
    updates = f"test-model-updates-{uuid.uuid4().hex}"
    create_topics(settings, topics.names, partitions=3)
    create_topics(settings, [updates], partitions=1)
    events = isolated_events(50, seed=21, tag=run_tag())
    produce(settings, topics.transactions, keyed(events))

    env = {**secured.client_env, "FRAUD_TOPIC_MODEL_UPDATES": updates}
    with Scorer(topics, tmp_path / "scorer.log", model_dir=model_dir, env=env) as scorer:
        wait_for_records(scorer, settings, {topics.decisions: len(events)})

    decided = {orjson.loads(r.value)["tx_id"] for r in read_all(settings, topics.decisions)}
    assert decided == {event["tx_id"] for event in events}
    print(f"scorer over SASL_SSL: {len(decided)}/{len(events)} transactions decided")


def test_the_feedback_service_joins_labels_over_sasl_ssl(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    settings = secured.settings
    topics = FeedbackTopics.fresh()
    create_topics(settings, [topics.decisions, topics.labels], partitions=3)
    create_topics(settings, [topics.model_updates], partitions=1)
    tag = uuid.uuid4().hex[:8]
    decisions = [
        decision_payload(tx_id=f"tx-{tag}-{i}", user_id=f"u-{tag}-{i % 7}") for i in range(20)
    ]
    labels = [label_payload(d["tx_id"], d["user_id"], "fraud") for d in decisions]

    with FeedbackProcess(topics, tmp_path / "state", env=secured.client_env) as service:
        wait_until(service.ready, timeout_s=WAIT_S, what="feedback service ready",
                   diagnose=service.log_tail)  # fmt: skip
        send(settings, topics.decisions, decisions)
        send(settings, topics.labels, labels)

        def joined() -> int:
            service.assert_running()
            if not service.store_dir.exists():
                return 0
            files = applied_label_files(service.store_dir)
            return sum(len(read_joined_labels(path)) for path in files)

        wait_until(lambda: joined() >= len(labels), timeout_s=WAIT_S,
                   what="20 joined labels in the offline store",
                   diagnose=service.log_tail)  # fmt: skip
        stored = joined()
    assert stored == len(labels)
    print(f"feedback over SASL_SSL: {stored}/{len(labels)} labels joined and stored")


# --- and everyone else refused ----------------------------------------------------------


def test_a_wrong_password_is_refused_with_an_authentication_error(
    secured: SecuredBroker,
) -> None:
    env = secured.env(**_topic_env("refused"), FRAUD_KAFKA_SASL_PASSWORD="not-the-password")

    result = _cli(env, "topics", "create")

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "refused the connection (authentication failed)" in " ".join(output.split()), output
    assert "Authentication failed" in result.stderr, result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    error = _metadata_error({**secured.settings.kafka_config(), "sasl.password": "wrong"})
    assert error is not None
    print(f"wrong password: exit {result.returncode}, metadata refused: {error}")


def test_a_plaintext_client_gets_no_metadata(secured: SecuredBroker) -> None:
    bootstrap = secured.settings.bootstrap_servers

    error = _metadata_error({"bootstrap.servers": bootstrap, "security.protocol": "PLAINTEXT"})
    assert error is not None
    sasl_without_tls = {**secured.settings.kafka_config(), "security.protocol": "SASL_PLAINTEXT"}
    sasl_without_tls.pop("ssl.ca.location")
    sasl_without_tls.pop("ssl.endpoint.identification.algorithm")
    assert _metadata_error(sasl_without_tls) is not None  # the password never goes in clear
    print(f"plaintext and SASL_PLAINTEXT clients: refused ({error})")


def test_a_client_that_does_not_trust_the_ca_is_refused(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    conf = secured.settings.kafka_config()

    assert _metadata_error(conf) is None  # the right CA: answered
    error = _metadata_error({**conf, "ssl.ca.location": str(stranger)})
    assert error is not None
    print(f"client trusting another CA: refused ({error})")


def test_no_secret_on_the_broker_command_line_and_its_files_are_private(
    secured: SecuredBroker,
) -> None:
    broker = secured.broker
    pid = broker.process.pid()
    assert pid is not None
    cmdline = " ".join(psutil.Process(pid).cmdline())
    broker_secret = broker.broker_secret_file.read_text().strip()
    client_secret = secured.client_env["FRAUD_KAFKA_SASL_PASSWORD"]

    assert broker_secret not in cmdline
    assert client_secret not in cmdline
    assert broker_secret in broker.config_file.read_text()  # the JAAS line needs it
    for path in (broker.config_file, broker.keystore_file, broker.broker_secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not (broker.directory / "format.args").exists()


# --- ACLs: a principal does only what its ACLs allow --------------------------------------


def _send_as(settings: Settings, topic: str, count: int) -> DeliveryStats:
    producer = RecordProducer(settings, topic, **{"message.timeout.ms": 15_000})
    for i in range(count):
        producer.send(f"u-{i}".encode(), orjson.dumps({"n": i}))
    producer.flush(30)
    return producer.stats


def test_a_principal_writes_only_the_topics_its_acls_name(secured: SecuredBroker) -> None:
    """The documented CLI-producer ACLs let it write transactions, not decisions.

    Another user with no ACL at all writes nothing: the broker denies by default.
    """
    admin_settings = secured.settings  # the super user of the local broker
    admin = AdminClient(admin_settings.kafka_config())
    tag = uuid.uuid4().hex[:10]
    transactions, decisions = f"acl-tx-{tag}", f"acl-decisions-{tag}"
    create_topics(admin_settings, [transactions, decisions], partitions=1)
    passwords = {name: secrets.token_urlsafe(18) for name in (f"cli-{tag}", f"nobody-{tag}")}
    for name, password in passwords.items():
        upsert_scram_user(admin, name, password, timeout_s=30)
    cli_user, nobody = passwords
    grants = [
        AclBinding(ResourceType.TOPIC, transactions, ResourcePatternType.LITERAL,
                   f"User:{cli_user}", "*", operation, AclPermissionType.ALLOW)
        for operation in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ]  # fmt: skip
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)

    def as_user(name: str) -> Settings:
        return settings_from(
            {**secured.client_env,
             "FRAUD_KAFKA_SASL_USERNAME": name, "FRAUD_KAFKA_SASL_PASSWORD": passwords[name]}
        )  # fmt: skip

    def cli_writes_transactions() -> DeliveryStats | None:
        stats = _send_as(as_user(cli_user), transactions, 10)
        return stats if stats.failed == 0 else None  # until the new ACLs are applied

    allowed = wait_until(cli_writes_transactions, timeout_s=60, what="the CLI user's ACLs")
    denied = _send_as(as_user(cli_user), decisions, 10)
    stranger = _send_as(as_user(nobody), transactions, 10)

    assert (allowed.delivered, allowed.failed) == (10, 0)
    assert (denied.delivered, denied.failed) == (0, 10)
    assert "TOPIC_AUTHORIZATION_FAILED" in denied.errors[0]
    assert (stranger.delivered, stranger.failed) == (0, 10)
    assert "TOPIC_AUTHORIZATION_FAILED" in stranger.errors[0]
    assert len(read_all(admin_settings, transactions)) == 10
    assert len(read_all(admin_settings, decisions)) == 0
    print(
        f"ACLs: cli user wrote {allowed.delivered}/10 to transactions, "
        f"{denied.delivered}/10 to decisions; a user without ACLs wrote {stranger.delivered}/10"
    )
