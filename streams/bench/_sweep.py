"""``--sweep``: the highest sustainable rate of each system, found by a bounded search.

One definition of "sustainable" (:class:`Criteria`) judges every run, and the same
search runs for every system: start at a rate, double while sustainable, then bisect
between the last good and the first bad rate. Each point is a full run on fresh topics
with a fresh system process, so one overloaded point cannot leave a backlog to the next.
Runs per system and the sweep's wall time are bounded; what stopped a search is said.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from schemas.exceptions import FraudstreamError
from streams.bench._report import rate_key
from streams.bench._resources import machine
from streams.bench._run import BenchConfig, bench_servers, run_point
from streams.bench._systems import SYSTEMS
from streams.settings import Settings

__all__ = [
    "Criteria",
    "SearchPlan",
    "SweepConfig",
    "SweepEvent",
    "next_rate",
    "run_sweep",
    "search",
    "summarise_system",
    "sweep_document",
]

#: Runs one point: the base config with the system and rate set, to its JSON document.
Runner = Callable[[BenchConfig], dict[str, Any]]

_MEMORY_USERS = (100_000, 1_000_000)
#: Wall time of a first point beyond its load: start-up, probe, encoding, drain, stop.
_POINT_OVERHEAD_S = 60.0


@dataclass(frozen=True)
class Criteria:
    """When a run's offered rate counts as sustainable (all four must hold).

    Measured over the run after its warm-up: p99 latency at most ``p99_ms``; no
    transaction without a decision or dead letter at the end of the drain; decisions
    per second at least ``min_throughput_share`` of the offered rate; and the backlog
    (sent minus accounted, per second) not growing: its least-squares slope at most
    ``max_lag_slope_share`` of the offered rate per second.
    """

    p99_ms: float = 50.0
    max_missing: int = 0
    min_throughput_share: float = 0.97
    max_lag_slope_share: float = 0.01

    def judge(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``{"sustainable": bool, "reasons": [...]}``; the reasons name what failed."""
        rate = float(doc["rate_target"])
        p99 = doc["latency_ms"]["p99"]
        slope = doc.get("lag_slope_eps")
        reasons = []
        if p99 is None or p99 > self.p99_ms:
            reasons.append(f"p99 {_ms(p99)} > {self.p99_ms:g} ms")
        if doc["missing"] > self.max_missing:
            reasons.append(f"{doc['missing']:,} missing")
        if doc["throughput_eps"] < self.min_throughput_share * rate:
            reasons.append(
                f"throughput {doc['throughput_eps']:,.0f}/s < "
                f"{self.min_throughput_share:.0%} of {rate:,.0f}/s"
            )
            sent = doc.get("generator", {}).get("send_rate_eps")
            if sent is not None and sent < self.min_throughput_share * rate:
                reasons.append(f"the generators sent only {sent:,.0f}/s")
        if slope is None:
            reasons.append("run too short to fit the backlog's slope")
        elif slope > self.max_lag_slope_share * rate:
            reasons.append(f"backlog growing {slope:,.0f}/s")
        return {"sustainable": not reasons, "reasons": reasons}

    def as_dict(self) -> dict[str, Any]:
        """The thresholds and the definition in words, for the JSON."""
        return {
            "p99_ms_max": self.p99_ms,
            "missing_max": self.max_missing,
            "throughput_share_min": self.min_throughput_share,
            "lag_slope_share_max": self.max_lag_slope_share,
            "definition": (
                "A rate is sustainable when, over the measured window (after warm-up): "
                f"p99 <= {self.p99_ms:g} ms, missing <= {self.max_missing}, achieved "
                f"throughput >= {self.min_throughput_share:.0%} of the offered rate, and "
                "the backlog (sent - accounted, per second) is not growing: its "
                f"least-squares slope <= {self.max_lag_slope_share:.0%} of the rate per second."
            ),
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


@dataclass(frozen=True)
class SearchPlan:
    """Start at ``start_rate``; grow by ``growth``; bisect until within ``resolution``."""

    start_rate: float
    growth: float = 2.0
    max_runs: int = 7
    resolution: float = 0.05
    min_rate: float = 10.0


def _round_rate(rate: float, good: float, bad: float) -> float | None:
    """``rate`` with as few significant digits as keep it strictly between the two."""
    for digits in (2, 3, 4):
        step = 10.0 ** (math.floor(math.log10(rate)) - digits + 1)
        rounded = float(round(rate / step) * step)
        if good < rounded < bad:
            return rounded
    return None


def next_rate(plan: SearchPlan, good: float | None, bad: float | None) -> float | None:
    """The next rate to try, or ``None`` when the boundary is found closely enough.

    ``good`` is the highest sustainable rate so far, ``bad`` the lowest unsustainable
    one. Before the first run: ``start_rate``. All good: grow. All bad: shrink (down to
    ``min_rate``). Both: bisect, until ``bad`` is within ``resolution`` of ``good``.
    """
    if bad is None:
        return plan.start_rate if good is None else float(round(good * plan.growth))
    if good is None:
        lower = float(round(bad / plan.growth))
        return lower if lower >= plan.min_rate else None
    if bad <= good * (1 + plan.resolution):
        return None
    return _round_rate((good + bad) / 2, good, bad)


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep: ``systems``, each point a ``base`` run at the search's rate."""

    base: BenchConfig
    systems: tuple[str, ...] = SYSTEMS
    #: A system's first rate, when it is not ``base.rate`` (systems differ by 100x).
    start_rates: dict[str, float] = field(default_factory=dict)
    growth: float = 2.0
    max_runs: int = 7
    resolution: float = 0.05
    budget_s: float = 3600.0
    memory: bool = True
    criteria: Criteria = field(default_factory=Criteria)


@dataclass(frozen=True)
class SweepEvent:
    """Progress of a sweep, for a display: a point started or judged, or a message."""

    kind: str  # "point", "verdict", "message", "stopped"
    system: str = ""
    rate: float = 0.0
    run: int = 0
    max_runs: int = 0
    sustainable: bool = False
    reasons: tuple[str, ...] = ()
    message: str = ""
    figures: str = ""


def _figures(doc: dict[str, Any]) -> str:
    if "latency_ms" not in doc:
        return ""
    latency, slope = doc["latency_ms"], doc.get("lag_slope_eps")
    return (
        f"{doc['throughput_eps']:,.0f} decisions/s, p50 {_ms(latency['p50'])} ms, "
        f"p99 {_ms(latency['p99'])} ms, backlog {'-' if slope is None else f'{slope:+,.0f}'}/s"
    )


def summarise_system(runs: list[dict[str, Any]], stopped: str) -> dict[str, Any]:
    """One system's entry: its highest sustainable rate, latency at every rate, RSS there."""
    judged = [run for run in runs if "latency_ms" in run]
    good = [run for run in judged if run["verdict"]["sustainable"]]
    bad = [run["rate_target"] for run in runs if not run["verdict"]["sustainable"]]
    best = max(good, key=lambda run: run["rate_target"], default=None)
    rss = (best or {}).get("system", {}).get("rss_peak_mib")
    return {
        "max_sustainable_eps": None if best is None else best["rate_target"],
        "latency_ms_at": {
            rate_key(run["rate_target"]): {
                key: run["latency_ms"][key] for key in ("p50", "p99", "p999")
            }
            for run in sorted(judged, key=lambda run: run["rate_target"])
        },
        "throughput_eps_at_max": None if best is None else best["throughput_eps"],
        "rss_mb": None if rss is None else round(rss * 2**20 / 1e6, 1),
        "first_unsustainable_eps": min(bad, default=None),
        "runs": len(runs),
        "stopped_because": stopped,
    }


def search(
    config: SweepConfig,
    system: str,
    run: Runner,
    deadline: float,
    emit: Callable[[SweepEvent], None],
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[dict[str, Any]], str]:
    """Every point of one system's search, judged; and why the search stopped.

    ``run`` measures one point; a point that raises counts as unsustainable, with the
    error as its reason, and ends the search if no point of the system ran at all. The
    first point always runs; a later one only if the previous point's wall time still
    fits before ``deadline`` (``clock``'s time).
    """
    start = config.start_rates.get(system, config.base.rate)
    plan = SearchPlan(start, config.growth, config.max_runs, config.resolution)
    good: float | None = None
    bad: float | None = None
    runs: list[dict[str, Any]] = []
    last_wall = 0.0
    while True:
        rate = next_rate(plan, good, bad)
        if rate is None:
            return runs, "boundary found" if good is not None else "no sustainable rate found"
        if len(runs) >= config.max_runs:
            return runs, f"max runs ({config.max_runs})"
        if runs and clock() + last_wall > deadline:
            return runs, "time budget"
        emit(SweepEvent("point", system, rate, len(runs) + 1, config.max_runs))
        began = clock()
        try:
            doc = run(replace(config.base, system=system, rate=rate, reuse_running=False))
            doc["verdict"] = config.criteria.judge(doc)
        except Exception as exc:  # a failed point is a verdict, not the end of the sweep
            failure = f"{type(exc).__name__}: {exc}"
            verdict = {"sustainable": False, "reasons": [f"run failed: {failure}"]}
            doc = {"rate_target": rate, "system": {"name": system}, "error": failure,
                   "verdict": verdict}  # fmt: skip
        last_wall = clock() - began
        runs.append(doc)
        verdict = doc["verdict"]
        emit(SweepEvent("verdict", system, rate, len(runs), config.max_runs,
                        verdict["sustainable"], tuple(verdict["reasons"]),
                        figures=_figures(doc)))  # fmt: skip
        if "error" in doc and not any("latency_ms" in earlier for earlier in runs):
            return runs, "the system could not be run"
        if verdict["sustainable"]:
            good = rate if good is None else max(good, rate)
        else:
            bad = rate if bad is None else min(bad, rate)


def _memory(emit: Callable[[SweepEvent], None]) -> dict[str, Any]:
    from streams.bench._memory import measure_bytes_per_user

    found: dict[str, Any] = {}
    for users in _MEMORY_USERS:
        emit(SweepEvent("message", "fraudstream", message=f"measuring state of {users:,} users"))
        try:
            found[str(users)] = measure_bytes_per_user(users)
        except FraudstreamError as exc:
            found[str(users)] = {"error": str(exc)}
    return found


def sweep_document(
    config: SweepConfig,
    results: dict[str, tuple[list[dict[str, Any]], str]],
    memory: dict[str, Any] | None,
    elapsed_s: float,
) -> dict[str, Any]:
    """The sweep's JSON: one entry per system, ``machine``, ``criteria`` and every run."""
    document: dict[str, Any] = {
        system: summarise_system(runs, stopped) for system, (runs, stopped) in results.items()
    }
    if "fraudstream" in document:
        document["fraudstream"]["processes"] = config.base.processes
        if memory is not None:
            document["fraudstream"]["memory"] = memory
            largest = memory.get(str(_MEMORY_USERS[-1]), {})
            document["fraudstream"]["bytes_per_user"] = largest.get("bytes_per_user")
    document["machine"] = machine()
    document["criteria"] = config.criteria.as_dict()
    document["sweep"] = {
        "systems": list(results),
        "start_rate": config.base.rate,
        "start_rates": {
            system: config.start_rates.get(system, config.base.rate) for system in results
        },
        "growth": config.growth,
        "max_runs": config.max_runs,
        "resolution": config.resolution,
        "duration_s": config.base.duration_s,
        "budget_s": config.budget_s,
        "elapsed_s": round(elapsed_s, 1),
    }
    document["runs"] = [run for runs, _ in results.values() for run in runs]
    return document


def run_sweep(
    settings: Settings, config: SweepConfig, emit: Callable[[SweepEvent], None]
) -> dict[str, Any]:
    """Sweep every system in turn and return the JSON document (see benchmarks/README.md).

    The time budget is shared out as the sweep goes: each system may use the time left
    divided by the systems left. The memory measurement runs after the sweeps, outside
    the budget (it loads no broker and no system, so it cannot disturb them).
    """
    started_at = datetime.now(tz=UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    deadline = began + config.budget_s
    results: dict[str, tuple[list[dict[str, Any]], str]] = {}

    def message(text: str, system: str = "") -> None:
        emit(SweepEvent("message", system, message=text))

    with bench_servers(settings, config.base.keep_servers, message) as server_pids:
        for left, system in zip(range(len(config.systems), 0, -1), config.systems, strict=True):

            def run(point: BenchConfig, system: str = system) -> dict[str, Any]:
                return run_point(settings, point, server_pids, lambda t: message(t, system))

            share = time.monotonic() + (deadline - time.monotonic()) / left
            results[system] = search(config, system, run, share, emit)
            emit(SweepEvent("stopped", system, message=results[system][1]))
    memory = _memory(emit) if config.memory and "fraudstream" in results else None
    document = sweep_document(config, results, memory, time.monotonic() - began)
    return {**document, "started_at": started_at}
