"""The sweep's picture: latency percentiles against achieved throughput, one colour a system.

Drawn against *achieved* throughput, not the offered rate, so a system that falls
behind shows where it really topped out; both axes on log scales, so 5 ms and 5 s both
read, and so do a peer topping out at a thousand a second and a passthrough at a hundred
thousand (the sweep's rates double, so its points spread evenly).
The 50 ms budget is drawn across, which makes the sustainable region plain to see.
Uses matplotlib's object API with the Agg canvas: no display, no global pyplot state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_sweep"]

_COLOURS = {"fraudstream": "tab:blue", "passthrough": "tab:grey", "quix": "tab:orange"}
_PERCENTILES = (("p50", "p50", "o", ":"), ("p99", "p99", "s", "-"), ("p999", "p99.9", "^", "--"))


def _points(runs: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    measured = [
        run
        for run in runs
        if run.get("system", {}).get("name") == system
        and run.get("throughput_eps")
        and "latency_ms" in run
    ]
    return sorted(measured, key=lambda run: run["throughput_eps"])


def plot_sweep(document: dict[str, Any], path: Path, budget_ms: float = 50.0) -> Path:
    """Write the PNG of a sweep document's runs (see ``run_sweep``) to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    runs = document.get("runs", [])
    systems = [name for name in _COLOURS if name in document] or sorted(
        {run.get("system", {}).get("name", "?") for run in runs}
    )
    for system in systems:
        points = _points(runs, system)
        if not points:
            continue
        best = document.get(system, {}).get("max_sustainable_eps")
        for key, label, marker, style in _PERCENTILES:
            pairs = [
                (run["throughput_eps"], run["latency_ms"][key])
                for run in points
                if run["latency_ms"].get(key)
            ]
            if not pairs:
                continue
            xs, ys = zip(*pairs, strict=True)
            axes.plot(xs, ys, marker=marker, linestyle=style, color=_COLOURS.get(system),
                      label=f"{system} {label}")  # fmt: skip
        if best:
            axes.annotate(f"{system}: {best:,.0f}/s", xy=(best, budget_ms), fontsize=8,
                          color=_COLOURS.get(system), rotation=90, va="bottom")  # fmt: skip
    axes.axhline(budget_ms, color="red", linewidth=1, label=f"{budget_ms:g} ms budget")
    axes.set_yscale("log")
    axes.set_xscale("log")
    axes.set_xlabel("achieved throughput (decisions/s, log scale)")
    axes.set_ylabel("latency (ms, log scale)")
    machine = document.get("machine", {})
    axes.set_title(
        f"Latency against throughput ({machine.get('cores', '?')} cores, {machine.get('cpu', '')})",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncols=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
