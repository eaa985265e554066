"""The sweep's PNG is written, whatever the runs hold."""

from __future__ import annotations

from pathlib import Path

from streams.bench._plot import plot_sweep
from streams.bench._sweep import sweep_document
from tests.unit.streams.bench.test_sweep import judged, sweep_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_sweep_is_drawn_to_a_png(tmp_path: Path):
    results = {
        "fraudstream": (judged("fraudstream", [1000.0, 2000.0, 4000.0], 3000.0), "boundary found"),
        "passthrough": (judged("passthrough", [1000.0, 2000.0], 1e9), "max runs (2)"),
        "quix": (judged("quix", [1000.0, 500.0], 700.0), "boundary found"),
    }
    document = sweep_document(sweep_config(), results, None, elapsed_s=1.0)
    path = plot_sweep(document, tmp_path / "plots" / "sweep.png")
    assert path == tmp_path / "plots" / "sweep.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000


def test_a_sweep_without_any_measured_point_still_gives_a_png(tmp_path: Path):
    failed = {"rate_target": 1000.0, "system": {"name": "quix"}, "error": "boom",
              "verdict": {"sustainable": False, "reasons": ["run failed: boom"]}}  # fmt: skip
    document = sweep_document(sweep_config(), {"quix": ([failed], "x")}, None, elapsed_s=1.0)
    path = plot_sweep(document, tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
