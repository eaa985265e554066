"""The performance benchmark behind ``fraudstream bench``: open-loop load, timed decisions.

Separate generator processes send simulated transactions on a fixed schedule to a system
under test (fraudstream's scorer, a consume-then-produce passthrough, or the Quix Streams
peer); the bench reads the decisions back and reports throughput, decision latency
percentiles from Kafka timestamps and the backlog over time. ``--sweep`` finds each
system's highest sustainable rate. See ``benchmarks/README.md`` for every figure.
"""

from streams.bench._plot import plot_sweep
from streams.bench._report import render_sweep, render_table
from streams.bench._run import BenchConfig, run_bench
from streams.bench._sweep import Criteria, SweepConfig, SweepEvent, run_sweep
from streams.bench._systems import SYSTEMS

__all__ = [
    "SYSTEMS",
    "BenchConfig",
    "Criteria",
    "SweepConfig",
    "SweepEvent",
    "plot_sweep",
    "render_sweep",
    "render_table",
    "run_bench",
    "run_sweep",
]
