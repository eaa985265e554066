"""Pid files, identity checks and stopping, with harmless processes we start ourselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from streams.exceptions import InfraError
from streams.infra._process import ManagedProcess, port_is_open, tail_lines

SLEEPER = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ignoring SIGTERM', flush=True)\n"
    "time.sleep(60)",
]


def logged(managed: ManagedProcess, text: str) -> Callable[[], None]:
    def probe() -> None:
        assert text in managed.log_file.read_text()

    return probe


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def managed(tmp_path: Path):
    process = ManagedProcess("sleeper", tmp_path / "sleeper")
    yield process
    process.stop(timeout_s=2)


def test_spawn_writes_pid_file_and_stop_removes_process_and_file(managed: ManagedProcess):
    pid = managed.spawn(SLEEPER)
    assert managed.pid_file.read_text().strip() == str(pid)
    assert managed.pid() == pid
    proc = psutil.Process(pid)
    assert Path(proc.cwd()) == managed.directory
    assert proc.pid != os.getpid()
    assert os.getsid(pid) == pid  # own session: Ctrl-C in our terminal does not reach it

    assert managed.stop(timeout_s=5) == pid
    assert gone(pid)
    assert not managed.pid_file.exists()
    assert managed.pid() is None
    assert managed.stop() is None  # nothing left to stop: harmless


def test_output_goes_to_the_log_file_and_the_previous_log_is_kept(managed: ManagedProcess):
    managed.spawn(SLEEPER)
    managed.wait_ready(logged(managed, "sleeping"), timeout_s=10, what="sleeper")
    managed.stop(timeout_s=5)
    managed.spawn(SLEEPER)
    previous = managed.log_file.with_name("sleeper.log.1")
    assert "sleeping" in previous.read_text()


def test_sigterm_is_followed_by_sigkill_after_the_timeout(managed: ManagedProcess):
    pid = managed.spawn(STUBBORN)
    managed.wait_ready(logged(managed, "ignoring"), timeout_s=10, what="stubborn")
    started = time.monotonic()
    assert managed.stop(timeout_s=0.5) == pid
    assert time.monotonic() - started < 5
    assert gone(pid)


def start_elsewhere(managed: ManagedProcess, argv: list[str]) -> subprocess.Popen[bytes]:
    """A server started by an earlier `fraudstream infra up`: not a child of this process."""
    managed.directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, cwd=managed.directory, stdout=subprocess.DEVNULL)
    managed.pid_file.write_text(f"{proc.pid}\n")
    return proc


def test_a_server_started_by_an_earlier_command_is_found_and_stopped(managed: ManagedProcess):
    proc = start_elsewhere(managed, SLEEPER)
    assert managed.pid() == proc.pid
    assert managed.stop(timeout_s=5) == proc.pid
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert not managed.pid_file.exists()


def test_a_pid_file_naming_someone_elses_process_is_ignored(managed: ManagedProcess):
    managed.directory.mkdir(parents=True)
    managed.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not started there by us
    assert managed.pid() is None
    assert managed.stop() is None  # it certainly gets no signal...
    assert not managed.pid_file.exists()  # ...and the stale pid file is cleaned up


def test_a_recycled_pid_younger_than_the_pid_file_is_not_ours(managed: ManagedProcess):
    proc = start_elsewhere(managed, SLEEPER)
    try:
        old = time.time() - 3600
        os.utime(managed.pid_file, (old, old))  # the file predates the process by an hour
        assert managed.pid() is None
        assert managed.stop() is None
        assert proc.poll() is None  # untouched
    finally:
        proc.kill()
        proc.wait()


def test_the_marker_must_appear_in_the_command_line(tmp_path: Path):
    marked = ManagedProcess("m", tmp_path / "m", marker="no-such-config.properties")
    proc = start_elsewhere(marked, SLEEPER)
    try:
        assert marked.pid() is None
        matching = ManagedProcess("m", tmp_path / "m", marker="time.sleep(60)")
        assert matching.pid() == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_garbage_or_stale_pid_files_mean_not_running(managed: ManagedProcess):
    managed.directory.mkdir(parents=True)
    for content in ("", "not a pid", "-5", "0", "99999999"):
        managed.pid_file.write_text(content)
        assert managed.pid() is None


def test_wait_ready_fails_fast_with_the_log_when_the_process_dies(managed: ManagedProcess):
    managed.spawn([sys.executable, "-c", "print('bind failed: port taken'); raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(InfraError, match="exited during start-up") as info:
        managed.wait_ready(lambda: 1 / 0, timeout_s=30, what="server")
    assert time.monotonic() - started < 10
    assert "bind failed: port taken" in str(info.value)


def test_wait_ready_times_out_with_the_last_error_and_the_log(managed: ManagedProcess):
    managed.spawn(SLEEPER)

    def never() -> None:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(InfraError, match="did not answer within 1 s") as info:
        managed.wait_ready(never, timeout_s=1, what="server")
    assert "nobody home" in str(info.value)


def test_tail_lines_reads_the_end_only(tmp_path: Path):
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    tail = tail_lines(log, 3)
    assert tail.splitlines() == ["line 99997", "line 99998", "line 99999"]
    assert "no log file" in tail_lines(tmp_path / "missing.log")


def test_port_is_open_tells_a_listening_port_from_a_closed_one():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_is_open("127.0.0.1", port)
    assert not port_is_open("127.0.0.1", port)


def test_spawning_a_missing_binary_is_an_infra_error(managed: ManagedProcess):
    with pytest.raises(InfraError, match="could not start sleeper"):
        managed.spawn(["/nonexistent/redis-server"])
