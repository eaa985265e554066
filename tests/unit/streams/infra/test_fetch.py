"""The jar cache: Maven runs only when the cache is incomplete."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.exceptions import InfraError
from streams.infra import fetch_kafka, kafka_libs_complete
from streams.infra._fetch import INFRA_DIR, MARKER, kafka_libs_dir
from streams.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", kafka_version="4.1.1")


def test_the_cache_is_outside_the_repository_and_per_version(settings: Settings, tmp_path: Path):
    assert kafka_libs_dir(settings) == (tmp_path / "cache" / "kafka-4.1.1" / "libs").resolve()


def test_a_complete_cache_is_reused_without_maven(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    libs = kafka_libs_dir(settings)
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    (libs / MARKER).write_text("kafka_2.13-4.1.1.jar\n")
    monkeypatch.setenv("PATH", "/nonexistent")  # no mvn: it must not be needed
    assert kafka_libs_complete(settings)
    assert fetch_kafka(settings) == libs


def test_jars_without_the_marker_are_an_unfinished_copy(settings: Settings):
    libs = kafka_libs_dir(settings)
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert not kafka_libs_complete(settings)


def test_missing_maven_is_a_clear_error(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InfraError, match="Maven"):
        fetch_kafka(settings)
    assert not kafka_libs_dir(settings).exists()


@pytest.mark.parametrize("version", ["latest", "4.1", "4.1.1; rm -rf /", "../4.1.1"])
def test_a_version_that_is_not_a_release_is_refused(tmp_path: Path, version: str):
    with pytest.raises(InfraError, match="not a Kafka release"):
        fetch_kafka(Settings(cache_dir=tmp_path, kafka_version=version))


def test_the_pom_pins_the_plugin_and_a_log4j2_binding():
    pom = (INFRA_DIR / "pom.xml").read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert "<artifactId>maven-dependency-plugin</artifactId>" in pom
    assert "<version>${kafka.version}</version>" in pom
