"""Arithmetic on scraped samples: sums and maxima over processes, counter increases, buckets.

Separate from the panel figures so the two rules that make the numbers right are in one
place and tested directly: a counter that goes down was reset (its new value is the
increase, as in Prometheus' ``rate``), and quantiles interpolate inside a bucket as
``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.monitoring._scrape import Sample, Samples, Scrape, classify

__all__ = [
    "Pair",
    "bucket_counts",
    "bucket_increase",
    "histogram_quantile",
    "increase",
    "maxes",
    "merged",
    "pair_up",
    "rates",
    "samples_of",
    "series_key",
    "sums",
]


def increase(previous: float | None, current: float) -> float:
    """How much a counter grew from ``previous`` to ``current``; a drop is a reset.

    ``previous`` None means the series did not exist yet, i.e. it started at zero.
    """
    if not math.isfinite(current):
        return 0.0
    if previous is None or not math.isfinite(previous) or current < previous:
        return current
    return current - previous


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets`` (upper bound -> count), as Prometheus.

    Linear interpolation inside the bucket holding the rank (the first bucket starts at
    0); a rank in the +Inf bucket gives the highest finite bound. None without observations.
    """
    items = sorted(buckets.items())
    if len(items) < 2 or not math.isinf(items[-1][0]) or not items[-1][1] > 0:
        return None
    rank = q * items[-1][1]
    lower, below = 0.0, 0.0
    for index, (upper, raw_count) in enumerate(items):
        count = max(raw_count, below)  # cumulative counts never decrease
        if count >= rank:
            if math.isinf(upper):
                return items[-2][0]
            if index == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return items[-2][0]


@dataclass(frozen=True)
class Pair:
    """One endpoint at both scrapes (samples None: down, or not scraped)."""

    url: str
    service: str
    up: bool
    error: str | None
    before: Samples | None
    after: Samples | None


def pair_up(before: Scrape | None, after: Scrape) -> list[Pair]:
    """Each endpoint of ``after`` with its samples at ``before`` (None unless up at both)."""
    earlier = {} if before is None else {r.endpoint.url: r.samples for r in before.readings}
    pairs = []
    for reading in after.readings:
        service = reading.endpoint.service
        if service == "unknown" and reading.samples is not None:
            service = classify(reading.samples)
        previous = earlier.get(reading.endpoint.url)
        pairs.append(
            Pair(
                reading.endpoint.url,
                service,
                reading.up,
                reading.error,
                previous if reading.up else None,
                reading.samples,
            )
        )
    return pairs


def samples_of(samples: Samples | None, name: str) -> Sequence[Sample]:
    """The samples called ``name`` (none when the endpoint is down or lacks them)."""
    return () if samples is None else samples.get(name, ())


def series_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a series within one metric: its sorted labels."""
    return tuple(sorted(labels.items()))


def sums(readings: Iterable[Samples], name: str, label: str | None = None) -> dict[str, float]:
    """Finite values of ``name`` summed over readings, by ``label`` (``""`` for none)."""
    out: dict[str, float] = {}
    for samples in readings:
        for sample in samples_of(samples, name):
            if math.isfinite(sample.value):
                group = sample.labels.get(label, "") if label else ""
                out[group] = out.get(group, 0.0) + sample.value
    return out


def maxes(readings: Iterable[Samples], name: str, label: str | None = None) -> dict[str, float]:
    """The largest finite value of ``name`` over readings, by ``label`` (``""`` for none)."""
    out: dict[str, float] = {}
    for samples in readings:
        for sample in samples_of(samples, name):
            if math.isfinite(sample.value):
                group = sample.labels.get(label, "") if label else ""
                out[group] = max(out.get(group, -math.inf), sample.value)
    return out


def rates(
    pairs: Iterable[Pair], name: str, label: str | None, interval_s: float
) -> dict[str, float]:
    """Per-second increase of counter ``name`` by ``label``, over endpoints up at both scrapes."""
    grown: dict[str, float] = {}
    for pair in pairs:
        if pair.before is None or pair.after is None:
            continue
        previous = {series_key(s.labels): s.value for s in samples_of(pair.before, name)}
        for sample in samples_of(pair.after, name):
            group = sample.labels.get(label, "") if label else ""
            step = increase(previous.get(series_key(sample.labels)), sample.value)
            grown[group] = grown.get(group, 0.0) + step
    if interval_s <= 0:
        return {group: 0.0 for group in grown}
    return {group: value / interval_s for group, value in grown.items()}


def bucket_counts(samples: Samples | None, name: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of ``name``, summed over other labels."""
    out: dict[float, float] = {}
    for sample in samples_of(samples, name):
        try:
            bound = float(sample.labels.get("le", "nan"))
        except ValueError:
            continue
        if not math.isnan(bound) and math.isfinite(sample.value):
            out[bound] = out.get(bound, 0.0) + sample.value
    return out


def bucket_increase(before: Samples | None, after: Samples | None, name: str) -> dict[float, float]:
    """Bucket counts gained between two scrapes of one endpoint; all of them after a reset."""
    if before is None or after is None:
        return {}
    now, then = bucket_counts(after, name), bucket_counts(before, name)
    if any(now.get(bound, 0.0) < count for bound, count in then.items()):
        return now  # the process restarted: everything it holds happened since
    return {bound: count - then.get(bound, 0.0) for bound, count in now.items()}


def merged(parts: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """Bucket counts added up bound by bound (the ``sum by (le)`` over processes)."""
    out: dict[float, float] = {}
    for part in parts:
        for bound, count in part.items():
            out[bound] = out.get(bound, 0.0) + count
    return out
