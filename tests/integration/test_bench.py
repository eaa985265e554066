"""``fraudstream bench`` end to end: servers, a system of its own, load, and the report.

Performance figures are never asserted (they depend on the machine and what else runs
on it); the shape of the report and the accounting of every transaction are.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest
from confluent_kafka.admin import AdminClient

from streams.settings import Settings

pytestmark = pytest.mark.integration
FRAUDSTREAM = str(Path(sys.executable).with_name("fraudstream"))
PERCENTILES = {"p50", "p95", "p99", "p999", "max"}


def test_bench_at_200_per_second_decides_every_transaction(servers: Settings, tmp_path: Path):
    out = tmp_path / "bench.json"
    # a metrics port nobody uses: the bench must start (and stop) a scorer of its own
    env = os.environ | {"FRAUD_METRICS_PORT": str(free_port())}
    result = subprocess.run(
        [FRAUDSTREAM, "bench", "--rate", "200", "--duration", "5", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = orjson.loads(out.read_bytes())

    assert report["rate_target"] == 200.0
    assert report["duration_s"] == 5.0
    assert report["warmup_s"] == 2.0
    assert report["events"] == 1000
    assert report["decisions"] == report["events"]
    assert report["dlq"] == 0
    assert report["missing"] == 0
    assert report["measured_decisions"] == report["measured_events"] == 600
    assert set(report["latency_ms"]) == PERCENTILES
    assert all(isinstance(report["latency_ms"][k], float) for k in PERCENTILES)
    assert {"p50", "p99"} <= set(report["e2e_us"])
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert isinstance(report["throughput_eps"], float)
    assert report["machine"]["cores"] == os.cpu_count()
    assert report["machine"]["cpu"]
    assert report["system"]["name"] == "fraudstream"
    assert report["system"]["started_here"] is True
    assert report["system"]["rss_mib"] > 0
    assert report["generator"]["processes"] == 1
    assert_backlog_accounted(report)
    assert set(report["verdict"]) == {"sustainable", "reasons"}
    assert report["topics"]["transactions"].startswith("bench-")
    assert "fraudstream bench @ 200 tx/s" in result.stdout
    # what the bench started is gone: its scorer process and its topics
    existing = AdminClient(servers.kafka_config()).list_topics(timeout=10).topics
    assert not set(report["topics"].values()) & set(existing)
    assert not process_running(report["system"]["pid"], "score")


def test_bench_of_the_passthrough_with_two_generators(servers: Settings, tmp_path: Path):
    out = tmp_path / "passthrough.json"
    result = subprocess.run(
        [FRAUDSTREAM, "bench", "--system", "passthrough", "--rate", "300", "--duration", "4",
         "--generators", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    report = orjson.loads(out.read_bytes())

    assert report["system"]["name"] == "passthrough"
    assert report["events"] == 1200
    assert report["decisions"] == report["events"]
    assert report["missing"] == 0
    assert report["duplicates"] == 0
    assert report["generator"]["processes"] == 2
    assert [each["sent"] for each in report["generator"]["each"]] == [600, 600]
    assert_backlog_accounted(report)
    assert "passthrough bench @ 300 tx/s" in result.stdout
    existing = AdminClient(servers.kafka_config()).list_topics(timeout=10).topics
    assert not set(report["topics"].values()) & set(existing)
    assert not process_running(report["system"]["pid"], "streams.bench.passthrough")


def assert_backlog_accounted(report: dict) -> None:
    """The lag timeline covers every second of the schedule, and what was sent in it."""
    timeline = report["lag_timeline"]
    assert [row["s"] for row in timeline] == list(range(int(report["duration_s"])))
    # the last slot is due at the very end of the schedule: a send a moment late is not in it
    late = report["rate_target"] * 0.1
    assert report["events"] - late <= timeline[-1]["sent"] <= report["events"]
    assert all(row["backlog"] == row["sent"] - row["accounted"] >= 0 for row in timeline)
    assert isinstance(report["lag_slope_eps"], float)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_running(pid: int, argument: str) -> bool:
    try:
        return argument in psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return False
