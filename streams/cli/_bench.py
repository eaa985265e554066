"""``fraudstream bench``: one open-loop run at a fixed rate, or a sweep of all three systems."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli._common import console, err_console, friendly_errors

if TYPE_CHECKING:
    from streams.bench import BenchConfig, SweepEvent

__all__ = ["bench"]

_SYSTEMS = "fraudstream,passthrough,quix"


def _write_json(path: Path, document: dict[str, Any]) -> None:
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def _systems(text: str, hint: str = "--systems") -> tuple[str, ...]:
    from streams.bench import SYSTEMS

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown or not names:
        raise typer.BadParameter(f"choose from {', '.join(SYSTEMS)}", param_hint=hint)
    return names


def _start_rates(text: str) -> dict[str, float]:
    """``"passthrough=8000,quix=100"`` -> ``{"passthrough": 8000.0, "quix": 100.0}``."""
    rates: dict[str, float] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, _, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = 0.0
        if rate < 1:
            raise typer.BadParameter(
                f"{part!r}: expected system=rate with a rate of at least 1",
                param_hint="--start-rates",
            )
        rates[_one_system(name)] = rate
    return rates


def _one_system(text: str) -> str:
    names = _systems(text, "--system")
    if len(names) != 1:
        raise typer.BadParameter("one system (--systems with --sweep)", param_hint="--system")
    return names[0]


class _SweepDisplay:
    """Which system, which rate, what it is doing; then each point's verdict and why."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._where = ""

    def __call__(self, event: SweepEvent) -> None:
        if event.kind == "point":
            self._where = f"{event.system} @ {event.rate:,.0f} tx/s"
            console.print(f"[bold]{event.system}[/] point {event.run}/{event.max_runs}: "
                          f"{event.rate:,.0f} tx/s")  # fmt: skip
            self._status.update(self._where)
        elif event.kind == "message":
            self._status.update(f"{self._where}: {event.message}" if self._where else event.message)
        elif event.kind == "verdict":
            verdict = "[green]sustainable[/]" if event.sustainable else "[red]not sustainable[/]"
            why = f" ({'; '.join(event.reasons)})" if event.reasons else ""
            console.print(f"  {verdict}{why}" + (f": {event.figures}" if event.figures else ""))
        elif event.kind == "stopped":
            console.print(f"[bold]{event.system}[/]: search ended ({event.message})")
            self._where = ""


def bench(
    rate: Annotated[
        float,
        typer.Option(help="Offered load in tx/s (with --sweep: the first rate tried).", min=1),
    ] = 1000.0,
    duration: Annotated[
        float, typer.Option(help="Seconds of load per run (each run also drains).", min=1)
    ] = 20.0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results to this JSON file.")
    ] = None,
    system: Annotated[
        str, typer.Option(help="System under test: fraudstream, passthrough or quix.")
    ] = "fraudstream",
    processes: Annotated[
        int, typer.Option(help="Scorer processes (fraudstream score --processes).", min=1)
    ] = 1,
    generators: Annotated[
        int | None,
        typer.Option(help="Generator processes (default: one per 50,000 tx/s).", min=1),
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Find each system's highest sustainable rate.")
    ] = False,
    systems: Annotated[
        str, typer.Option(help="With --sweep: comma-separated systems, in order.")
    ] = _SYSTEMS,
    start_rates: Annotated[
        str,
        typer.Option(
            help="With --sweep: first rates per system, e.g. 'passthrough=8000,quix=100' "
            "(others start at --rate)."
        ),
    ] = "",
    max_runs: Annotated[int, typer.Option(help="With --sweep: runs per system.", min=1)] = 7,
    growth: Annotated[
        float, typer.Option(help="With --sweep: rate factor while sustainable.", min=1.1)
    ] = 2.0,
    budget: Annotated[
        float, typer.Option(help="With --sweep: seconds for all systems' runs.", min=1)
    ] = 1800.0,
    memory: Annotated[
        bool, typer.Option(help="With --sweep: measure bytes per user (100k and 1M users).")
    ] = True,
    plot: Annotated[
        Path | None,
        typer.Option(help="With --sweep: the PNG to write (default: the JSON path, .png)."),
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
    """Benchmark a system open-loop at a fixed rate, or sweep all three for their limits.

    One run: starts Kafka and Redis if needed and the system on fresh topics (for
    fraudstream, unless a scorer already serves /readyz on FRAUD_METRICS_PORT: then its
    topics are used); stops whatever it started. Latency is decision produced minus
    transaction produced (Kafka timestamps), after a warm-up. --sweep finds each
    system's highest sustainable rate (p99 <= 50 ms, nothing missing, throughput >= 97 %
    of the rate, backlog not growing) and writes the comparison JSON and a PNG. See
    benchmarks/README.md.
    """
    from streams.bench import BenchConfig, Criteria, render_table, run_bench
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
        system=_one_system(system),
        processes=processes,
        generators=generators,
    )
    if sweep:
        starts = _start_rates(start_rates)
        _sweep(config, _systems(systems), starts, max_runs, growth, budget, memory, json_path, plot)
        return
    with friendly_errors():
        result = run_bench(
            get_settings(), config, on_progress=lambda message: console.print(f"  {message}")
        )
    result["verdict"] = Criteria().judge(result)
    if json_path is not None:
        _write_json(json_path, result)
    console.print(render_table(result))
    if result["missing"]:
        err_console.print(
            f"[yellow]warning:[/] {result['missing']:,} of {result['events']:,} transactions "
            f"got no decision within the {drain_timeout:g}s drain timeout"
        )
    if json_path is not None:
        console.print(f"results written to {json_path}")


def _sweep(
    base: BenchConfig,
    systems: tuple[str, ...],
    start_rates: dict[str, float],
    max_runs: int,
    growth: float,
    budget: float,
    memory: bool,
    json_path: Path | None,
    plot: Path | None,
) -> None:
    from streams.bench import SweepConfig, plot_sweep, render_sweep, run_sweep
    from streams.settings import get_settings

    config = SweepConfig(
        base=base,
        systems=systems,
        start_rates=start_rates,
        growth=growth,
        max_runs=max_runs,
        budget_s=budget,
        memory=memory,
    )
    with friendly_errors(), console.status("starting the sweep") as status:
        document = run_sweep(get_settings(), config, _SweepDisplay(status))
    console.print(render_sweep(document))
    if json_path is not None:
        _write_json(json_path, document)
        console.print(f"results written to {json_path}")
    png = plot or (json_path.with_suffix(".png") if json_path is not None else None)
    if png is not None:
        plot_sweep(document, png)
        console.print(f"plot written to {png}")
