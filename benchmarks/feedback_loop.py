"""How fast the feedback loop teaches the system a fraud pattern its model has never seen.

The issue's measurement: inject a fraud pattern the current model has never seen into a
live simulated stream and report recall on that pattern before and after the first 50,
200 and 1,000 labels. The loop is replayed in one process in event time with the
production components (see ``_feedback_replay``); no Kafka or Redis is needed::

    .venv/bin/python benchmarks/feedback_loop.py --json benchmarks/feedback_loop.json

Protocol: one simulated history; the champion is trained (point in time, 7-day label
delay) on the days before the split with every row of ``--pattern`` removed; the days
after the split are the live stream, every pattern included. The stream is decided
twice: with the loop (analyst labels and chargebacks applied as they fall due, merchant
label records served to the scorer, the online model blended with ``--online-weight``)
and as a control without it (online weight 0, no merchant label records). Rows are
bucketed by how many labels the loop had applied when it decided them; the control's
table covers exactly the same rows, so the difference between the two is what the
labels did, not what time did.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _feedback_replay import (  # noqa: E402 - the helper module sits next to this script
    Arm,
    ArmResult,
    Protocol,
    Stream,
    prepare_stream,
    replay,
    simulate,
    train_champion,
)

from models.simulator import PATTERNS  # noqa: E402

#: Lower edges of the label-count buckets: [0, 50), [50, 200), [200, 1000), [1000, inf).
EDGES = (0, 50, 200, 1000)
BUCKET_NAMES = ("before 50 labels", "50-199 labels", "200-999 labels", "1,000+ labels")
_Z95 = 1.959964

console = Console()


def wilson(hits: int, total: int) -> tuple[float, float] | None:
    """95 % Wilson interval of a proportion; None without observations."""
    if total == 0:
        return None
    share = hits / total
    scale = 1 + _Z95**2 / total
    centre = (share + _Z95**2 / (2 * total)) / scale
    half = _Z95 * math.sqrt(share * (1 - share) / total + _Z95**2 / (4 * total**2)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def bucket_of(labels_seen: np.ndarray) -> np.ndarray:
    """Bucket index of each row from the labels applied when it was decided."""
    return np.searchsorted(np.array(EDGES[1:]), labels_seen, side="right")


def _rate(flagged: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    total = int(mask.sum())
    hits = int((flagged & mask).sum())
    interval = wilson(hits, total)
    return {
        "n": total,
        "flagged": hits,
        "share": hits / total if total else None,
        "ci95": None if interval is None else [round(v, 4) for v in interval],
    }


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def bucket_table(
    stream: Stream, result: ArmResult, buckets: np.ndarray, pattern: str, loop: ArmResult
) -> list[dict[str, Any]]:
    """Per bucket: recall on the pattern and on other fraud, the legit review+block share."""
    flagged = result.codes > 0
    is_pattern = stream.pattern == pattern
    other_fraud = stream.fraud & ~is_pattern
    legit = ~stream.fraud
    start_ms = int(stream.event_ms[0])
    rows = []
    for index, name in enumerate(BUCKET_NAMES):
        inside = buckets == index
        if not inside.any():
            rows.append({"bucket": name, "rows": 0})
            continue
        where = np.flatnonzero(inside)
        first, last = int(where[0]), int(where[-1])
        frauds = is_pattern & inside & stream.fraud
        rows.append(
            {
                "bucket": name,
                "labels_from": EDGES[index],
                "labels_to": EDGES[index + 1] if index + 1 < len(EDGES) else None,
                "rows": int(inside.sum()),
                "stream_days": [
                    round((int(stream.event_ms[first]) - start_ms) / 86_400_000, 2),
                    round((int(stream.event_ms[last]) - start_ms) / 86_400_000, 2),
                ],
                "pattern_labels_applied": [
                    int(loop.pattern_labels_seen[first]),
                    int(loop.pattern_labels_seen[last]),
                ],
                "pattern_recall": _rate(flagged, frauds),
                "other_fraud_recall": _rate(flagged, other_fraud & inside),
                "legit_review_block_share": _rate(flagged, legit & inside),
                "legit_block_share": _rate(result.codes == 2, legit & inside),
                "pattern_fraud_median_score": _median(result.scores[frauds]),
                "pattern_fraud_median_online": _median(result.online[frauds]),
                "pattern_fraud_merchant_risk_known": (
                    float(np.isfinite(result.merchant_risk[frauds]).mean())
                    if frauds.any()
                    else None
                ),
            }
        )
    return rows


def arms_for(protocol: Protocol, diagnose: bool) -> list[Arm]:
    """The loop and its control, plus the merchant-features-only arm when diagnosing."""
    arms = [
        Arm("loop", feedback=True, merchant_records=True, online_weight=protocol.online_weight),
        Arm("control", feedback=False, merchant_records=False, online_weight=0.0),
    ]
    if diagnose:
        arms.append(Arm("merchant-only", feedback=True, merchant_records=True, online_weight=0.0))
    return arms


def _percent(rate: dict[str, Any]) -> str:
    if not rate["n"]:
        return "-"
    low, high = rate["ci95"]
    return f"{100 * rate['share']:.1f}% [{100 * low:.0f}-{100 * high:.0f}] of {rate['n']:,}"


def print_tables(document: dict[str, Any]) -> None:
    """The bucket tables side by side per arm, as a rich table."""
    arms = document["arms"]
    table = Table(
        title=(
            f"recall on never-seen '{document['pattern']}' by labels applied "
            f"(online weight {document['protocol']['online_weight']})"
        ),
        show_lines=True,
    )
    table.add_column("bucket")
    table.add_column("stream days")
    for name in arms:
        table.add_column(f"{name}: pattern recall")
    for name in arms:
        table.add_column(f"{name}: other fraud recall")
    for name in arms:
        table.add_column(f"{name}: legit review+block")
    first = next(iter(arms.values()))["buckets"]
    for index, bucket in enumerate(first):
        if not bucket["rows"]:
            continue
        cells = [bucket["bucket"], "{:.1f}-{:.1f}".format(*bucket["stream_days"])]
        for key in ("pattern_recall", "other_fraud_recall"):
            cells += [_percent(arm["buckets"][index][key]) for arm in arms.values()]
        cells += [
            _pct_only(arm["buckets"][index]["legit_review_block_share"]) for arm in arms.values()
        ]
        table.add_row(*cells)
    console.print(table)


def _pct_only(rate: dict[str, Any]) -> str:
    return "-" if not rate["n"] else f"{100 * rate['share']:.2f}%"


def run(protocol: Protocol, diagnose: bool) -> dict[str, Any]:
    """The whole protocol; returns the JSON document."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fraudstream-feedback-bench-") as scratch:
        champion_dir = Path(scratch) / "champion"
        with console.status("simulating the history") as status:
            mark = time.perf_counter()
            frame = simulate(protocol)
            timings["simulate"] = time.perf_counter() - mark
            mark = time.perf_counter()
            manifest = train_champion(
                frame, protocol, champion_dir, on_stage=lambda s: status.update(f"champion: {s}")
            )
            timings["train_champion"] = time.perf_counter() - mark
            status.update("featurising the stream")
            mark = time.perf_counter()
            stream = prepare_stream(frame, protocol)
            timings["prepare_stream"] = time.perf_counter() - mark
        console.print(
            f"champion {manifest.version}: validation AUC {manifest.metrics.auc:.4f}, "
            f"AP {manifest.metrics.ap:.3f}, review >= {manifest.thresholds.review:.3f}, "
            f"block >= {manifest.thresholds.block:.3f}; stream {len(stream):,} rows in "
            f"{len(stream.batches):,} batches"
        )
        results: dict[str, ArmResult] = {}
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            for arm in arms_for(protocol, diagnose):
                task = progress.add_task(f"replay: {arm.name}", total=len(stream))
                results[arm.name] = replay(
                    stream,
                    champion_dir,
                    protocol,
                    arm,
                    advance=lambda rows, task=task: progress.advance(task, rows),
                )
                timings[f"replay_{arm.name}"] = results[arm.name].seconds
    loop = results["loop"]
    buckets = bucket_of(loop.labels_seen)
    is_pattern = stream.pattern == protocol.pattern
    return {
        "benchmark": "feedback_loop",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pattern": protocol.pattern,
        "protocol": {
            **dataclasses.asdict(protocol),
            "split": protocol.split().isoformat(),
            "analyst": (
                f"{protocol.review_share:.0%} of REVIEW and {protocol.block_share:.0%} of BLOCK "
                f"decisions labelled with the truth after {protocol.analyst_delay_s:.0f} s x "
                f"U(0.5, 1.5) of event time; APPROVEd fraud charged back after "
                f"{protocol.chargeback_delay_s:.0f} s"
            ),
            "buckets": "rows decided while the loop arm's applied-label count was in "
            "[0,50), [50,200), [200,1000), [1000,inf); every arm is reported on those rows",
            "flagged": "REVIEW or BLOCK",
        },
        "champion": {
            "version": manifest.version,
            "members": [m.name for m in manifest.members],
            "thresholds": {
                "review": manifest.thresholds.review,
                "block": manifest.thresholds.block,
            },
            "training_rows": manifest.training_rows,
            "training_frauds": manifest.training_frauds,
            "validation_rows": manifest.validation_rows,
            "validation_frauds": manifest.validation_frauds,
            "validation_metrics": manifest.metrics.model_dump(mode="json"),
        },
        "stream": {
            "rows": len(stream),
            "batches": len(stream.batches),
            "batch_seconds": protocol.batch_seconds,
            "frauds": int(stream.fraud.sum()),
            "pattern_frauds": int((is_pattern & stream.fraud).sum()),
            "frauds_by_pattern": {name: int((stream.pattern == name).sum()) for name in PATTERNS},
        },
        "arms": {
            name: {
                "online_weight": result.arm.online_weight,
                "merchant_records": result.arm.merchant_records,
                "labels_applied": result.labels_applied,
                "label_sources": dict(sorted(result.label_sources.items())),
                "online_publishes": result.publishes,
                "online_quality": result.online_quality,
                "buckets": bucket_table(stream, result, buckets, protocol.pattern, loop),
                "whole_stream": bucket_table(
                    stream, result, np.zeros(len(stream), dtype=np.int64), protocol.pattern, loop
                )[0]
                | {"bucket": "whole stream", "labels_to": None},
            }
            for name, result in results.items()
        },
        "seconds": {k: round(v, 2) for k, v in timings.items()}
        | {"total": round(time.perf_counter() - started, 2)},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (every default is the documented protocol)."""
    default = Protocol()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--pattern", choices=PATTERNS, default=default.pattern, help="the never-seen pattern")
    add("--users", type=int, default=default.users)
    add("--merchants", type=int, default=default.merchants)
    add("--days", type=int, default=default.days, help="days simulated in all")
    add("--train-days", type=int, default=default.train_days, help="days before the split")
    add("--seed", type=int, default=default.seed)
    add("--online-weight", type=float, default=default.online_weight)
    add("--publish-every", type=int, default=default.publish_every, help="labels per publish")
    add("--batch-seconds", type=int, default=default.batch_seconds, help="event time per batch")
    add("--diagnose", action="store_true", help="add an arm with merchant features only")
    add("--json", type=Path, default=None, help="write the document here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables, write the JSON document."""
    args = parse_args(argv)
    protocol = Protocol(
        pattern=args.pattern,
        users=args.users,
        merchants=args.merchants,
        days=args.days,
        train_days=args.train_days,
        seed=args.seed,
        online_weight=args.online_weight,
        publish_every=args.publish_every,
        batch_seconds=args.batch_seconds,
    )
    document = run(protocol, args.diagnose)
    print_tables(document)
    for name, arm in document["arms"].items():
        console.print(
            f"{name}: {arm['labels_applied']:,} labels {arm['label_sources']}, "
            f"{arm['online_publishes']} online publishes"
        )
    console.print(f"elapsed {document['seconds']['total']:.0f} s: {document['seconds']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
