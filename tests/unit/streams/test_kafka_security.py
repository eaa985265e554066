"""Kafka security settings: refused when incoherent, and the same for every kind of client."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
import trustme
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import ValidationError

from streams._kafka_security import faust_credentials, kafka_ssl_context
from streams.settings import Settings

SECRET = "s3cret-never-printed"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(authority: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


def sasl_ssl(ca_file: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "kafka-1:9093,kafka-2:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "scorer",
        "kafka_sasl_password": SECRET,
        "kafka_ssl_ca_location": ca_file,
    }
    return Settings(**{**values, **overrides})


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    text = str(caught.value)
    assert SECRET not in text  # refused settings never echo the others back
    return text


# --- refused at startup -----------------------------------------------------------------


def test_sasl_without_credentials_is_refused_naming_what_is_missing(ca_file: Path) -> None:
    text = refusal(
        kafka_bootstrap="kafka:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_password=SECRET,
        kafka_ssl_ca_location=ca_file,
    )
    assert "FRAUD_KAFKA_SASL_MECHANISM" in text
    assert "FRAUD_KAFKA_SASL_USERNAME" in text
    assert "FRAUD_KAFKA_SASL_PASSWORD" not in text


def test_credentials_that_plaintext_would_not_send_are_refused() -> None:
    text = refusal(
        kafka_bootstrap="kafka:9092", kafka_sasl_username="u", kafka_sasl_password=SECRET
    )
    assert "sends no credentials" in text


def test_a_ca_without_tls_is_refused(ca_file: Path) -> None:
    text = refusal(kafka_bootstrap="kafka:9092", kafka_ssl_ca_location=ca_file)
    assert "does not use TLS" in text


def test_a_missing_ca_file_is_refused_with_its_path(tmp_path: Path, ca_file: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValidationError, match=r"FRAUD_KAFKA_SSL_CA_LOCATION=.*nope\.pem"):
        sasl_ssl(ca_file, kafka_ssl_ca_location=missing)


def test_a_client_certificate_needs_its_key(ca_file: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        sasl_ssl(ca_file, kafka_ssl_certificate_location=ca_file)


def test_an_unknown_mechanism_is_refused(ca_file: Path) -> None:
    with pytest.raises(ValidationError):
        sasl_ssl(ca_file, kafka_sasl_mechanism="GSSAPI")


def test_a_secured_client_of_the_plaintext_local_broker_is_refused(ca_file: Path) -> None:
    text = refusal(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password=SECRET,
        kafka_ssl_ca_location=ca_file,
    )
    assert "FRAUD_LOCAL_KAFKA_LISTENER=plaintext" in text


def test_the_sasl_ssl_local_broker_needs_its_certificate_and_key(ca_file: Path) -> None:
    text = refusal(
        local_kafka_listener="sasl_ssl",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password=SECRET,
        kafka_ssl_ca_location=ca_file,
    )
    assert "FRAUD_LOCAL_KAFKA_SSL_CERTIFICATE_LOCATION" in text
    assert "FRAUD_LOCAL_KAFKA_SSL_KEY_LOCATION" in text


def test_the_defaults_stay_plaintext_on_the_local_broker() -> None:
    settings = Settings()
    assert settings.kafka_config() == {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": "PLAINTEXT",
    }


# --- librdkafka (confluent-kafka, Bytewax) ----------------------------------------------


def test_librdkafka_gets_scram_over_verified_tls(ca_file: Path) -> None:
    conf = sasl_ssl(ca_file).kafka_config()
    assert conf == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "scorer",
        "sasl.password": SECRET,
        "ssl.ca.location": str(ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_mutual_tls_files_reach_librdkafka(ca_file: Path) -> None:
    conf = sasl_ssl(
        ca_file,
        kafka_ssl_certificate_location=ca_file,
        kafka_ssl_key_location=ca_file,
        kafka_ssl_key_password="pass",
        kafka_ssl_endpoint_identification="none",
    ).kafka_config()
    assert conf["ssl.certificate.location"] == str(ca_file)
    assert conf["ssl.key.location"] == str(ca_file)
    assert conf["ssl.key.password"] == "pass"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_passwords_do_not_show_in_the_settings_repr(ca_file: Path) -> None:
    settings = sasl_ssl(
        ca_file,
        kafka_ssl_certificate_location=ca_file,
        kafka_ssl_key_location=ca_file,
        kafka_ssl_key_password=SECRET,
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


# --- aiokafka (the Faust feedback service) ----------------------------------------------


def test_no_credentials_and_no_tls_for_plaintext() -> None:
    settings = Settings(kafka_bootstrap="kafka:9092")
    assert kafka_ssl_context(settings) is None
    assert faust_credentials(settings) is None


def test_faust_gets_scram_sha_512_over_a_verifying_tls_context(ca_file: Path) -> None:
    credentials = faust_credentials(sasl_ssl(ca_file))

    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("scorer", SECRET)
    assert SECRET not in repr(credentials)
    context = credentials.ssl_context
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1  # exactly our CA, not the system store


def test_endpoint_identification_none_still_verifies_the_chain(ca_file: Path) -> None:
    context = kafka_ssl_context(sasl_ssl(ca_file, kafka_ssl_endpoint_identification="none"))
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_sasl_plaintext_has_no_tls(ca_file: Path) -> None:
    settings = sasl_ssl(
        ca_file, kafka_security_protocol="SASL_PLAINTEXT", kafka_ssl_ca_location=None
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.ssl_context is None


def test_tls_only_with_a_client_certificate(
    authority: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    client = authority.issue_cert("scorer.example")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    settings = Settings(
        kafka_bootstrap="kafka:9093",
        kafka_security_protocol="SSL",
        kafka_ssl_ca_location=ca_file,
        kafka_ssl_certificate_location=cert,
        kafka_ssl_key_location=key,
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    assert credentials.context.verify_mode is ssl.CERT_REQUIRED
