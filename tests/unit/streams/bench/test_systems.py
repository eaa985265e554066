"""Starting a system under test: the topics by environment, alive checks, stopping it."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.bench._systems import SYSTEMS, _free_ports, start_system
from streams.exceptions import InfraError
from streams.settings import Settings

TOPICS = {"transactions": "bench-x-transactions", "decisions": "bench-x-decisions",
          "dlq": "bench-x-dlq"}  # fmt: skip
#: A stand-in peer: writes the environment it was given, then waits to be stopped.
PEER = """
import json, os, sys, time
with open(sys.argv[1], "w") as out:
    json.dump({k: v for k, v in os.environ.items() if k.startswith(("FRAUD_", "PEER_"))}, out)
time.sleep(60)
"""


def stub_peer_command(seen: Path, code: str = PEER):
    def peer_command(system, settings, on_progress):
        on_progress(f"starting the stand-in for {system}")
        return [sys.executable, "-c", code, str(seen)], {"PEER_SYSTEM": system}

    return peer_command


def wait_for(path: Path) -> dict[str, str]:
    for _ in range(200):
        if path.exists() and path.stat().st_size:
            return orjson.loads(path.read_bytes())
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_a_peer_is_started_on_the_runs_topics_and_stopped(tmp_path: Path):
    seen, messages = tmp_path / "env.json", []
    system = start_system(
        "quix", Settings(), TOPICS, tmp_path / "logs" / "quix.log",
        on_progress=messages.append, peer_command=stub_peer_command(seen),
    )  # fmt: skip
    try:
        env = wait_for(seen)
        assert env["FRAUD_TOPIC_TRANSACTIONS"] == "bench-x-transactions"
        assert env["FRAUD_TOPIC_DECISIONS"] == "bench-x-decisions"
        assert env["FRAUD_TOPIC_DLQ"] == "bench-x-dlq"
        assert env["PEER_SYSTEM"] == "quix"
        assert messages == ["starting the stand-in for quix"]
        assert system.name == "quix"
        assert system.started_here
        assert system.metrics_ports == ()
        system.check_alive("127.0.0.1")  # running: no error
    finally:
        code = system.stop()
    assert code is not None
    assert system.popen is not None
    assert system.popen.poll() is not None


def test_a_peer_that_dies_is_reported_with_its_log(tmp_path: Path):
    code = "import sys; print('cannot reach the broker'); sys.exit(3)"
    system = start_system(
        "passthrough", Settings(), TOPICS, tmp_path / "passthrough.log",
        peer_command=stub_peer_command(tmp_path / "unused", code),
    )  # fmt: skip
    assert system.popen is not None
    system.popen.wait(30)
    with pytest.raises(InfraError, match="passthrough exited with code 3") as raised:
        system.check_alive("127.0.0.1")
    assert "cannot reach the broker" in str(raised.value)


def test_an_unknown_system_is_refused(tmp_path: Path):
    with pytest.raises(InfraError, match="unknown system 'flink'"):
        start_system("flink", Settings(), TOPICS, tmp_path / "x.log")
    assert SYSTEMS == ("fraudstream", "passthrough", "quix")


def test_scorer_processes_get_consecutive_free_ports():
    first = _free_ports("127.0.0.1", 3)
    for port in range(first, first + 3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # free: binding works
