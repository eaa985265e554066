"""The performance benchmark behind ``fraudstream bench``: open-loop load, timed decisions.

A separate generator process sends simulated transactions on a fixed schedule; the bench
reads the decisions back and reports throughput and decision latency percentiles from
Kafka timestamps (see ``benchmarks/README.md`` for what each figure means).
"""

from streams.bench._report import render_table
from streams.bench._run import BenchConfig, run_bench

__all__ = ["BenchConfig", "render_table", "run_bench"]
