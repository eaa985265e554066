"""The backtest HTML report: every section, inline images only, escaped data, missing parts."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from models.backtest._report import SECTION_TITLES, _distinct_scores, render_report
from models.backtest._report_data import (
    Caught,
    caught_from_decisions,
    curve,
    daily_mix,
    load_decisions,
    parse_instant_ms,
    rule_stats_from_decisions,
    window_mask,
)
from models.exceptions import ModelsError

EVIL_RULE = "<script>alert('rule')</script>"
EVIL_VERSION = "v2<img src=x onerror=alert(1)>"
# Mathtext would try (and fail) to parse this if it reached a chart label unescaped.
DOLLAR_RULE = r"$\nosuchcommand$ amount"
RULES = ("velocity_1h", "high_amount", EVIL_RULE, DOLLAR_RULE, "allow_trusted")
START = np.datetime64("2024-01-01T00:00:00", "ms")
DAY_MS = 86_400_000


def _decisions_table(rows: int, *, labelled: bool = True, rules: bool = True) -> pa.Table:
    rng = np.random.default_rng(7)
    event_ms = np.sort(rng.integers(0, 56 * DAY_MS, rows)) + START.astype(np.int64)
    label = (rng.random(rows) < 0.05).astype(np.int8)
    score = np.clip(rng.normal(0.2 + 0.5 * label, 0.15), 0.0, 1.0)
    score[event_ms < START.astype(np.int64) + 7 * DAY_MS] = np.nan  # warm-up: rules only
    fired = [
        [rule for rule in RULES if rng.random() < (0.15 if rule != EVIL_RULE else 0.05)]
        for _ in range(rows)
    ]
    decision = np.where(score >= 0.8, "BLOCK", np.where(score >= 0.6, "REVIEW", "APPROVE"))
    decision = np.where(
        [bool(rules_of_row) and "velocity_1h" in rules_of_row for rules_of_row in fired],
        "REVIEW",
        decision,
    )
    columns: dict[str, Any] = {
        "tx_id": pa.array([f"t{index}" for index in range(rows)]),
        "user_id": pa.array([f"u{index % 97}" for index in range(rows)]),
        "merchant_id": pa.array([f"m{index % 13}" for index in range(rows)]),
        "event_time": pa.array(event_ms, type=pa.timestamp("ms", tz="UTC")),
        "amount": pa.array(rng.gamma(2.0, 40.0, rows)),
        "label": pa.array(label if labelled else np.full(rows, -1, dtype=np.int8)),
        "label_known_at": pa.array(event_ms + 7 * DAY_MS, type=pa.timestamp("ms", tz="UTC")),
        "decision": pa.array(decision.tolist()),
        "score": pa.array(score),
        "champion_score": pa.array(score),
        "online_score": pa.array(np.clip(score + rng.normal(0, 0.1, rows), 0, 1)),
        "model_version": pa.array(
            ["v1" if index < rows // 2 else EVIL_VERSION for index in range(rows)]
        ),
        "reasons": pa.array([list(rules_of_row) for rules_of_row in fired], pa.list_(pa.string())),
        "degraded": pa.array(np.zeros(rows, dtype=bool)),
        "batch_seconds": pa.array(rng.uniform(1e-5, 4e-5, rows)),
    }
    if rules:
        columns["rules_fired"] = pa.array(fired, pa.list_(pa.string()))
    return pa.table(columns)


def _summary(rows: int) -> dict[str, Any]:
    weeks = [
        {
            "start": str(START + np.timedelta64(7 * week, "D")) + "Z",
            "auc": 0.85 + 0.01 * week,
            "ap": 0.5 + 0.02 * week,
            "cp100": None if week == 2 else 0.2 + 0.01 * week,
            "model_version": None if week == 0 else ("v1" if week < 4 else EVIL_VERSION),
        }
        for week in range(8)
    ]
    return {
        "events": rows + 3,
        "decided": rows,
        "dlq": 3,
        "elapsed_s": 1.25,
        "throughput_eps": rows / 1.25,
        "eval": {
            "start": "2024-01-22",
            "end": "2024-02-25",
            "auc": 0.91,
            "ap": 0.63,
            "cp100": 0.27,
            "block": {"precision": 0.8, "recall": 0.3},
            "review": {"precision": 0.5, "recall": 0.6},
        },
        "weeks": weeks,
        "models": [
            {
                "version": "v1",
                "trained_at": "2024-01-08T00:00:00Z",
                "role": "champion",
                "train_rows": 700,
                "frauds": 35,
                "gate_reason": "first model",
                "validation": {"auc": 0.9, "ap": 0.6, "cp100": 0.2},
            },
            {
                "version": EVIL_VERSION,
                "trained_at": "2024-01-29T00:00:00Z",
                "verdict": "promoted",
                "train_rows": 1900,
                "frauds": 90,
                "gate_reason": "better AP",
                "validation": {"auc": 0.92, "ap": None, "cp100": 0.25},
            },
        ],
        "protocol": {
            "data": "history<b>.parquet",
            "mapping": {"amount": "TX_AMOUNT"},
            "label_delay": "7d",
            "retrain": "weekly",
            "warmup": "7d",
            "rules": None,
            "online_weight": 0.2,
        },
        "timing": {
            "stages": {"read": 0.1, "features": 0.5, "score": 0.4, "labels": 0.25},
            "batches": [
                {"start": f"2024-01-{1 + index % 28:02d}T00:00:00Z", "rows": 500, "seconds": 0.02}
                for index in range(rows // 500)
            ],
        },
        "rules": [
            {"id": rule, "action": action, "hits": hits, "fraud_hits": hits // 10, "precision": 0.1}
            for rule, action, hits in zip(
                RULES,
                ("REVIEW", "REVIEW", "BLOCK", "REVIEW", "ALLOW"),
                (600, 580, 200, 610, 590),
                strict=True,
            )
        ],
        "caught": {"rules_only": 20, "model_only": 55, "both": 30, "missed": 12},
    }


def _report_dir(
    tmp_path: Path, summary: dict[str, Any], table: pa.Table | None, rows: int = 3000
) -> Path:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "summary.json").write_bytes(orjson.dumps(summary))
    if table is not None:
        pq.write_table(table, folder / "decisions.parquet")
    return folder


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    rows = 3000
    folder = _report_dir(tmp_path_factory.mktemp("full"), _summary(rows), _decisions_table(rows))
    path = render_report(folder)
    assert path == folder / "report.html"
    return path.read_text(encoding="utf-8")


def test_every_section_is_present_in_order(full_report: str) -> None:
    titles = re.findall(r"<h2>(.*?)</h2>", full_report)
    assert titles == list(SECTION_TITLES)
    assert SECTION_TITLES == (
        "Summary",
        "Precision-recall and ROC",
        "Score distribution by class",
        "Weekly metrics and model versions",
        "Decision mix over time",
        "Rules: hit rates and precision",
        "Rules versus model",
        "Latency and throughput",
    )


def test_every_chart_is_an_inline_png(full_report: str) -> None:
    images = re.findall(r'<img src="([^"]*)"', full_report)
    assert len(images) == 7  # every section but the summary has one chart
    for source in images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_external_and_no_script(full_report: str) -> None:
    assert "http://" not in full_report
    assert "https://" not in full_report
    assert "<script" not in full_report.lower()
    assert "<link" not in full_report.lower()
    assert "<style>" in full_report


def test_text_from_data_is_escaped(full_report: str) -> None:
    assert "&lt;script&gt;alert(&#x27;rule&#x27;)&lt;/script&gt;" in full_report
    assert "v2&lt;img src=x onerror=alert(1)&gt;" in full_report
    assert "history&lt;b&gt;.parquet" in full_report
    assert "<img src=x" not in full_report
    assert "<b>" not in full_report


def test_headline_figures_and_caught_split_are_shown(full_report: str) -> None:
    assert "0.9100" in full_report  # eval AUC
    assert "2,400 events/s" in full_report  # 3000 / 1.25
    assert "47.0%" in full_report  # model only: 55 of 117 fraud rows


def test_missing_optional_parts_render_with_notes(tmp_path: Path) -> None:
    rows = 1500
    summary = _summary(rows)
    for key in ("weeks", "models", "rules", "caught", "timing", "protocol"):
        del summary[key]
    summary["eval"] = {"auc": None, "ap": None, "cp100": None}
    folder = _report_dir(tmp_path, summary, _decisions_table(rows, labelled=False, rules=False))

    page = render_report(folder).read_text(encoding="utf-8")

    assert re.findall(r"<h2>(.*?)</h2>", page) == list(SECTION_TITLES)
    for text in (
        "The data has no labels",
        "no weekly metrics",
        "lists no models",
        "No rule fired",
        "no per-batch timing",
        "has no protocol",
    ):
        assert text in page
    # The decision mix and the per-event latency only need decisions.
    assert page.count("data:image/png;base64,") == 1
    assert "p99" in page


def test_summary_without_decisions_file_still_renders(tmp_path: Path) -> None:
    folder = _report_dir(tmp_path, _summary(2000), None)

    page = render_report(folder).read_text(encoding="utf-8")

    assert re.findall(r"<h2>(.*?)</h2>", page) == list(SECTION_TITLES)
    assert "decisions.parquet is missing" in page
    # Weekly, rules, caught and latency come from the summary alone.
    assert page.count("data:image/png;base64,") == 4


def test_missing_or_broken_summary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelsError, match="no backtest summary"):
        render_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ModelsError, match="JSON object"):
        render_report(tmp_path)
    (tmp_path / "summary.json").write_text("{nope")
    with pytest.raises(ModelsError, match="not valid JSON"):
        render_report(tmp_path)


def test_rule_statistics_recomputed_from_decisions(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_time": pa.array([0, 1, 2, 3], type=pa.timestamp("ms", tz="UTC")),
            "label": pa.array([1, 0, -1, 1], type=pa.int8()),
            "decision": ["REVIEW", "APPROVE", "BLOCK", "APPROVE"],
            "score": [0.9, 0.1, np.nan, 0.3],
            "rules_fired": pa.array([["a", "b"], ["a"], ["a"], []], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "decisions.parquet")
    decisions = load_decisions(tmp_path / "decisions.parquet")
    assert decisions is not None

    stats = {stat.rule_id: stat for stat in rule_stats_from_decisions(decisions)}

    # "a": 3 hits, 2 of them labelled, 1 fraud; "b": 1 hit, a fraud.
    assert (stats["a"].hits, stats["a"].fraud_hits, stats["a"].precision) == (3, 1, 0.5)
    assert (stats["b"].hits, stats["b"].fraud_hits, stats["b"].precision) == (1, 1, 1.0)
    days, counts = daily_mix(decisions)
    assert days.tolist() == [np.datetime64("1970-01-01", "D").astype(object)]
    assert counts[:, 0].tolist() == [2, 1, 1]


def test_caught_split_recomputed_from_decisions(tmp_path: Path) -> None:
    # Row 1 is flagged by the model alone at 0.7: that is the inferred review threshold.
    table = pa.table(
        {
            "event_time": pa.array(list(range(6)), type=pa.timestamp("ms", tz="UTC")),
            "label": pa.array([1, 0, 1, 1, 1, 1], type=pa.int8()),
            "decision": ["REVIEW", "REVIEW", "REVIEW", "APPROVE", "BLOCK", "APPROVE"],
            "score": [0.9, 0.7, 0.2, 0.1, 0.8, 0.1],
            "rules_fired": pa.array([["r"], [], ["r"], [], [], ["trusted"]], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "decisions.parquet")
    decisions = load_decisions(tmp_path / "decisions.parquet")
    assert decisions is not None

    result = caught_from_decisions(decisions, window_mask(decisions, None, None), {"trusted"})

    assert result == (Caught(rules_only=1, model_only=1, both=1, missed=2), 0.7)


def test_instants_parse_to_utc_and_a_bare_end_date_keeps_its_day() -> None:
    assert parse_instant_ms("1970-01-02") == DAY_MS
    assert parse_instant_ms("1970-01-02", end_of_day=True) == 2 * DAY_MS
    assert parse_instant_ms("1970-01-01T01:00:00+01:00") == 0
    assert parse_instant_ms("1970-01-01T00:00:01Z", end_of_day=True) == 1000
    assert parse_instant_ms("not a date") is None
    assert parse_instant_ms(None) is None


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, np.nan]), st.sampled_from([-1, 0, 1])),
        min_size=1,
        max_size=60,
    )
)
def test_curve_metrics_match_scikit_learn(rows: list[tuple[float, int]]) -> None:
    scores = np.array([score for score, _ in rows], dtype=np.float64)
    labels = np.array([label for _, label in rows], dtype=np.int8)
    usable = ~np.isnan(scores) & (labels >= 0)

    result = curve("score", scores, labels)

    truth = labels[usable] == 1
    if truth.all() or not truth.any():
        assert result is None
        return
    assert result is not None
    assert result.auc == pytest.approx(roc_auc_score(truth, scores[usable]))
    assert result.ap == pytest.approx(average_precision_score(truth, scores[usable]))
    assert result.recall[-1] == pytest.approx(1.0)


def test_identical_score_columns_make_one_curve(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_time": pa.array([0, 1, 2], type=pa.timestamp("ms", tz="UTC")),
            "score": [0.1, np.nan, 0.9],
            "champion_score": [0.1, np.nan, 0.9],
            "online_score": [0.2, 0.3, 0.4],
        }
    )
    pq.write_table(table, tmp_path / "decisions.parquet")
    decisions = load_decisions(tmp_path / "decisions.parquet")
    assert decisions is not None

    merged = _distinct_scores(decisions, np.ones(3, dtype=bool))

    assert [name for name, _ in merged] == ["decision score = champion", "online"]
