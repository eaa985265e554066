"""/metrics, /healthz and /readyz listen on 127.0.0.1 only, unless configured otherwise.

A running scorer and a running feedback service, with default ``FRAUD_METRICS_HOST``:
every TCP socket their process trees listen on is bound to a loopback address (read from
the kernel with psutil, not inferred from settings), the endpoint answers on 127.0.0.1,
and a connection to the same port on each non-loopback address of this machine is
refused. Their state folders (recovery, feedback) are mode 0700.
"""

from __future__ import annotations

import ipaddress
import socket
import stat
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.integration._children import ChildService
from tests.integration._feedback import FeedbackProcess, FeedbackTopics
from tests.integration._scorer import Scorer, ScoreTopics, wait_until

pytestmark = pytest.mark.integration

STARTUP_S = 180  # a busy 2-core machine


def _answers(port: int, path: str = "/healthz") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _listening(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every listening TCP socket of ``pid`` and its descendants."""
    root = psutil.Process(pid)
    found = []
    for process in [root, *root.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback (empty on an isolated box)."""
    return [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET
        and not ipaddress.ip_address(address.address).is_loopback
    ]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def _assert_loopback_only(service: ChildService, pid: int) -> None:
    listening = _listening(pid)
    assert service.metrics_port in {port for _ip, port in listening}, listening
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _port in listening), listening
    others = _other_addresses()
    reachable = [host for host in others if _reachable(host, service.metrics_port)]
    print(
        f"{service.name}: listening {sorted(listening)}; port {service.metrics_port} "
        f"refused on {len(others) - len(reachable)}/{len(others)} non-loopback addresses"
    )
    assert reachable == []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pid(service: ChildService) -> int:
    process = service._process  # the child's own pid: its listeners are its or its kids'
    assert process is not None
    return process.pid


def test_the_scorer_serves_metrics_on_loopback_only(
    score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
):
    recovery = tmp_path / "recovery"
    with Scorer(score_topics, tmp_path / "scorer.log", model_dir=model_dir,
                recovery_dir=recovery) as scorer:  # fmt: skip
        wait_until(lambda: _answers(scorer.metrics_port), timeout_s=STARTUP_S,
                   what="scorer /healthz", diagnose=scorer.log_tail)  # fmt: skip
        assert _answers(scorer.metrics_port, "/metrics")
        _assert_loopback_only(scorer, _pid(scorer))
    assert _mode(recovery) == 0o700


def test_the_feedback_service_serves_metrics_on_loopback_only(
    feedback_topics: FeedbackTopics, tmp_path: Path
):
    state = tmp_path / "state"
    with FeedbackProcess(feedback_topics, state) as service:
        wait_until(service.ready, timeout_s=STARTUP_S, what="feedback ready",
                   diagnose=service.log_tail)  # fmt: skip
        assert _answers(service.metrics_port, "/metrics")
        _assert_loopback_only(service, _pid(service))
        assert _mode(state / "feedback") == 0o700
        assert _mode(state / "feedback" / "faust") == 0o700
