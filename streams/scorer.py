"""Running the scoring dataflow: one process, or a local Bytewax cluster of several.

With ``processes > 1`` this process becomes a supervisor that starts one child per
Bytewax process (each given the cluster's addresses and its id), forwards Ctrl-C/SIGTERM
to them and exits with the worst exit code. Kafka partitions are shared among all
workers of the cluster.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import structlog
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from models._fs import private_dir
from streams._score_steps import ScoreSteps
from streams.dataflow import build_score_flow, epoch_interval
from streams.lag import LagMonitor
from streams.logs import configure_logging
from streams.metrics import Health, serve_metrics
from streams.redis_store import RedisStore
from streams.settings import Settings

__all__ = ["GcFreezer", "cluster_addresses", "prepare_recovery", "run_scorer", "tune_gc"]

_log = structlog.get_logger("scorer")
_CLUSTER_BASE_PORT = 2101


def cluster_addresses(processes: int, base_port: int = _CLUSTER_BASE_PORT) -> list[str]:
    """Loopback addresses of a local cluster, one per process."""
    return [f"127.0.0.1:{base_port + i}" for i in range(processes)]


def prepare_recovery(recovery_dir: Path, partitions: int) -> RecoveryConfig:
    """Create the recovery partitions once (mode 0700); later runs resume from them."""
    private_dir(recovery_dir)
    if not any(recovery_dir.glob("part-*.sqlite3")):
        init_db_dir(recovery_dir, partitions)
    return RecoveryConfig(str(recovery_dir))


def _interrupted(error: BaseException) -> bool:
    """True when Ctrl-C caused ``error``: Bytewax re-raises it as its own runtime error."""
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


#: How long a cluster member may take to stop once signalled before it exits hard.
_MEMBER_STOP_GRACE_S = 8.0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _exit_hard_later(grace_s: float) -> None:
    """Exit with 130 after ``grace_s`` unless the process has stopped by then."""

    def exit_now() -> None:
        _log.warning("scorer_stop_forced", step="score", grace_s=grace_s)
        os._exit(130)

    timer = threading.Timer(grace_s, exit_now)
    timer.daemon = True
    timer.start()


def _stop_on_signals(*, member: bool) -> None:
    """Ctrl-C and SIGTERM stop the scorer cleanly, however it was started.

    A process started in the background by a non-interactive shell inherits SIGINT as
    ignored, and Python then never raises KeyboardInterrupt: install the handlers here.
    A cluster member signalled alone (one pod of a StatefulSet) waits forever for its
    peers to stop with it; it exits hard after a grace period instead, which its
    recovery store (or the source's offsets) makes safe.
    """

    def interrupt(signum: int, frame: object) -> None:
        if member:
            _exit_hard_later(_MEMBER_STOP_GRACE_S)
        _interrupt(signum, frame)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _supervise(settings: Settings, processes: int, workers: int, recovery: Path | None) -> int:
    addresses = ",".join(cluster_addresses(processes))
    if recovery is not None:
        prepare_recovery(recovery, processes * workers)
    children = []
    for process_id in range(processes):
        args = [
            sys.executable, "-m", "streams.cli", "score",
            "--processes", str(processes), "--workers", str(workers),
            "--process-id", str(process_id), "--addresses", addresses,
        ]  # fmt: skip
        if recovery is not None:
            args += ["--recovery-dir", str(recovery)]
        children.append(subprocess.Popen(args))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    return max((abs(code) for code in codes), default=0)


class GcFreezer(threading.Thread):
    """Calls ``gc.freeze()`` every ``every_s`` seconds until stopped."""

    def __init__(self, every_s: float) -> None:
        super().__init__(name="gc-freeze", daemon=True)
        self._every_s = every_s
        self._stopped = threading.Event()

    def run(self) -> None:
        """Freeze, wait, repeat."""
        while not self._stopped.wait(self._every_s):
            gc.freeze()

    def stop(self) -> None:
        """Stop freezing (what is frozen stays frozen)."""
        self._stopped.set()


def tune_gc(gen0_threshold: int, freeze_every_s: float = 0.0) -> GcFreezer | None:
    """Keep the cyclic GC off the scorer's state: it is millions of long-lived objects.

    With Python's defaults, a full collection walked every user's windows: 18 pauses of
    up to 1.1 s in a 150,000-event run with 200,000 users, 7 s of its 29 s of CPU
    (benchmarks/README.md). Here, every ``freeze_every_s`` a side thread moves every
    object alive into the permanent generation (``gc.freeze``, a list splice), so each
    collection walks only what the last second allocated: pauses stay under ~50 ms.
    Frozen objects are still freed by reference counting; only a reference cycle that
    survives a second of young collections is never collected (the scorer's state has
    none). 0 and 0.0 keep Python's defaults. Returns the freezing thread, if started.
    """
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
    if freeze_every_s <= 0:
        return None
    gc.freeze()
    freezer = GcFreezer(freeze_every_s)
    freezer.start()
    return freezer


def _ready_when_models_are(steps: ScoreSteps, health: Health) -> None:
    """/readyz turns 200 once the models published on ``model-updates`` are loaded.

    A process that would decide its first batches rules-only is alive, not ready.
    """
    while not steps.wait_ready(5.0):
        _log.info("scorer_waiting_for_models", step="score")
    health.ready.set()


def run_scorer(
    settings: Settings,
    *,
    processes: int = 1,
    workers: int = 1,
    recovery_dir: Path | None = None,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> int:
    """Run until interrupted; returns the exit code."""
    if processes > 1 and process_id is None:
        return _supervise(settings, processes, workers, recovery_dir)
    index = process_id or 0
    _stop_on_signals(member=process_id is not None)
    configure_logging(settings.log_level, service="scorer", process=index)
    health = Health()
    server = serve_metrics(settings.metrics_host, settings.metrics_port + index, health)
    recovery = None
    if recovery_dir is not None:
        recovery = (
            prepare_recovery(recovery_dir, processes * workers)
            if process_id is None
            else RecoveryConfig(str(recovery_dir))
        )
    steps = ScoreSteps(settings)
    flow = build_score_flow(settings, steps=steps)
    tune_gc(settings.gc_gen0_threshold, settings.gc_freeze_interval_s)
    lag = LagMonitor(settings, "scorer", steps.positions.snapshot).start()
    drift = steps.drift.start(RedisStore(settings.redis_dsn, timeout_s=2.0, backoff_s=5.0))
    _log.info(
        "scorer_started",
        step="score",
        processes=processes,
        workers=workers,
        metrics_port=settings.metrics_port + index,
        recovery=str(recovery_dir) if recovery_dir else None,
    )
    threading.Thread(
        target=_ready_when_models_are, args=(steps, health), name="readiness", daemon=True
    ).start()
    try:
        cli_main(
            flow,
            workers_per_process=workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=epoch_interval(settings, recovery=recovery is not None),
            recovery_config=recovery,
        )
    except KeyboardInterrupt:
        return 130
    except BytewaxRuntimeError as exc:
        if _interrupted(exc):
            return 130
        raise
    finally:
        health.alive = False
        lag.stop()
        drift.stop()
        server.shutdown()
    return 0
