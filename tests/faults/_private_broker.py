"""A Kafka broker of a test's own, for faults that take the broker down.

The session's broker is shared by every test; killing it would fail the others. This one
runs from the same cached jars with a temporary state dir and two free ports (client and
KRaft controller), and is always stopped when the test ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from streams.infra import LocalKafka
from streams.settings import Settings
from tests.integration._scorer import free_port, wait_until

__all__ = ["PrivateBroker", "private_broker"]


class PrivateBroker:
    """A single-node KRaft broker under ``state_dir``: start, ``kill -9``, start again."""

    def __init__(self, state_dir: Path, shared: Settings) -> None:
        self.settings = Settings(
            state_dir=state_dir,
            cache_dir=shared.cache_dir,  # the jars are fetched once, for every instance
            local_kafka_port=free_port(2),
            kafka_bootstrap=None,
        )
        self.kafka = LocalKafka(self.settings)

    @property
    def address(self) -> str:
        """What clients bootstrap from."""
        return self.kafka.address

    @property
    def env(self) -> dict[str, str]:
        """What points a child service (the scorer) at this broker and nowhere else."""
        return {"FRAUD_KAFKA_BOOTSTRAP": self.address}

    def start(self) -> float:
        """Start (or restart) it and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        status = self.kafka.start()
        assert status.running, status
        return time.monotonic() - started

    def kill(self) -> int:
        """``kill -9`` of the broker's java process; returns its pid once it is gone."""
        pid = self.kafka.process.pid()
        assert pid is not None, "the private broker is not running"
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            if self.kafka.process.pid() is None:  # reaps our own child, too
                return True
            with contextlib.suppress(psutil.NoSuchProcess):
                return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
            return True

        wait_until(gone, timeout_s=30, poll_s=0.05, what=f"broker pid {pid} to die")
        return pid

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL), if it runs."""
        self.kafka.stop(timeout_s=30)


@contextlib.contextmanager
def private_broker(state_dir: Path, shared: Settings) -> Iterator[PrivateBroker]:
    """A started private broker, stopped on the way out."""
    broker = PrivateBroker(state_dir, shared)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
