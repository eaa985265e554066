"""The secured local broker's files: its TLS keystore, its own SCRAM user, its client user.

With ``FRAUD_LOCAL_KAFKA_LISTENER=sasl_ssl`` the local broker's only client port is
SASL_SSL with SCRAM-SHA-512. Kafka reads PEM stores directly: the keystore is the
server's PKCS#8 key followed by its certificate chain, the truststore the CA file.

Secrets stay off command lines (``ps`` shows every process's arguments to every user):
the broker's own password lives in a 0600 file and reaches ``kafka-storage format`` in a
0600 Java argument file (``java @file``); the client user of the settings is upserted
through the Admin API once the broker answers, so it is never on a command line either.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = [
    "BROKER_USER",
    "argument_file",
    "broker_client_config",
    "broker_password",
    "upsert_scram_user",
    "write_keystore",
    "write_private",
]

BROKER_USER = "fraudstream-broker"
_SCRAM_ITERATIONS = 8192
_PKCS8_HEADERS = (b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)


def broker_password(secret_file: Path, *, create: bool) -> str:
    """The broker's own SCRAM password, made once per state directory."""
    if secret_file.is_file():
        return secret_file.read_text(encoding="ascii").strip()
    if not create:
        raise InfraError(
            f"{secret_file} is missing: this Kafka state was formatted without the SASL_SSL "
            "listener; use a fresh FRAUD_STATE_DIR (or delete its kafka/data folder)"
        )
    password = secrets.token_hex(24)
    secret_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(secret_file, (password + "\n").encode("ascii"))
    return password


def write_keystore(settings: Settings, keystore: Path) -> None:
    """Join the server's PKCS#8 key and its certificate chain into Kafka's PEM keystore."""
    key_path = settings.local_kafka_ssl_key_location
    chain_path = settings.local_kafka_ssl_certificate_location
    if key_path is None or chain_path is None:
        raise InfraError(
            "the SASL_SSL listener needs FRAUD_LOCAL_KAFKA_SSL_{CERTIFICATE,KEY}_LOCATION"
        )
    key = key_path.read_bytes().strip()
    if not key.startswith(_PKCS8_HEADERS):
        raise InfraError(
            f"{key_path} is not an unencrypted PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----), "
            "the only kind Kafka's PEM keystore reads; convert it with "
            "`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
        )
    if key.startswith(_PKCS8_HEADERS[1]):
        raise InfraError(f"{key_path} is encrypted; the local broker needs it unencrypted")
    chain = chain_path.read_bytes().strip()
    if b"-----BEGIN CERTIFICATE-----" not in chain:
        raise InfraError(f"{chain_path} holds no PEM certificate")
    write_private(keystore, key + b"\n" + chain + b"\n")


def _quoted(argument: str) -> str:
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@contextlib.contextmanager
def argument_file(path: Path, arguments: Sequence[str]) -> Iterator[str]:
    """A 0600 ``java @file`` holding ``arguments``; yields the ``@path`` word, then deletes it.

    The launcher expands it before the main class, so the class and its arguments can sit
    in the file and stay out of the process list.
    """
    write_private(path, ("\n".join(_quoted(arg) for arg in arguments) + "\n").encode())
    try:
        yield f"@{path}"
    finally:
        path.unlink(missing_ok=True)


def broker_client_config(settings: Settings, password: str) -> dict[str, Any]:
    """The librdkafka settings that reach the secured local broker as its own user."""
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": BROKER_USER,
        "sasl.password": password,
        "ssl.ca.location": str(settings.kafka_ssl_ca_location),
        "ssl.endpoint.identification.algorithm": "https",
    }


def upsert_scram_user(admin: Any, username: str, password: str, timeout_s: float) -> None:
    """Create the SCRAM-SHA-512 user, or reset its password (Admin API, no command line)."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not re-exported
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    upsertion = UserScramCredentialUpsertion(
        username,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS),
        password.encode("utf-8"),
    )
    futures = admin.alter_user_scram_credentials([upsertion], request_timeout=timeout_s)
    try:
        futures[username].result(timeout=timeout_s)
    except Exception as exc:  # the client's errors have no common base
        raise InfraError(f"could not create the Kafka SCRAM user {username!r}: {exc}") from exc
