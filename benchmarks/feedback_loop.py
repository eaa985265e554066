"""How fast the feedback loop teaches the system a fraud pattern its model has never seen.

The issue's measurement: inject a fraud pattern the current model has never seen into a
live simulated stream and report recall on that pattern before and after the first 50,
200 and 1,000 labels. The loop is replayed in one process in event time with the
production components (see ``_feedback_replay``); no Kafka or Redis is needed::

    .venv/bin/python benchmarks/feedback_loop.py --json benchmarks/feedback_loop.json

Protocol: one simulated history; the champion is trained (point in time, 7-day label
delay) on the days before the split with every row of ``--pattern`` removed; the days
after the split are the live stream, every pattern included. The stream is decided
with the loop (analyst labels and chargebacks applied as they fall due, merchant label
records served to the scorer, the online model blended with ``--online-weight``) and as
a control without it (online weight 0, no merchant label records). Rows are bucketed by
how many labels the loop had applied when it decided them; every other arm is reported
on exactly the same rows, so the difference to the control is what the labels did, not
what time did. Labels reach a decision two ways, and ``--diagnose`` (on by default)
runs each alone: ``merchant-only`` (the champion reads the labels' ``merchant_risk``,
online weight 0) and ``online-only`` (the online model is blended in, the champion's
``merchant_risk`` stays missing as in the control).

Figures: recall (REVIEW or BLOCK) on the pattern's fraud, on all other fraud, and the
share of legit traffic reviewed or blocked, per bucket with 95 % Wilson intervals; and
in the JSON, per bucket, the diagnostics behind them (``_feedback_figures``). The same
seed gives the same decisions (``decisions_sha256`` per arm).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _feedback_figures import (
    BUCKET_NAMES,
    bucket_of,
    bucket_table,
    online_reach,
    served_risk,
)
from _feedback_replay import (
    Arm,
    ArmResult,
    Protocol,
    prepare_stream,
    replay,
    simulate,
    train_champion,
)

from models.simulator import PATTERNS

console = Console()


def arms_for(protocol: Protocol, diagnose: bool) -> list[Arm]:
    """The loop and its control; diagnosing, the two ways labels reach a decision apart.

    ``merchant-only``: the champion reads the labels' ``merchant_risk``, no online model.
    ``online-only``: the online model (with every merchant label feature) is blended in,
    the champion's ``merchant_risk`` stays missing as in the control.
    """
    arms = [
        Arm("loop", feedback=True, merchant_records=True, online_weight=protocol.online_weight),
        Arm("control", feedback=False, merchant_records=False, online_weight=0.0),
    ]
    if diagnose:
        arms += [
            Arm("merchant-only", feedback=True, merchant_records=True, online_weight=0.0),
            Arm(
                "online-only",
                feedback=True,
                merchant_records=True,
                online_weight=protocol.online_weight,
                risk_to_champion=False,
            ),
        ]
    return arms


def _percent(rate: dict[str, Any]) -> str:
    if not rate["n"]:
        return "-"
    low, high = rate["ci95"]
    return f"{100 * rate['share']:.1f}% [{100 * low:.0f}-{100 * high:.0f}]"


def _pct_only(rate: dict[str, Any]) -> str:
    return "-" if not rate["n"] else f"{100 * rate['share']:.2f}%"


def _bucket_rows(arms: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Per non-empty bucket (then the whole stream), each arm's figures, arm order."""
    first = next(iter(arms.values()))["buckets"]
    rows = [
        [arm["buckets"][index] for arm in arms.values()]
        for index in range(len(BUCKET_NAMES))
        if first[index]["rows"]
    ]
    rows.append([arm["whole_stream"] for arm in arms.values()])
    return rows


def _rate_table(
    title: str, arms: dict[str, Any], key: str, count: str, show: Callable[[dict[str, Any]], str]
) -> Table:
    table = Table(title=title)
    for column in ("labels applied", "stream days", count, *arms):
        table.add_column(column, justify="right")
    for cells in _bucket_rows(arms):
        first = cells[0]
        table.add_row(
            first["bucket"],
            "{:.1f}-{:.1f}".format(*first["stream_days"]),
            f"{first[key]['n']:,}",
            *(show(cell[key]) for cell in cells),
        )
    return table


def print_tables(document: dict[str, Any]) -> None:
    """Recall on the pattern, on other fraud, the legit flag share, and why, per arm."""
    arms = document["arms"]
    weight = document["protocol"]["online_weight"]
    console.print(
        _rate_table(
            f"recall (REVIEW or BLOCK) on the never-seen '{document['pattern']}' fraud "
            f"[95% CI], online weight {weight}",
            arms,
            "pattern_recall",
            "pattern frauds",
            _percent,
        )
    )
    console.print(
        _rate_table(
            "no regression? recall on every other fraud [95% CI]",
            arms,
            "other_fraud_recall",
            "other frauds",
            _percent,
        )
    )
    console.print(
        _rate_table(
            "cost: legit transactions reviewed or blocked",
            arms,
            "legit_review_block_share",
            "legit rows",
            _pct_only,
        )
    )
    why = Table(title="why: how the labels reached the decisions (whole stream)")
    for column in (
        "arm",
        "labels",
        "online AUC (progressive)",
        "merchant_risk PSI",
        "pattern recall, merchant fraud known",
        "... not known",
        "pattern frauds in online reach",
        "online P(fraud) pattern / legit",
    ):
        why.add_column(column, justify="right")
    for name, arm in arms.items():
        whole = arm["whole_stream"]
        known = whole["pattern_recall_merchant_fraud_known"]
        unknown = whole["pattern_recall_merchant_fraud_unknown"]
        reach = whole["pattern_frauds_within_online_reach"]
        auc = arm["online_quality"].get("auc")
        why.add_row(
            name,
            f"{arm['labels_applied']:,}",
            "-" if auc is None or not math.isfinite(auc) else f"{auc:.3f}",
            str(arm["merchant_risk_served"]["psi_vs_champion_reference"]),
            f"{known['flagged']}/{known['n']}",
            f"{unknown['flagged']}/{unknown['n']}",
            f"{reach['flagged']}/{reach['n']}" if arm["online_weight"] > 0 else "-",
            _pair(whole["pattern_fraud_median_online"], whole["legit_median_online"]),
        )
    console.print(why)


def _pair(left: float | None, right: float | None) -> str:
    if left is None or right is None:
        return "-"
    return f"{left:.2f} / {right:.2f}"


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
                    advance=functools.partial(progress.advance, task),
                )
                timings[f"replay_{arm.name}"] = results[arm.name].seconds
    loop = results["loop"]
    reference = None if manifest.reference is None else manifest.reference.features["merchant_risk"]
    buckets = bucket_of(loop.labels_seen)
    reach = online_reach(manifest.thresholds.review, protocol.online_weight)
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
            "online_reach_champion_score": None if math.isinf(reach) else reach,
            "online_reach": (
                "pattern_frauds_within_online_reach counts the rows whose champion score is at "
                f"least (review - w) / (1 - w) = {reach:.4f} (w = {protocol.online_weight}): "
                "below it the online model cannot lift a row to REVIEW even at P(fraud) = 1"
            ),
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
            "merchant_risk_reference": (
                None if reference is None else reference.model_dump(mode="json")
            ),
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
                "merchant_risk_to_champion": result.arm.risk_to_champion,
                "labels_applied": result.labels_applied,
                "label_sources": dict(sorted(result.label_sources.items())),
                "online_publishes": result.publishes,
                "decisions_sha256": hashlib.sha256(result.codes.tobytes()).hexdigest(),
                "online_quality": result.online_quality,
                "merchant_risk_served": served_risk(result.merchant_risk, reference),
                "buckets": bucket_table(stream, result, buckets, protocol.pattern, loop, reach),
                "whole_stream": bucket_table(
                    stream,
                    result,
                    np.zeros(len(stream), dtype=np.int64),
                    protocol.pattern,
                    loop,
                    reach,
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
    add(
        "--diagnose",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the merchant-only and online-only arms (each channel of the loop alone)",
    )
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
            f"{arm['online_publishes']} online publishes, decisions "
            f"sha256 {arm['decisions_sha256'][:16]}"
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
