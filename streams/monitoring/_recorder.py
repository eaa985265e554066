"""A metrics view taken now and then in the background, for a report at the end of a run.

The demo shows the view as it was while traffic flowed (rates, latency over the last
second), not after the producer stopped, when every rate reads zero.
"""

from __future__ import annotations

import threading

from streams.monitoring._figures import MetricsView
from streams.monitoring._panels import snapshot
from streams.monitoring._scrape import discover
from streams.monitoring.exceptions import MonitoringError
from streams.settings import Settings

__all__ = ["ViewRecorder"]


class ViewRecorder:
    """Keeps the latest view, taken every ``every_s`` on a daemon thread until stopped."""

    def __init__(self, settings: Settings, every_s: float = 5.0) -> None:
        """Endpoints are discovered at each take, so late starters are found too."""
        self._settings = settings
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-recorder", daemon=True)
        self.latest: MetricsView | None = None

    def start(self) -> ViewRecorder:
        """Start taking views."""
        self._thread.start()
        return self

    def stop(self) -> MetricsView | None:
        """Stop, and return the last view taken (None if none was)."""
        self._stop.set()
        self._thread.join(timeout=self._every_s + 5)
        return self.latest

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.latest = snapshot(discover(self._settings), interval_s=1.0)
            except MonitoringError:
                continue  # nothing up yet, or between restarts: try again next time
