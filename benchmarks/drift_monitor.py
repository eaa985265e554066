"""Cost of the scorer's drift monitor per scored row (operators/drift.py).

Every scored batch is binned on the champion's reference edges, so this is CPU the hot
path pays. Run: ``.venv/bin/python benchmarks/drift_monitor.py`` (a few seconds).
"""

from __future__ import annotations

import time

import numpy as np

from models.reference import reference_distributions
from operators.drift import DriftMonitor

FEATURES = 35  # the champion's feature count (operators.features.FEATURE_NAMES)
REPEAT = 200


def main() -> None:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(FEATURES)]
    rows = rng.lognormal(size=(20_000, FEATURES))
    scores = rng.beta(1, 20, 20_000)
    reference = reference_distributions(rows, names, scores)
    monitor = DriftMonitor()
    for size in (10, 100, 1_000):
        batch, batch_scores = rows[:size], scores[:size]
        started = time.perf_counter()
        for _ in range(REPEAT):
            monitor.observe("v", reference, names, batch, batch_scores)
        seconds = (time.perf_counter() - started) / REPEAT
        per_row = seconds / size * 1e6
        print(f"batch {size:>5}: {seconds * 1e6:7.0f} µs per batch, {per_row:5.2f} µs/row")
    started = time.perf_counter()
    for _ in range(REPEAT):
        monitor.report()
    print(f"report: {(time.perf_counter() - started) / REPEAT * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
