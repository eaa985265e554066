"""Kafka security from Settings, for the clients that do not speak librdkafka's dialect.

confluent-kafka (producers, consumers, the admin client) and Bytewax take
:meth:`Settings.kafka_config` as is. The Faust feedback app runs on aiokafka, which wants
an :class:`ssl.SSLContext` and a credentials object instead: both are built here from
the same settings, so every client authenticates and verifies the brokers alike.

:func:`kafka_security_problems` is what ``Settings`` checks at startup: a SASL protocol
without credentials, credentials that PLAINTEXT would silently not send, a missing CA
file... each is refused with the variable to fix, never with a secret's value.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from streams.settings import Settings

__all__ = ["faust_credentials", "kafka_security_problems", "kafka_ssl_context"]

_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def _env(field: str) -> str:
    return f"FRAUD_{field.upper()}"


def _set(settings: Settings, fields: tuple[str, ...]) -> list[str]:
    return [_env(field) for field in fields if getattr(settings, field) is not None]


def _client_problems(settings: Settings) -> list[str]:
    protocol = settings.kafka_security_protocol
    problems: list[str] = []
    sasl = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
    if protocol in _SASL_PROTOCOLS:
        missing = [_env(field) for field in sasl if not _has_value(getattr(settings, field))]
        if missing:
            problems.append(f"FRAUD_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
    elif given := _set(settings, sasl):
        problems.append(
            f"{', '.join(given)} given but FRAUD_KAFKA_SECURITY_PROTOCOL={protocol} sends no "
            "credentials: use SASL_SSL (or SASL_PLAINTEXT)"
        )
    tls = (
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        "kafka_ssl_key_password",
    )
    if protocol not in _TLS_PROTOCOLS and (given := _set(settings, tls)):
        problems.append(
            f"{', '.join(given)} given but FRAUD_KAFKA_SECURITY_PROTOCOL={protocol} does not "
            "use TLS: use SASL_SSL (or SSL)"
        )
    cert, key = settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location
    if (cert is None) != (key is None):
        problems.append(
            "FRAUD_KAFKA_SSL_CERTIFICATE_LOCATION and FRAUD_KAFKA_SSL_KEY_LOCATION go together"
        )
    if settings.kafka_ssl_key_password is not None and key is None:
        problems.append("FRAUD_KAFKA_SSL_KEY_PASSWORD given without FRAUD_KAFKA_SSL_KEY_LOCATION")
    return problems


def _local_problems(settings: Settings) -> list[str]:
    protocol = settings.kafka_security_protocol
    if settings.local_kafka_listener == "plaintext":
        if protocol != "PLAINTEXT":
            return [
                f"the local broker listens PLAINTEXT (FRAUD_LOCAL_KAFKA_LISTENER=plaintext) but "
                f"FRAUD_KAFKA_SECURITY_PROTOCOL={protocol}: set FRAUD_LOCAL_KAFKA_LISTENER="
                "sasl_ssl, or FRAUD_KAFKA_BOOTSTRAP for an external cluster"
            ]
        return []
    needs = []
    if protocol != "SASL_SSL":
        needs.append("FRAUD_KAFKA_SECURITY_PROTOCOL=SASL_SSL")
    if settings.kafka_sasl_mechanism != "SCRAM-SHA-512":
        needs.append("FRAUD_KAFKA_SASL_MECHANISM=SCRAM-SHA-512")
    needs += [
        _env(field)
        for field in (
            "kafka_ssl_ca_location",
            "local_kafka_ssl_certificate_location",
            "local_kafka_ssl_key_location",
        )
        if getattr(settings, field) is None
    ]
    if not needs:
        return []
    return [f"FRAUD_LOCAL_KAFKA_LISTENER=sasl_ssl needs {', '.join(needs)}"]


def _file_problems(settings: Settings) -> list[str]:
    fields = (
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        "local_kafka_ssl_certificate_location",
        "local_kafka_ssl_key_location",
    )
    problems = []
    for field in fields:
        path: Path | None = getattr(settings, field)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            problems.append(f"{_env(field)}={path} is not a readable file")
    return problems


def _has_value(value: object) -> bool:
    if value is None:
        return False
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return bool(text)


def kafka_security_problems(settings: Settings) -> list[str]:
    """Everything wrong with the Kafka security settings, one sentence each (no secrets)."""
    problems = _client_problems(settings) + _file_problems(settings)
    if settings.kafka_is_local:
        problems += _local_problems(settings)
    return problems


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of an SSL/SASL_SSL client (``None`` for the plaintext protocols).

    It verifies the broker's chain against ``kafka_ssl_ca_location`` (the system store when
    unset) and, unless ``kafka_ssl_endpoint_identification`` is ``none``, its host name;
    it presents the client certificate when one is configured (mutual TLS).
    """
    if settings.kafka_security_protocol not in _TLS_PROTOCOLS:
        return None
    ca = settings.kafka_ssl_ca_location
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.kafka_ssl_endpoint_identification == "none":
        context.check_hostname = False  # the chain is still verified
    if settings.kafka_ssl_certificate_location is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            settings.kafka_ssl_certificate_location,
            settings.kafka_ssl_key_location,
            password=password.get_secret_value() if password is not None else None,
        )
    return context


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """What ``faust.App(broker_credentials=...)`` needs to talk to the brokers like the rest.

    ``None`` for PLAINTEXT; TLS only for SSL; SASL (PLAIN or SCRAM) for the SASL
    protocols, over TLS for SASL_SSL.
    """
    import faust

    context = kafka_ssl_context(settings)
    if settings.kafka_security_protocol in _SASL_PROTOCOLS:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
