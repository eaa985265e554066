"""``fraudstream score`` as one member of a cluster: ids, addresses, ports, recovery.

The dataflow itself does not run here: ``run_scorer`` is replaced by a recorder, so each
test sees exactly what the command would start (integration tests run the real thing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import streams.scorer
from streams.cli import app
from streams.scorer import cluster_addresses
from streams.settings import Settings, get_settings

BASE_PORT = 9100


@dataclass
class Started:
    """What the command handed to ``run_scorer``."""

    settings: Settings
    kwargs: dict[str, Any]

    @property
    def metrics_port(self) -> int:
        """The port run_scorer binds: settings.metrics_port + the process index."""
        return int(self.settings.metrics_port) + (self.kwargs["process_id"] or 0)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Started]]:
    calls: list[Started] = []

    def record(settings: Settings, **kwargs: Any) -> int:
        calls.append(Started(settings, kwargs))
        return 0

    monkeypatch.setattr(streams.scorer, "run_scorer", record)
    monkeypatch.setenv("FRAUD_METRICS_PORT", str(BASE_PORT))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def score(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["score", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def pod_args(ordinal: int, processes: int = 3, *extra: str) -> list[str]:
    return [
        f"--processes={processes}",
        f"--process-id=fraudstream-scorer-{ordinal}",
        "--addresses=fraudstream-scorer-{i}.fraudstream-scorer:2101",
        *extra,
    ]


def test_help_documents_the_cluster_options() -> None:
    code, output = score("--help")

    assert code == 0
    assert "--process-id" in output
    assert "--addresses" in output
    assert "{i}" in output


@pytest.mark.parametrize(
    ("value", "index"),
    [("0", 0), ("2", 2), ("fraudstream-scorer-2", 2), ("scorer-0", 0), ("a-b-11", 11)],
)
def test_process_id_is_a_number_or_a_pod_name(
    started: list[Started], value: str, index: int
) -> None:
    code, output = score(
        "--processes", "12", "--process-id", value, "--addresses", "h-{i}.svc:2101"
    )

    assert code == 0, output
    assert started[0].kwargs["process_id"] == index


@pytest.mark.parametrize("value", ["scorer", "scorer-", "scorer-2a", ""])
def test_a_process_id_without_an_ordinal_is_refused(started: list[Started], value: str) -> None:
    code, output = score("--processes", "3", "--process-id", value, "--addresses", "h-{i}.svc:2101")

    assert code == 2
    assert "--process-id" in output
    assert started == []


def test_an_ordinal_beyond_the_cluster_size_names_the_replicas(started: list[Started]) -> None:
    # A pod added with `kubectl scale`, whose --processes did not follow.
    code, output = score(*pod_args(3, processes=3))

    assert code == 2
    assert "replicas" in output
    assert started == []


def test_every_pod_builds_the_same_addresses_in_ordinal_order(started: list[Started]) -> None:
    for ordinal in range(3):
        code, output = score(*pod_args(ordinal))
        assert code == 0, output

    expected = [f"fraudstream-scorer-{i}.fraudstream-scorer:2101" for i in range(3)]
    assert [call.kwargs["addresses"] for call in started] == [expected] * 3
    assert [call.kwargs["process_id"] for call in started] == [0, 1, 2]
    assert all(call.kwargs["processes"] == 3 for call in started)


def test_an_explicit_address_list_is_kept_as_given(started: list[Started]) -> None:
    code, output = score("--processes", "2", "--process-id", "1", "--addresses", "a:2101, b:2202")

    assert code == 0, output
    assert started[0].kwargs["addresses"] == ["a:2101", "b:2202"]


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        ("a:2101,b:2101", "2 addresses for --processes 3"),
        ("a:2101,b:2101,c", "'c' is not host:port"),
        ("a:2101,b:2101,c:99999", "is not host:port"),
        ("a-{i}:2101,b:2101,c:2101", "is not host:port"),
    ],
)
def test_bad_addresses_are_refused_before_anything_starts(
    started: list[Started], addresses: str, message: str
) -> None:
    code, output = score("--processes", "3", "--process-id", "0", "--addresses", addresses)

    assert code == 2
    assert message in " ".join(output.replace("│", " ").split())
    assert started == []


@pytest.mark.parametrize("given_only", [["--process-id", "0"], ["--addresses", "a:1,b:2"]])
def test_a_member_needs_both_its_id_and_the_addresses(
    started: list[Started], given_only: list[str]
) -> None:
    code, output = score("--processes", "2", *given_only)

    assert code == 2
    assert "needs both" in output
    assert started == []


def test_without_cluster_options_nothing_changes(started: list[Started]) -> None:
    code, output = score("--processes", "2", "--workers", "3")

    assert code == 0, output
    (call,) = started
    assert call.kwargs == {
        "processes": 2,
        "workers": 3,
        "recovery_dir": None,
        "process_id": None,
        "addresses": None,
    }
    assert call.settings.metrics_port == BASE_PORT


def test_pods_all_serve_metrics_on_the_configured_port(started: list[Started]) -> None:
    # One network namespace per pod: the probes and the scrape use one port for all.
    for ordinal in range(3):
        score(*pod_args(ordinal))

    assert [call.metrics_port for call in started] == [BASE_PORT] * 3


def test_local_members_keep_one_port_per_process(started: list[Started]) -> None:
    # What the local supervisor (streams.scorer) starts: the same host for every member.
    addresses = ",".join(cluster_addresses(3))
    for process_id in range(3):
        score("--processes", "3", "--process-id", str(process_id), "--addresses", addresses)

    assert [call.metrics_port for call in started] == [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2]


@given(hosts=st.lists(st.sampled_from(["a", "b", "c", "127.0.0.1"]), min_size=1, max_size=8))
def test_no_two_members_on_one_host_share_a_metrics_port(hosts: list[str]) -> None:
    from streams.cli._score import _Member

    addresses = [f"{host}:{2101 + i}" for i, host in enumerate(hosts)]
    bound = [
        (host, BASE_PORT + _Member(i, addresses).metrics_port_offset)
        for i, host in enumerate(hosts)
    ]

    assert len(set(bound)) == len(bound)
    assert all(port < BASE_PORT + hosts.count(host) for host, port in bound)


def test_process_0_creates_the_recovery_partitions_for_the_whole_cluster(
    started: list[Started], tmp_path: Path
) -> None:
    pod_dirs = [tmp_path / f"recovery-{i}" for i in range(3)]
    for ordinal, directory in enumerate(pod_dirs):
        code, output = score(*pod_args(ordinal, 3, "--workers=2", f"--recovery-dir={directory}"))
        assert code == 0, output

    parts = [sorted(p.name for p in directory.glob("part-*.sqlite3")) for directory in pod_dirs]
    assert parts == [[f"part-{i}.sqlite3" for i in range(6)], [], []]
    assert all(directory.is_dir() for directory in pod_dirs)
    assert [call.kwargs["recovery_dir"] for call in started] == pod_dirs


def test_a_restart_resumes_from_the_partitions_it_finds(
    started: list[Started], tmp_path: Path
) -> None:
    directory = tmp_path / "recovery-0"
    score(*pod_args(0, 2, f"--recovery-dir={directory}"))
    first = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}

    # Rescaled from 2 to 5 processes: the 2 partitions are kept, none are added.
    code, output = score(*pod_args(0, 5, f"--recovery-dir={directory}"))

    assert code == 0, output
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == first
