"""A single-node Apache Kafka broker in KRaft combined mode, run from the cached jars.

No ZooKeeper, no Docker, no tarball: ``java -cp 'libs/*' kafka.Kafka server.properties``
with storage formatted once. The controller listens on ``local_kafka_port + 1``.
The client listener is PLAINTEXT, or SASL_SSL with SCRAM-SHA-512 when
``FRAUD_LOCAL_KAFKA_LISTENER=sasl_ssl`` (see :mod:`streams.infra._kafka_tls`).
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path
from string import Template
from typing import Any

from streams.exceptions import InfraError
from streams.infra._fetch import INFRA_DIR, fetch_kafka, kafka_libs_dir
from streams.infra._kafka_tls import (
    BROKER_USER,
    argument_file,
    broker_client_config,
    broker_password,
    upsert_scram_user,
    write_keystore,
    write_private,
)
from streams.infra._process import ManagedProcess, port_is_open, tail_lines
from streams.infra._status import Progress, ServerStatus, quiet
from streams.settings import Settings

__all__ = ["LocalKafka", "external_kafka_status", "kafka_version_of", "new_cluster_id"]

_HOST = "127.0.0.1"
_TEMPLATE_DIR = INFRA_DIR / "kafka"
_JVM_OPTS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
_FORMAT_TIMEOUT_S = 180.0
_PROBE_LOGGER = logging.getLogger("streams.infra.kafka_probe")


def new_cluster_id() -> str:
    """Make a KRaft cluster id the way Kafka's ``Uuid.randomUuid`` does, without a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):  # Kafka rejects those: they look like CLI options
            return text


def kafka_version_of(libs: Path) -> str | None:
    """Read the Kafka release of a classpath from kafka-clients' own version file."""
    for jar in sorted(libs.glob("kafka-clients-*.jar")):
        try:
            with zipfile.ZipFile(jar) as archive:
                text = archive.read("kafka/kafka-version.properties").decode("utf-8")
        except (OSError, KeyError, zipfile.BadZipFile):
            continue
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "version" and value.strip():
                return value.strip()
    return None


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java (17 or newer) is not on the PATH; the local Kafka broker needs it")
    return java


def _admin_config(bootstrap: str) -> dict[str, Any]:
    # retry fast while the broker starts; keep librdkafka's connection errors off stderr
    return {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": 2000,
        "log_level": 0,
        "logger": _PROBE_LOGGER,
    }


def _describe(exc: Exception) -> str:
    """Keep librdkafka's own sentence, not the KafkaError{code=...} wrapper around it."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    return str(error.str()) if isinstance(error, KafkaError) else str(exc)


class _NoBrokerError(Exception):
    """Metadata came back without a broker; retried like any other not-ready answer."""


def _broker_count(admin: Any, timeout_s: float) -> int:
    metadata = admin.list_topics(timeout=timeout_s)
    if not metadata.brokers:
        raise _NoBrokerError("the cluster answered without any broker")
    return len(metadata.brokers)


def external_kafka_status(settings: Settings) -> ServerStatus:
    """Check whether the external cluster named by FRAUD_KAFKA_BOOTSTRAP answers."""
    from confluent_kafka.admin import AdminClient

    conf = settings.kafka_config(**{"log_level": 0, "logger": _PROBE_LOGGER})
    try:
        brokers = _broker_count(AdminClient(conf), 5.0)
    except Exception as exc:  # any client error means "not reachable" here
        return ServerStatus(
            "kafka",
            settings.bootstrap_servers,
            "external",
            False,
            message=_describe(exc),
        )
    return ServerStatus(
        "kafka", settings.bootstrap_servers, "external", True, message=f"{brokers} broker(s)"
    )


class LocalKafka:
    """The broker ``fraudstream infra up`` starts under ``state_dir/kafka``."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = (settings.state_dir / "kafka").expanduser().resolve()
        self.config_file = self.directory / "server.properties"
        self.log4j_file = self.directory / "log4j2.xml"
        self.data_dir = self.directory / "data"
        self.cluster_id_file = self.directory / "cluster.id"
        self.secure = settings.local_kafka_listener == "sasl_ssl"
        self.keystore_file = self.directory / "keystore.pem"
        self.broker_secret_file = self.directory / "broker.secret"
        self.process = ManagedProcess("kafka", self.directory, marker=str(self.config_file))

    @property
    def port(self) -> int:
        """The client port (PLAINTEXT, or SASL_SSL)."""
        return self.settings.local_kafka_port

    @property
    def controller_port(self) -> int:
        """The KRaft controller port: the next one up, so one setting moves both."""
        return self.settings.local_kafka_port + 1

    @property
    def address(self) -> str:
        """What clients bootstrap from."""
        return f"{_HOST}:{self.port}"

    def render_config(self) -> str:
        """Render server.properties for this instance from the template in ``infra/kafka``."""
        template = Template((_TEMPLATE_DIR / "server.properties").read_text(encoding="utf-8"))
        text = template.substitute(
            kafka_port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir,
            listener="SASL_SSL" if self.secure else "PLAINTEXT",
            controller_protocol="SASL_PLAINTEXT" if self.secure else "PLAINTEXT",
        )
        if not self.secure:
            return text
        secure = Template((_TEMPLATE_DIR / "sasl_ssl.properties").read_text(encoding="utf-8"))
        return text + secure.substitute(
            broker_user=BROKER_USER,
            broker_password=self._broker_password(),
            client_user=self.settings.kafka_sasl_username,
            keystore=self.keystore_file,
            truststore=self.settings.kafka_ssl_ca_location,
        )

    def start(self, on_progress: Progress = quiet) -> ServerStatus:
        """Fetch, format and start the broker unless ours already runs; wait until it answers."""
        with self.process.lock():
            pid = self.process.pid()
            if pid is not None:
                self._wait_ready(timeout_s=self.settings.startup_timeout_s)
                self._add_client_user()
                return self._status(pid, True, "already running")
            for port in (self.port, self.controller_port):
                if port_is_open(_HOST, port):
                    raise InfraError(
                        f"port {port} is taken by a process fraudstream did not start; stop it "
                        "or choose another FRAUD_LOCAL_KAFKA_PORT (the controller uses port+1)"
                    )
            libs = fetch_kafka(self.settings, on_progress)
            self._write_configs()
            self._format_storage(libs, on_progress)
            on_progress(f"Starting Kafka on {self.address}")
            pid = self.process.spawn(self._command(libs, "kafka.Kafka", str(self.config_file)))
            on_progress(f"Waiting for Kafka on {self.address} to answer")
            try:
                self._wait_ready(timeout_s=self.settings.startup_timeout_s)
                self._add_client_user()
            except InfraError:
                self.process.stop(timeout_s=10.0)  # leave no half-started broker behind
                raise
            return self._status(pid, True, "started")

    def stop(self, timeout_s: float = 60.0) -> ServerStatus:
        """Stop our broker (controlled shutdown on SIGTERM), if it runs."""
        with self.process.lock():
            pid = self.process.stop(timeout_s=timeout_s)
        message = f"stopped (pid {pid})" if pid is not None else "was not running"
        return ServerStatus(self.name, self.address, "local", False, message=message)

    def status(self) -> ServerStatus:
        """Report running only if our process exists and answers a metadata request."""
        pid = self.process.pid()
        if pid is None:
            return ServerStatus(self.name, self.address, "local", False, message="stopped")
        try:
            self._wait_ready(timeout_s=3.0)
        except InfraError:
            return self._status(pid, False, "process alive but not answering")
        return self._status(pid, True, "")

    # --- internals -------------------------------------------------------------------

    def _status(self, pid: int, running: bool, message: str) -> ServerStatus:
        return ServerStatus(
            self.name, self.address, "local", running, pid, self._running_version(), message
        )

    def _running_version(self) -> str | None:
        cmdline = self.process.cmdline()
        if "-cp" in cmdline[:-1]:
            classpath = cmdline[cmdline.index("-cp") + 1]
            return kafka_version_of(Path(classpath.removesuffix("*")))
        return kafka_version_of(kafka_libs_dir(self.settings))

    def _wait_ready(self, *, timeout_s: float) -> int:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self._probe_config())
        return self.process.wait_ready(
            lambda: _broker_count(admin, 2.0), timeout_s=timeout_s, what="Kafka"
        )

    def _probe_config(self) -> dict[str, Any]:
        conf = _admin_config(self.address)
        if self.secure:  # as the broker's own user: the client user may not exist yet
            conf.update(broker_client_config(self.settings, self._broker_password()))
        return conf

    def _broker_password(self) -> str:
        formatted = (self.data_dir / "meta.properties").is_file()
        return broker_password(self.broker_secret_file, create=not formatted)

    def _add_client_user(self) -> None:
        """SASL_SSL: upsert the settings' SCRAM user, then wait until it can log in."""
        settings = self.settings
        if not self.secure or settings.kafka_sasl_username is None:
            return
        if settings.kafka_sasl_password is None:
            return
        from confluent_kafka.admin import AdminClient

        upsert_scram_user(
            AdminClient(self._probe_config()),
            settings.kafka_sasl_username,
            settings.kafka_sasl_password.get_secret_value(),
            timeout_s=30.0,
        )
        probe = {k: v for k, v in _admin_config(self.address).items() if k != "bootstrap.servers"}
        user_admin = AdminClient(settings.kafka_config(**probe))
        self.process.wait_ready(
            lambda: _broker_count(user_admin, 2.0), timeout_s=30.0, what="Kafka's SCRAM user"
        )

    def _write_configs(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.secure:
            write_keystore(self.settings, self.keystore_file)
        # 0600: the SASL_SSL variant holds the broker's own password
        write_private(self.config_file, self.render_config().encode("utf-8"))
        shutil.copyfile(_TEMPLATE_DIR / "log4j2.xml", self.log4j_file)

    def _command(self, libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            _java(),
            *_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def _format_storage(self, libs: Path, on_progress: Progress) -> None:
        """Format the data directory once, with the cluster id kept in the state dir."""
        if (self.data_dir / "meta.properties").is_file():
            return
        if self.cluster_id_file.is_file():
            cluster_id = self.cluster_id_file.read_text(encoding="ascii").strip()
        else:
            cluster_id = new_cluster_id()
            self.cluster_id_file.write_text(cluster_id + "\n", encoding="ascii")
        on_progress(f"Formatting Kafka storage in {self.data_dir}")
        arguments = ["--cluster-id", cluster_id, "--config", str(self.config_file)]
        if self.secure:  # the broker's own user; clients' users come over the Admin API
            scram = f"SCRAM-SHA-512=[name={BROKER_USER},password={self._broker_password()}]"
            arguments += ["--add-scram", scram]
        command = self._command(
            libs, "kafka.tools.StorageTool", "format", *arguments, "--ignore-formatted"
        )
        command.insert(1, "-Dfraudstream.log.level=WARN")
        cut = command.index("-cp")  # java's options stay visible; the rest goes in a file
        java_options, java_arguments = command[:cut], command[cut:]
        log = self.directory / "format.log"
        with (
            argument_file(self.directory / "format.args", java_arguments) as argfile,
            log.open("wb") as out,
        ):
            result = subprocess.run(
                [*java_options, argfile],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_FORMAT_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0:
            raise InfraError(
                f"formatting Kafka storage failed (exit {result.returncode}); "
                f"last lines of {log}:\n{tail_lines(log)}"
            )
