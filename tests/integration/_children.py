"""A fraudstream service as a child process group, the way an operator runs it.

Configured only through ``FRAUD_*`` variables, stopped with Ctrl-C (SIGINT) or, for crash
tests, ``kill -9`` of its whole group. Its output goes to a log file whose tail failure
messages show; :meth:`ChildService.metric` scrapes its ``/metrics``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ChildService"]


class ChildService:
    """One command in its own process group; use as a context manager (always stopped)."""

    name = "service"

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        metrics_port: int,
        stop_timeout_s: float = 30,
    ) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start it; a stopped or killed one can be started again (same settings)."""
        assert self._process is None or self._process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {' '.join(self.args[1:])}\n".encode())
            self._process = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: kill -9 reaches every child
            )
        self.returncode = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """Ctrl-C, then ``kill -9`` of the group if it has not exited in time."""
        process = self._process
        if process is None:
            return self.returncode
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_group(process)
        self._reap(process)
        return self.returncode

    def kill(self) -> None:
        """``kill -9`` of the service and all its children, with no chance to clean up."""
        if self._process is not None:
            self._kill_group(self._process)
            self._reap(self._process)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _reap(self, process: subprocess.Popen[bytes]) -> None:
        self.returncode = process.wait(self.stop_timeout_s)
        # Children of a multi-process run may outlive a killed parent: end the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self._process = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's output, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no {self.name} log)"
        return f"--- {self.name} log ({self.log_path}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def metric(self, name: str, process: int = 0) -> dict[tuple[tuple[str, str], ...], float]:
        """Samples of one metric scraped from process ``process``'s /metrics, by labels."""
        url = f"http://127.0.0.1:{self.metrics_port + process}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    def assert_running(self) -> None:
        """Fail at once (with its log) if it died instead of waiting out a timeout."""
        assert self.running, (
            f"{self.name} exited with {self._process and self._process.poll()}\n" + self.log_tail()
        )
