"""The systems under test: fraudstream's scorer and the two it is compared with.

Each is a separate OS process that reads the run's transactions topic and writes to its
decisions topic and DLQ, told which by the same ``FRAUD_TOPIC_*`` variables, so the bench
treats them alike: start, check alive, sample, stop. fraudstream's scorer may also be
one already running (then the bench uses it and its topics and never stops it). The
peers' commands come from :mod:`streams.bench.peers`; readiness is the bench's probe,
so they need no HTTP endpoint.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from streams.exceptions import InfraError
from streams.infra._process import tail_lines
from streams.settings import Settings

__all__ = [
    "SYSTEMS",
    "PeerCommand",
    "SystemProcess",
    "find_running_scorer",
    "readiness",
    "start_system",
]

#: fraudstream's scorer, the confluent-kafka passthrough (the limit), the Quix Streams peer.
SYSTEMS = ("fraudstream", "passthrough", "quix")
#: ``peer_command(system, settings, on_progress) -> (argv, extra_env)``.
PeerCommand = Callable[[str, Settings, Callable[[str], None]], tuple[list[str], dict[str, str]]]

_READY_POLL_S = 0.2
_STOP_TIMEOUT_S = 20.0
_PORT_ATTEMPTS = 50
#: A started scorer caches each decision in Redis; a short TTL keeps repeated benchmark
#: runs from filling the local Redis for a week.
_BENCH_DECISION_TTL_S = 900


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


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _free_ports(host: str, count: int) -> int:
    """The first of ``count`` consecutive free ports (scorer process ``i`` uses ``+i``)."""
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            first: int = probe.getsockname()[1]
        if all(_port_free(host, first + i) for i in range(1, count)):
            return first
    raise InfraError(f"found no {count} consecutive free ports on {host}")


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
class SystemProcess:
    """One system under test; ``popen`` is set when this bench started it (and stops it).

    ``metrics_ports`` are fraudstream's ``/readyz`` ports (one per scorer process); the
    peers have none.
    """

    name: str
    pid: int | None
    processes: int = 1
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    metrics_ports: tuple[int, ...] = field(default=())
    _checked_at: float = 0.0

    @property
    def started_here(self) -> bool:
        """Only a system this bench started is stopped by it."""
        return self.popen is not None

    def check_alive(self, host: str) -> None:
        """Fail loudly if the system has gone: with its log's tail if started here.

        A scorer found running belongs to someone else and may be stopped mid-run; its
        ``/readyz`` is asked at most once a second.
        """
        if self.popen is not None:
            if self.popen.poll() is not None:
                tail = "" if self.log_path is None else tail_lines(self.log_path, 30)
                raise InfraError(f"{self.name} exited with code {self.popen.returncode}:\n{tail}")
            return
        now = time.monotonic()
        if now - self._checked_at < 1.0 or not self.metrics_ports:
            return
        self._checked_at = now
        if readiness(host, self.metrics_ports[0]) != 200:
            raise InfraError(f"the scorer on metrics port {self.metrics_ports[0]} stopped mid-run")

    def stop(self) -> int | None:
        """Interrupt the system started here (Ctrl-C, then SIGTERM, then SIGKILL)."""
        if self.popen is None:
            return None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            self.popen.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(_STOP_TIMEOUT_S)
        return self.popen.poll()


def find_running_scorer(settings: Settings, timeout_s: float = 30.0) -> SystemProcess | None:
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
    return SystemProcess("fraudstream", pid=_listening_pid(port), metrics_ports=(port,))


def _scorer_command(settings: Settings, processes: int) -> tuple[list[str], dict[str, str]]:
    port = _free_ports(settings.metrics_host, processes)
    argv = [sys.executable, "-m", "streams.cli", "score"]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return argv, {"FRAUD_METRICS_PORT": str(port)}


def _default_peer_command(
    system: str, settings: Settings, on_progress: Callable[[str], None]
) -> tuple[list[str], dict[str, str]]:
    from streams.bench.peers import peer_command

    return peer_command(system, settings, on_progress)


def _wait_ready(settings: Settings, system: SystemProcess) -> None:
    """Wait for every scorer process's ``/readyz`` (models loaded); bounded."""
    deadline = time.monotonic() + settings.startup_timeout_s
    waiting = list(system.metrics_ports)
    while waiting:
        waiting = [port for port in waiting if readiness(settings.metrics_host, port) != 200]
        if not waiting:
            return
        try:
            system.check_alive(settings.metrics_host)
        except InfraError:
            system.stop()
            raise
        if time.monotonic() > deadline:
            system.stop()
            raise InfraError(
                f"the scorer was not ready within {settings.startup_timeout_s:.0f}s "
                f"(metrics ports {waiting} do not answer 200)"
            )
        time.sleep(_READY_POLL_S)


def start_system(
    name: str,
    settings: Settings,
    topics: dict[str, str],
    log_path: Path,
    *,
    processes: int = 1,
    on_progress: Callable[[str], None] = lambda _message: None,
    peer_command: PeerCommand | None = None,
) -> SystemProcess:
    """Start system ``name`` on ``topics`` (``transactions`` / ``decisions`` / ``dlq``).

    fraudstream runs ``fraudstream score [--processes N]`` with its metrics on free ports
    and is waited for until every process answers ``/readyz``; a peer runs the command
    ``peer_command`` gives and is ready when the bench's probe says so.
    """
    if name not in SYSTEMS:
        raise InfraError(f"unknown system {name!r}: choose from {', '.join(SYSTEMS)}")
    if name == "fraudstream":
        argv, extra = _scorer_command(settings, processes)
    else:
        argv, extra = (peer_command or _default_peer_command)(name, settings, on_progress)
    env = os.environ | {
        "FRAUD_TOPIC_TRANSACTIONS": topics["transactions"],
        "FRAUD_TOPIC_DECISIONS": topics["decisions"],
        "FRAUD_TOPIC_DLQ": topics["dlq"],
        # Every system caches decisions in Redis: 15 minutes, so repeated runs do not
        # fill the local Redis.
        "FRAUD_DECISION_TTL_S": str(_BENCH_DECISION_TTL_S),
        **extra,
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    ports: tuple[int, ...] = ()
    if name == "fraudstream":
        first = int(extra["FRAUD_METRICS_PORT"])
        ports = tuple(first + i for i in range(processes))
    system = SystemProcess(
        name,
        pid=popen.pid,
        processes=processes if name == "fraudstream" else 1,
        popen=popen,
        log_path=log_path,
        metrics_ports=ports,
    )
    _wait_ready(settings, system)
    return system
