"""``fraudstream bench``: offered load at a fixed rate, decision latency and throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, err_console, friendly_errors

__all__ = ["bench"]


def bench(
    rate: Annotated[float, typer.Option(help="Offered load in transactions per second.", min=1)] = (
        1000.0
    ),
    duration: Annotated[
        float, typer.Option(help="Seconds of load (the run also drains afterwards).", min=1)
    ] = 20.0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results to this JSON file.")
    ] = None,
    warmup: Annotated[
        float | None,
        typer.Option(help="Seconds left out of the latency figures (default 10 %, at least 2)."),
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for missing decisions after sending.", min=0)
    ] = 30.0,
    partitions: Annotated[
        int, typer.Option(help="Partitions of the run's fresh topics.", min=1)
    ] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 7,
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 10_000,
    merchants: Annotated[int, typer.Option(help="Synthetic merchants.")] = 1_000,
    keep_servers: Annotated[
        bool, typer.Option(help="Leave Kafka and Redis running if the bench started them.")
    ] = False,
    keep_topics: Annotated[bool, typer.Option(help="Do not delete the run's topics.")] = False,
) -> None:
    """Benchmark the scorer open-loop at a fixed rate and report latency percentiles.

    Starts Kafka and Redis if needed, and a scorer on fresh topics unless one already
    serves /readyz on FRAUD_METRICS_PORT (then its topics are used); stops whatever it
    started. Latency is decision produced minus transaction produced (Kafka timestamps),
    after a warm-up. See benchmarks/README.md.
    """
    import orjson

    from streams.bench import BenchConfig, render_table, run_bench
    from streams.settings import get_settings

    config = BenchConfig(
        rate=rate,
        duration_s=duration,
        warmup_s=warmup,
        drain_timeout_s=drain_timeout,
        partitions=partitions,
        seed=seed,
        users=users,
        merchants=merchants,
        keep_servers=keep_servers,
        keep_topics=keep_topics,
    )
    with friendly_errors():
        result = run_bench(
            get_settings(), config, on_progress=lambda message: console.print(f"  {message}")
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    console.print(render_table(result))
    if result["missing"]:
        err_console.print(
            f"[yellow]warning:[/] {result['missing']:,} of {result['events']:,} transactions "
            f"got no decision within the {drain_timeout:g}s drain timeout"
        )
    if json_path is not None:
        console.print(f"results written to {json_path}")
