"""The benchmark's arithmetic and its table: raw observations in, the JSON summary out.

Kept free of Kafka and processes so the percentile and rate maths can be unit-tested
with hand-made arrays; a wrong p99 would otherwise hide behind a plausible-looking run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.table import Table

__all__ = [
    "Observations",
    "lag_slope",
    "lag_timeline",
    "percentiles",
    "rate_key",
    "render_sweep",
    "render_table",
    "summarise",
    "timeline",
    "warmup_for",
]

_POINTS = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000
_MIN_WARMUP_S = 2.0
_WARMUP_SHARE = 0.1


def warmup_for(duration_s: float, requested_s: float | None = None) -> float:
    """Seconds discarded at the start: 10 % of the run, at least 2 s, at most half of it.

    The scorer loads its model and fills its caches on the first batches; counting them
    would measure start-up, not steady state. Half the run is the cap so that a short
    run still measures something.
    """
    if requested_s is not None:
        return max(0.0, min(requested_s, duration_s))
    return min(max(_MIN_WARMUP_S, _WARMUP_SHARE * duration_s), duration_s / 2)


def percentiles(values: NDArray[Any]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99/p99.9 and max; ``None`` each when there is no sample.

    Nearest rank (numpy's ``inverted_cdf``) reports a latency that really happened
    rather than an interpolation between two; for tail percentiles of a few thousand
    samples that is the honest choice.
    """
    if values.size == 0:
        empty: dict[str, float | None] = {name: None for name, _ in _POINTS}
        return empty | {"max": None}
    found = np.percentile(values, [point for _, point in _POINTS], method="inverted_cdf")
    summary: dict[str, float | None] = {
        name: float(value) for (name, _), value in zip(_POINTS, found, strict=True)
    }
    summary["max"] = float(values.max())
    return summary


@dataclass
class Observations:
    """Everything one run saw, indexed by the generator's transaction number.

    ``sent_ns[i]`` is the wall-clock send time of transaction ``i`` (its Kafka
    CreateTime is ``sent_ns[i] // 1e6``); each decision record received contributes one
    entry to ``decision_index`` (which transaction), ``decision_ms`` (its Kafka
    timestamp) and ``received_ns`` (when the bench consumed it); each dead letter one
    entry to ``dlq_index`` and ``dlq_received_ns``. Repeats are possible (at-least-once)
    and are counted once.
    """

    rate: float
    duration_s: float
    warmup_s: float
    start_ns: int
    sent_ns: NDArray[np.int64]
    decision_index: NDArray[np.int64]
    decision_ms: NDArray[np.int64]
    received_ns: NDArray[np.int64]
    decision_cause: NDArray[np.str_]
    dlq_index: NDArray[np.int64]
    dlq_received_ns: NDArray[np.int64]
    delivered: int = 0
    failed: int = 0


def _first_of_each(index: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions of the first record of each transaction (a repeat is not a new decision)."""
    _, first = np.unique(index, return_index=True)
    return np.sort(first)


def _per_second(count: int, span_ns: float) -> float:
    if count < 2 or span_ns <= 0:
        return 0.0
    return (count - 1) / (span_ns / 1e9)


def timeline(
    second: NDArray[np.int64], latency_ms: NDArray[Any], seconds: int
) -> list[dict[str, float | int | None]]:
    """Decisions and latency p50/p99/max per second of the schedule, warm-up included.

    A backlog shows as latency climbing second after second; a periodic stall (an epoch
    snapshot, a GC pause) as a spike every few seconds. Both hide in one p99.
    """
    order = np.argsort(second, kind="stable")
    sorted_seconds = second[order]
    bounds = np.searchsorted(sorted_seconds, np.arange(seconds + 1))
    rows: list[dict[str, float | int | None]] = []
    for s in range(seconds):
        values = latency_ms[order[bounds[s] : bounds[s + 1]]]
        points = percentiles(values)
        rows.append(
            {"s": s, "decisions": int(values.size)}
            | {key: points[key] for key in ("p50", "p99", "max")}
        )
    return rows


def lag_timeline(
    sent_ns: NDArray[np.int64], accounted_ns: NDArray[np.int64], start_ns: int, seconds: int
) -> list[dict[str, int]]:
    """Per second ``s`` of the schedule, at its end: sent, accounted and the backlog.

    ``accounted_ns`` holds, per transaction, when the bench first read its decision or
    dead letter. The backlog (sent so far minus accounted so far) is the consumer lag
    as the bench sees it: flat when the system keeps up (the transactions in flight),
    growing second after second when it does not.
    """
    ends = start_ns + np.arange(1, seconds + 1, dtype=np.int64) * 1_000_000_000
    sent = np.searchsorted(np.sort(sent_ns), ends, side="right")
    accounted = np.searchsorted(np.sort(accounted_ns), ends, side="right")
    return [
        {"s": s, "sent": int(sent[s]), "accounted": int(accounted[s]),
         "backlog": int(sent[s] - accounted[s])}
        for s in range(seconds)
    ]  # fmt: skip


def lag_slope(rows: list[dict[str, int]], from_s: float) -> float | None:
    """Least-squares growth of the backlog, per second, over the seconds from ``from_s``.

    ``None`` when fewer than two seconds are left to fit.
    """
    points = [(row["s"], row["backlog"]) for row in rows if row["s"] >= math.ceil(from_s)]
    if len(points) < 2:
        return None
    x = np.asarray([s for s, _ in points], dtype=np.float64)
    y = np.asarray([backlog for _, backlog in points], dtype=np.float64)
    slope = float(np.polyfit(x, y, 1)[0])
    return round(slope, 1) + 0.0  # no "-0.0" in the JSON


def _accounted_ns(obs: Observations) -> NDArray[np.int64]:
    """When each accounted transaction was first read back (decision or dead letter)."""
    index = np.concatenate([obs.decision_index, obs.dlq_index])
    received = np.concatenate([obs.received_ns, obs.dlq_received_ns])
    order = np.argsort(received, kind="stable")
    _, first = np.unique(index[order], return_index=True)
    return np.asarray(received[order][first], dtype=np.int64)


def summarise(obs: Observations) -> dict[str, Any]:
    """The benchmark's JSON document (without the machine and scorer sections).

    ``latency_ms`` is decision produced minus transaction produced, both Kafka timestamps
    in ms from the same clock. ``e2e_us`` is the bench's own send-to-receive time in µs.
    ``latency_from_schedule_ms`` counts from when the schedule wanted the transaction
    sent, so a generator starved of CPU cannot hide latency. All three cover only
    transactions scheduled after the warm-up. Throughput is measured decisions per
    second between the first and the last of them, so a scorer that falls behind shows
    its real capacity rather than the offered rate.
    """
    events = int(obs.sent_ns.size)
    schedule_ns = obs.start_ns + (np.arange(1, events + 1) * (1e9 / obs.rate)).astype(np.int64)
    first = _first_of_each(obs.decision_index)
    index = obs.decision_index[first]
    causes = obs.decision_cause[first]
    cause_names, cause_counts = np.unique(causes[causes != ""], return_counts=True)
    dlq = int(np.unique(obs.dlq_index).size)

    all_latency_ms = obs.decision_ms[first] - obs.sent_ns[index] // _NS_PER_MS
    by_second = timeline(
        (index / obs.rate).astype(np.int64), all_latency_ms, math.ceil(obs.duration_s)
    )
    warmup_events = math.ceil(obs.warmup_s * obs.rate)
    measured = first[index >= warmup_events]
    tx = obs.decision_index[measured]
    decided_ms = obs.decision_ms[measured]
    sent_ns = obs.sent_ns[tx]
    span_ns = float(decided_ms.max() - decided_ms.min()) * _NS_PER_MS if decided_ms.size else 0.0
    send_span_ns = float(obs.sent_ns[-1] - obs.sent_ns[0]) if events else 0.0
    behind_ms = np.maximum((obs.sent_ns - schedule_ns) / _NS_PER_MS, 0.0)
    lag = lag_timeline(obs.sent_ns, _accounted_ns(obs), obs.start_ns, math.ceil(obs.duration_s))
    return {
        "rate_target": obs.rate,
        "throughput_eps": round(_per_second(int(decided_ms.size), span_ns), 1),
        "latency_ms": percentiles(decided_ms - sent_ns // _NS_PER_MS),
        "events": events,
        "decisions": int(index.size),
        "dlq": dlq,
        "missing": max(0, events - int(index.size) - dlq),
        "duplicates": int(obs.decision_index.size - index.size),
        "degraded": int(cause_counts.sum()),
        "degraded_causes": {
            str(name): int(count) for name, count in zip(cause_names, cause_counts, strict=True)
        },
        "measured_events": max(0, events - warmup_events),
        "measured_decisions": int(decided_ms.size),
        "duration_s": obs.duration_s,
        "warmup_s": obs.warmup_s,
        "e2e_us": percentiles((obs.received_ns[measured] - sent_ns) / _NS_PER_US),
        "latency_from_schedule_ms": percentiles(decided_ms - schedule_ns[tx] / _NS_PER_MS),
        "generator": {
            "send_rate_eps": round(_per_second(events, send_span_ns), 1),
            "delivered": obs.delivered,
            "failed": obs.failed,
            "behind_schedule_ms": percentiles(behind_ms),
        },
        "timeline": by_second,
        "lag_timeline": lag,
        "lag_slope_eps": lag_slope(lag, obs.warmup_s),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _degraded(result: dict[str, Any]) -> str:
    causes = result.get("degraded_causes") or {}
    detail = ", ".join(f"{cause} {count:,}" for cause, count in causes.items())
    return f"{result['degraded']:,}" + (f" ({detail})" if detail else "")


def render_table(result: dict[str, Any]) -> Table:
    """A one-screen view of the JSON: throughput, latency percentiles, counts, system."""
    name = (result.get("system") or {}).get("name", "fraudstream")
    table = Table(title=f"{name} bench @ {result['rate_target']:,.0f} tx/s", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    latency, e2e = result["latency_ms"], result["e2e_us"]
    generator = result["generator"]
    rows = [
        ("throughput (decisions/s)", _fmt(result["throughput_eps"])),
        ("sent (tx/s)", _fmt(generator["send_rate_eps"])),
        ("latency p50 / p95 (ms)", f"{_fmt(latency['p50'], 0)} / {_fmt(latency['p95'], 0)}"),
        ("latency p99 / p99.9 (ms)", f"{_fmt(latency['p99'], 0)} / {_fmt(latency['p999'], 0)}"),
        ("latency max (ms)", _fmt(latency["max"], 0)),
        ("end-to-end p50 / p99 (µs)", f"{_fmt(e2e['p50'], 0)} / {_fmt(e2e['p99'], 0)}"),
        ("generator behind schedule p99 (ms)", _fmt(generator["behind_schedule_ms"]["p99"])),
        ("events / decisions / dlq", f"{result['events']:,} / {result['decisions']:,} / "
         f"{result['dlq']:,}"),
        ("missing / duplicates", f"{result['missing']:,} / {result['duplicates']:,}"),
        ("degraded decisions", _degraded(result)),
        ("duration / warm-up discarded (s)", f"{result['duration_s']:g} / {result['warmup_s']:g}"),
        ("backlog growth (tx/s per s)", _fmt(result.get("lag_slope_eps"))),
    ]  # fmt: skip
    verdict = result.get("verdict")
    if verdict is not None:
        why = "; ".join(verdict["reasons"])
        rows.append(("sustainable", "yes" if verdict["sustainable"] else f"no: {why}"))
    system = result.get("system") or {}
    if system:
        rss = " / ".join(
            _fmt(system.get(key)) for key in ("rss_start_mib", "rss_mib", "rss_peak_mib")
        )
        rows.append((f"{name} processes", str(system.get("processes", 1))))
        rows.append((f"{name} RSS start / end / peak (MiB)", rss))
        rows.append((f"{name} CPU (% of one core)", _fmt(system.get("cpu_percent"))))
        rows.append((f"{name} CPU per decision (µs)", _fmt(system.get("cpu_us_per_decision"))))
    busy = result.get("busy_cores") or {}
    if busy.get("machine") is not None:
        rows.append(("cores busy: all / not ours", f"{busy['machine']:.2f} / {busy['other']:.2f}"))
    machine = result.get("machine") or {}
    if machine:
        rows.append(("machine", f"{machine.get('cores')} cores, {machine.get('cpu')}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def render_sweep(document: dict[str, Any]) -> Table:
    """The sweep on one screen: each system's limit, its latency there, and its memory."""
    table = Table(title="fraudstream bench --sweep")
    for column in ("system", "max sustainable tx/s", "first unsustainable", "p50 / p99 / p99.9 ms",
                   "RSS MB", "runs", "search ended"):  # fmt: skip
        table.add_column(
            column, justify="left" if column in ("system", "search ended") else "right"
        )
    for name in ("fraudstream", "passthrough", "quix"):
        entry = document.get(name)
        if entry is None:
            continue
        best = entry["max_sustainable_eps"]
        at = entry["latency_ms_at"].get(rate_key(best), {}) if best is not None else {}
        latency = " / ".join(_fmt(at.get(key), 0) for key in ("p50", "p99", "p999"))
        table.add_row(
            name, _fmt(best, 0), _fmt(entry["first_unsustainable_eps"], 0), latency,
            _fmt(entry["rss_mb"]), str(entry["runs"]), entry["stopped_because"],
        )  # fmt: skip
    per_user = (document.get("fraudstream") or {}).get("bytes_per_user")
    if per_user is not None:
        table.caption = (
            f"fraudstream state: {per_user:,.0f} bytes per active user (1,000,000 users)"
        )
    return table


def rate_key(rate: float) -> str:
    """A rate as the sweep JSON's ``"<rate>"`` key: ``"2000"``, ``"2500.5"``."""
    return str(int(rate)) if float(rate).is_integer() else f"{rate}"
