"""Pid files, log files and signals for the servers ``infra up`` starts in the background.

Both local servers (Kafka and Redis) are handled the same way, so the rules live here once:

* a server owns one directory under the state dir, holding ``NAME.pid`` and ``NAME.log``;
  the process runs with that directory as its working directory, in its own session
  (Ctrl-C in the terminal that ran ``infra up`` does not reach it);
* a pid is trusted only if the process still looks like the one we started: it is alive
  (not a zombie), its working directory is the server directory, it is not younger than
  the pid file, and, when given, its command line contains a marker (the config path).
  A recycled pid therefore never gets a signal from ``infra down``. (A child of this very
  Python process is known exactly: it is checked through its ``Popen`` and reaped.);
* stopping is SIGTERM, then SIGKILL after a timeout, by pid, never by process name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from models._fs import private_dir
from streams.exceptions import InfraError

__all__ = ["ManagedProcess", "port_is_open", "tail_lines"]

T = TypeVar("T")

# psutil derives create_time from the boot time, which /proc only gives to the second.
_CLOCK_SLACK_S = 2.0
_TAIL_BYTES = 64 * 1024
_ZOMBIE: str = psutil.STATUS_ZOMBIE

# Children started by this Python process, kept so that we can reap them (no zombies, no
# "subprocess still running" warnings) when the same process also stops them, as tests do.
_CHILDREN: dict[int, tuple[Path, subprocess.Popen[bytes]]] = {}


class _NotGoneError(Exception):
    """The process is still there; raised only to drive tenacity's polling."""


def port_is_open(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """Tell whether something accepts TCP connections there, to refuse a taken port early."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (one installer at a time, across processes)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail_lines(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file for error messages, reading only its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return f"(no log file at {path})"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ManagedProcess:
    """A background server we started, found again later through its pid file."""

    name: str
    directory: Path
    marker: str | None = None

    def __post_init__(self) -> None:
        # the working-directory check compares resolved paths (/tmp may be a symlink)
        object.__setattr__(self, "directory", self.directory.expanduser().resolve())

    @property
    def pid_file(self) -> Path:
        """Where the pid of the running server is kept between commands."""
        return self.directory / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Standard output and error of the server (the previous run's is ``.log.1``)."""
        return self.directory / f"{self.name}.log"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise ``up`` and ``down`` so two concurrent commands cannot start two servers."""
        private_dir(self.directory)
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pid(self) -> int | None:
        """Return the pid of our running server, or None.

        Read-only on purpose: ``status`` may run while ``up`` holds the lock, so only
        ``stop`` (under the lock) removes a stale pid file, and ``spawn`` overwrites one.
        """
        recorded = self._recorded_pid()
        if recorded is not None and self._is_ours(recorded):
            return recorded
        return None

    def cmdline(self) -> list[str]:
        """Return the running server's command line (empty if not running), e.g. its classpath."""
        pid = self.pid()
        if pid is None:
            return []
        try:
            return [str(part) for part in psutil.Process(pid).cmdline()]
        except psutil.Error:
            return []

    def spawn(self, argv: Sequence[str]) -> int:
        """Start the server detached from the terminal, logging to its file; returns its pid."""
        private_dir(self.directory)
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))
        with self.log_file.open("ab") as log:
            try:
                child = subprocess.Popen(
                    list(argv),
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise InfraError(f"could not start {self.name} ({argv[0]}): {exc}") from exc
        _CHILDREN[child.pid] = (self.directory, child)
        tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
        tmp.write_text(f"{child.pid}\n", encoding="ascii")
        tmp.replace(self.pid_file)
        return child.pid

    def wait_ready(self, probe: Callable[[], T], *, timeout_s: float, what: str) -> T:
        """Poll ``probe`` until it returns, failing fast if the server dies meanwhile.

        ``probe`` raises while the server is not ready; its last error and the end of the
        log go into the :class:`InfraError` raised after ``timeout_s``.
        """

        def attempt() -> T:
            if self.pid() is None:
                raise InfraError(
                    f"{what} exited during start-up; last lines of {self.log_file}:\n"
                    f"{tail_lines(self.log_file)}"
                )
            return probe()

        retrying = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_not_exception_type(InfraError),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except InfraError:
            raise
        except Exception as exc:
            raise InfraError(
                f"{what} did not answer within {timeout_s:g} s ({exc}); "
                f"last lines of {self.log_file}:\n{tail_lines(self.log_file)}"
            ) from exc

    def stop(self, *, timeout_s: float = 30.0) -> int | None:
        """SIGTERM our server, SIGKILL it after ``timeout_s``; returns the pid it stopped.

        Returns None (and removes a stale pid file) when nothing of ours was running.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10.0):
                raise InfraError(f"{self.name} (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return pid

    # --- internals -------------------------------------------------------------------

    def _recorded_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() and int(text) > 0 else None

    def _is_ours(self, pid: int) -> bool:
        if pid in _CHILDREN:
            # our own unreaped child cannot have been recycled; and right after exec its
            # /proc cmdline may still be empty, so the checks below would be racy for it
            directory, child = _CHILDREN[pid]
            if child.poll() is None:
                return directory == self.directory
            del _CHILDREN[pid]
            return False
        try:
            proc = psutil.Process(pid)
            if proc.status() == _ZOMBIE:
                return False
            started = proc.create_time()
            cwd = Path(proc.cwd()).resolve()
            cmdline = " ".join(proc.cmdline())
            written = self.pid_file.stat().st_mtime
        except (psutil.Error, OSError):
            return False
        if cwd != self.directory or started > written + _CLOCK_SLACK_S:
            return False
        return self.marker is None or self.marker in cmdline

    def _signal(self, pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        def check() -> None:
            if not _is_gone(pid):
                raise _NotGoneError

        retrying = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential(multiplier=0.02, max=0.25),
            retry=retry_if_exception_type(_NotGoneError),
        )
        try:
            retrying(check)
        except RetryError:
            return False
        return True


def _reap(pid: int) -> bool:
    """Collect our own exited child, if it is one; return True when it has exited."""
    if pid not in _CHILDREN or _CHILDREN[pid][1].poll() is None:
        return False
    del _CHILDREN[pid]
    return True


def _is_gone(pid: int) -> bool:
    """Tell whether the process no longer runs (a zombie nobody reaps counts as gone)."""
    if _reap(pid):
        return True
    if pid in _CHILDREN:
        return False
    try:
        state: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return state == _ZOMBIE
