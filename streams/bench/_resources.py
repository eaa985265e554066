"""CPU and memory of the processes of a run: system under test, broker, Redis, generators.

On a small machine they all share the cores, and a throughput figure means little
without knowing who used them. (The systems themselves live in ``_systems.py``.)
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ResourceSampler", "machine"]

_MIB = 1024 * 1024


def machine() -> dict[str, Any]:
    """Where the figures come from: they mean little without the cores behind them."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _mib(size: int) -> float | None:
    return round(size / _MIB, 1) if size else None


@dataclass
class _Usage:
    processes: list[Any]
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

    def watch(
        self, name: str, pids: int | list[int | None] | None, *, children: bool = False
    ) -> None:
        """Add processes under one name (summed), with their children if ``children``.

        Unknown or vanished pids are skipped. Only the system under test wants
        ``children`` (a multi-process scorer is a supervisor with one child per
        process); the bench's own children are the system and the generators, which
        are watched on their own and must not be counted twice.
        """
        wanted = pids if isinstance(pids, list) else [pids]
        processes = []
        for pid in wanted:
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    processes.append(psutil.Process(pid))
        if processes:
            self._usage[name] = _Usage(processes, children)

    @staticmethod
    def _tree(usage: _Usage) -> list[Any]:
        if not usage.children:
            return usage.processes
        tree = []
        for process in usage.processes:
            tree.append(process)
            with contextlib.suppress(psutil.Error):
                tree.extend(process.children(recursive=True))
        return tree

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
