"""The scorer under test: found already running, or started here and stopped afterwards.

Also samples CPU and memory of the processes involved (scorer, broker, Redis, generator,
bench): on a small machine they share the cores, and a throughput figure means little
without knowing who used them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["ResourceSampler", "ScorerProcess", "find_running_scorer", "start_scorer"]

_MIB = 1024 * 1024
_READY_POLL_S = 0.2
_STOP_TIMEOUT_S = 20.0
#: A started scorer caches each decision in Redis; a short TTL keeps repeated benchmark
#: runs from filling the local Redis for a week.
_BENCH_DECISION_TTL_S = 900


def _log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        text = path.read_bytes()[-16_384:].decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def readiness(host: str, port: int, timeout_s: float = 1.0) -> int | None:
    """HTTP status of ``/readyz`` (200 ready, 503 starting), ``None`` if nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _listening_pid(port: int) -> int | None:
    """The process listening on ``port`` (for RSS), if this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
        ):
            pid: int | None = connection.pid
            return pid
    return None


@dataclass
class ScorerProcess:
    """A scorer serving ``/readyz`` on ``metrics_port``; ``popen`` is set if started here."""

    metrics_port: int
    pid: int | None
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _checked_at: float = 0.0

    @property
    def started_here(self) -> bool:
        """Only a scorer this bench started is stopped by it."""
        return self.popen is not None

    def check_alive(self, host: str) -> None:
        """Fail loudly if the scorer has gone: with its log's tail if started here.

        A scorer found running belongs to someone else and may be stopped mid-run; its
        ``/readyz`` is asked at most once a second.
        """
        if self.popen is not None:
            if self.popen.poll() is not None:
                tail = _log_tail(self.log_path)
                raise InfraError(f"the scorer exited with code {self.popen.returncode}:\n{tail}")
            return
        now = time.monotonic()
        if now - self._checked_at < 1.0:
            return
        self._checked_at = now
        if readiness(host, self.metrics_port) != 200:
            raise InfraError(f"the scorer on metrics port {self.metrics_port} stopped mid-run")

    def stop(self) -> int | None:
        """Interrupt the scorer started here (Ctrl-C, then SIGTERM, then SIGKILL)."""
        if self.popen is None:
            return None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            self.popen.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(_STOP_TIMEOUT_S)
        return self.popen.poll()


def find_running_scorer(settings: Settings, timeout_s: float = 30.0) -> ScorerProcess | None:
    """The scorer already serving on the default metrics port, waiting while it starts."""
    host, port = settings.metrics_host, settings.metrics_port
    deadline = time.monotonic() + timeout_s
    status = readiness(host, port)
    while status == 503 and time.monotonic() < deadline:
        time.sleep(_READY_POLL_S)
        status = readiness(host, port)
    if status is None:
        return None
    if status != 200:
        raise InfraError(f"a scorer on port {port} answers /readyz with {status}")
    return ScorerProcess(metrics_port=port, pid=_listening_pid(port))


def start_scorer(settings: Settings, topics: dict[str, str], log_path: Path) -> ScorerProcess:
    """Run ``fraudstream score`` on ``topics`` with its metrics on a free port; wait for it.

    ``topics`` maps ``transactions`` / ``decisions`` / ``dlq`` to the run's topic names.
    """
    port = _free_port(settings.metrics_host)
    env = os.environ | {
        "FRAUD_TOPIC_TRANSACTIONS": topics["transactions"],
        "FRAUD_TOPIC_DECISIONS": topics["decisions"],
        "FRAUD_TOPIC_DLQ": topics["dlq"],
        "FRAUD_METRICS_PORT": str(port),
        "FRAUD_DECISION_TTL_S": str(_BENCH_DECISION_TTL_S),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "score"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    scorer = ScorerProcess(metrics_port=port, pid=popen.pid, popen=popen, log_path=log_path)
    deadline = time.monotonic() + settings.startup_timeout_s
    while readiness(settings.metrics_host, port) != 200:
        try:
            scorer.check_alive(settings.metrics_host)
        except InfraError:
            scorer.stop()
            raise
        if time.monotonic() > deadline:
            scorer.stop()
            raise InfraError(f"the scorer was not ready within {settings.startup_timeout_s:.0f}s")
        time.sleep(_READY_POLL_S)
    return scorer


def _mib(size: int) -> float | None:
    return round(size / _MIB, 1) if size else None


@dataclass
class _Usage:
    process: Any
    children: bool
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    rss_start: int = 0
    rss: int = 0
    rss_peak: int = 0


@dataclass
class ResourceSampler:
    """CPU over a window and RSS (end and peak) of named processes, with their children."""

    interval_s: float = 1.0
    _usage: dict[str, _Usage] = field(default_factory=dict)
    _window: list[float] = field(default_factory=list)
    _system_busy: list[float] = field(default_factory=list)
    _last_sample: float = 0.0

    def watch(self, name: str, pid: int | None, *, children: bool = False) -> None:
        """Add a process (and its children); unknown or vanished pids are skipped.

        Only the scorer wants ``children`` (a multi-process scorer is a supervisor with
        one child per process); the bench's own children are the scorer and the
        generator, which are watched on their own and must not be counted twice.
        """
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            self._usage[name] = _Usage(psutil.Process(pid), children)

    @staticmethod
    def _tree(usage: _Usage) -> list[Any]:
        if usage.children:
            with contextlib.suppress(psutil.Error):
                return [usage.process, *usage.process.children(recursive=True)]
        return [usage.process]

    def _cpu(self, usage: _Usage) -> float:
        total = 0.0
        for process in self._tree(usage):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    @staticmethod
    def _busy_seconds() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def start_window(self) -> None:
        """Start of the CPU accounting window (when sending starts)."""
        self._window = [time.monotonic()]
        self._system_busy = [self._busy_seconds()]
        for usage in self._usage.values():
            usage.cpu_start = self._cpu(usage)
        self.sample(force=True)
        for usage in self._usage.values():
            usage.rss_start = usage.rss

    def end_window(self) -> None:
        """End of the CPU accounting window (when sending ends)."""
        self._window.append(time.monotonic())
        self._system_busy.append(self._busy_seconds())
        for usage in self._usage.values():
            usage.cpu_end = self._cpu(usage)

    def sample(self, force: bool = False) -> None:
        """Record RSS now, at most once per ``interval_s`` unless forced."""
        now = time.monotonic()
        if not force and now - self._last_sample < self.interval_s:
            return
        self._last_sample = now
        for usage in self._usage.values():
            rss = 0
            for process in self._tree(usage):
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            if rss:
                usage.rss = rss
                usage.rss_peak = max(usage.rss_peak, rss)

    def busy_cores(self) -> dict[str, float | None]:
        """Cores busy on the whole machine in the window, and how many of them not by us.

        On a shared machine another workload steals cores from the scorer; ``other``
        says how much, so a figure measured on a busy machine is not taken for the truth.
        """
        if len(self._window) != 2 or self._window[1] <= self._window[0]:
            return {"machine": None, "other": None}
        span = self._window[1] - self._window[0]
        machine = (self._system_busy[1] - self._system_busy[0]) / span
        ours = sum(usage.cpu_end - usage.cpu_start for usage in self._usage.values()) / span
        return {"machine": round(machine, 2), "other": round(max(0.0, machine - ours), 2)}

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Per process: CPU in the window (``cpu_percent``: 100 = one core busy) and RSS.

        RSS is taken when the window starts, at the end, and at its peak, so that memory
        growing with the number of transactions decided shows up as a slope.
        """
        span = self._window[1] - self._window[0] if len(self._window) == 2 else 0.0
        out: dict[str, dict[str, float | None]] = {}
        for name, usage in self._usage.items():
            cpu = (usage.cpu_end - usage.cpu_start) / span * 100 if span > 0 else None
            out[name] = {
                "cpu_percent": None if cpu is None else round(cpu, 1),
                "cpu_seconds": round(usage.cpu_end - usage.cpu_start, 2),
                "rss_start_mib": _mib(usage.rss_start),
                "rss_mib": _mib(usage.rss),
                "rss_peak_mib": _mib(usage.rss_peak),
            }
        return out
