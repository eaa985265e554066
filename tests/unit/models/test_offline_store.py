"""The offline store: joined labels written atomically, read back exactly, last verdict wins."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import offline_store
from models.exceptions import TrainingError
from models.offline_store import (
    JoinedLabel,
    OfflineStoreWriter,
    applied_label_files,
    parquet_files,
    read_feedback_examples,
    read_joined_labels,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIXED = [
    "tx_id",
    "user_id",
    "merchant_id",
    "amount",
    "event_time",
    "label",
    "source",
    "labeled_at",
    "analyst_id",
    "decision",
    "score",
    "model_version",
]


def joined(
    tx_id: str = "t1",
    *,
    label: int = 1,
    event_time: datetime = T0,
    labeled_at: datetime | None = None,
    features: Mapping[str, float | None] | None = None,
    **fields: object,
) -> JoinedLabel:
    values: dict[str, object] = {
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": "12.30",
        "source": "analyst",
        "analyst_id": "a7",
        "decision": "review",
        "score": 0.42,
        "model_version": "v1",
    }
    values.update(fields)
    return JoinedLabel(
        tx_id=tx_id,
        event_time=event_time,
        label=label,
        labeled_at=labeled_at or event_time + timedelta(hours=1),
        features={"user_count_1h": 2.0, "merchant_risk": None} if features is None else features,
        **values,  # type: ignore[arg-type]
    )


def same(left: JoinedLabel, right: JoinedLabel) -> bool:
    """Equal, with NaN features equal to NaN (and to nothing else)."""

    def key(value: float | None) -> object:
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    plain = [f for f in JoinedLabel.__slots__ if f != "features"]
    return all(getattr(left, f) == getattr(right, f) for f in plain) and {
        k: key(v) for k, v in left.features.items()
    } == {k: key(v) for k, v in right.features.items()}


def test_a_file_reads_back_exactly_with_nan_and_none_features(tmp_path: Path) -> None:
    rows = [
        joined("t1", features={"a": 1.5, "b": None, "c": math.nan}),
        joined(
            "t2",
            label=0,
            merchant_id=None,
            amount=None,
            analyst_id=None,
            score=None,
            model_version=None,
            features={"a": -0.0, "b": 3.0, "c": math.inf},
        ),
    ]

    [file] = OfflineStoreWriter(tmp_path).append(rows)
    back = read_joined_labels(file)

    assert len(back) == 2
    assert all(same(b, r) for b, r in zip(back, rows, strict=True))
    assert back[0].features["b"] is None and math.isnan(back[0].features["c"] or 0.0)
    assert back[0].event_time.tzinfo is not None and back[0].event_time == T0


def test_a_feature_a_row_lacked_reads_back_as_none(tmp_path: Path) -> None:
    rows = [joined("t1", features={"a": 1.0}), joined("t2", features={"b": 2.0})]

    [file] = OfflineStoreWriter(tmp_path).append(rows)

    assert [r.features for r in read_joined_labels(file)] == [
        {"a": 1.0, "b": None},
        {"a": None, "b": 2.0},
    ]


def test_rows_are_partitioned_by_the_utc_event_date(tmp_path: Path) -> None:
    late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    rows = [
        joined("t1", event_time=datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
        joined("t2", event_time=late_evening),  # 2026-03-02 01:30 UTC
        joined("t3", event_time=datetime(2026, 3, 1, 23, 59, 59, 999_000, tzinfo=UTC)),
    ]

    files = OfflineStoreWriter(tmp_path).append(rows)

    assert [f.parent.name for f in files] == ["date=2026-03-01", "date=2026-03-02"]
    assert [r.tx_id for r in read_joined_labels(files[0])] == ["t1", "t3"]
    assert [r.tx_id for r in read_joined_labels(files[1])] == ["t2"]
    assert all(f.parent.parent == tmp_path for f in files)


def test_times_are_kept_to_the_millisecond(tmp_path: Path) -> None:
    [file] = OfflineStoreWriter(tmp_path).append([joined(event_time=T0.replace(microsecond=1_999))])

    assert read_joined_labels(file)[0].event_time == T0.replace(microsecond=1_000)


def test_files_sort_in_write_order_even_when_the_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([5_000, 4_000, 4_000, 1, 0, 0])
    monkeypatch.setattr(offline_store.time, "time_ns", lambda: next(clock))
    writer = OfflineStoreWriter(tmp_path)
    days = [T0, T0 - timedelta(days=3), T0 + timedelta(days=1), T0]

    written = [writer.append([joined(f"t{i}", event_time=day)])[0] for i, day in enumerate(days)]
    restarted = OfflineStoreWriter(tmp_path).append([joined("t9", event_time=T0)])[0]

    assert applied_label_files(tmp_path) == [*written, restarted]
    assert parquet_files(tmp_path) != applied_label_files(tmp_path)  # not the path order


def test_a_file_left_by_a_crash_is_never_read(tmp_path: Path) -> None:
    writer = OfflineStoreWriter(tmp_path)
    [good] = writer.append([joined("t1")])
    crashed = good.parent / f".{good.name.replace('part-', 'part-9')}.tmp"
    crashed.write_bytes(good.read_bytes()[:100])  # half a file under the hidden name

    assert applied_label_files(tmp_path) == [good]
    assert read_feedback_examples(tmp_path)["tx_id"].tolist() == ["t1"]
    assert parquet_files(tmp_path) == [good]


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_src: object, _dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(offline_store.os, "replace", fail)

    with pytest.raises(OSError, match="disk full"):
        OfflineStoreWriter(tmp_path).append([joined("t1")])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_last_verdict_by_labeled_at_wins_then_the_last_written(tmp_path: Path) -> None:
    writer = OfflineStoreWriter(tmp_path)
    hour = timedelta(hours=1)
    writer.append([joined("t1", label=0, labeled_at=T0 + 3 * hour)])  # latest verdict
    writer.append([joined("t1", label=1, labeled_at=T0 + 2 * hour)])  # written later, older
    writer.append([joined("t2", label=1, labeled_at=T0 + hour), joined("t3", label=0)])
    writer.append([joined("t2", label=0, labeled_at=T0 + hour, features={"a": 7.0})])  # tie

    examples = read_feedback_examples(tmp_path)

    assert examples.set_index("tx_id")["label"].to_dict() == {"t1": 0, "t2": 0, "t3": 0}
    assert examples.loc[examples["tx_id"] == "t2", "f:a"].tolist() == [7.0]
    assert len(examples) == 3


def test_feedback_examples_have_the_fixed_columns_and_types(tmp_path: Path) -> None:
    writer = OfflineStoreWriter(tmp_path)
    writer.append([joined("t2", event_time=T0 + timedelta(days=1), features={"a": 1.0})])
    writer.append([joined("t1", features={"b": None})])

    examples = read_feedback_examples(tmp_path)

    assert list(examples.columns) == [*FIXED, "f:a", "f:b"]
    assert examples["tx_id"].tolist() == ["t1", "t2"]  # by event time
    assert examples["label"].dtype == np.int8
    assert str(examples["event_time"].dtype) == "datetime64[ms, UTC]"
    assert str(examples["labeled_at"].dtype) == "datetime64[ms, UTC]"
    assert examples["f:a"].dtype == np.float64
    assert np.isnan(examples["f:a"].iloc[0]) and np.isnan(examples["f:b"]).all()


def test_an_empty_or_missing_store_gives_an_empty_frame(tmp_path: Path) -> None:
    for root in (tmp_path, tmp_path / "missing"):
        examples = read_feedback_examples(root)
        assert examples.empty
        assert list(examples.columns) == FIXED
    assert OfflineStoreWriter(tmp_path).append([]) == []


def test_a_file_the_writer_did_not_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "date=2026-03-01").mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "date=2026-03-01" / "export.parquet")

    with pytest.raises(TrainingError, match="not an offline store file"):
        read_feedback_examples(tmp_path)


def test_a_store_file_with_wrong_columns_is_refused(tmp_path: Path) -> None:
    [file] = OfflineStoreWriter(tmp_path).append([joined("t1")])
    pd.DataFrame({"tx_id": ["t1"]}).to_parquet(file)

    with pytest.raises(TrainingError, match="lacks"):
        read_feedback_examples(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": 2}, "label must be 1 or 0"),
        ({"event_time": datetime(2026, 3, 1)}, "event_time must be an aware"),
        ({"labeled_at": datetime(2026, 3, 1)}, "labeled_at must be an aware"),
        ({"tx_id": ""}, "tx_id must be a non-empty string"),
    ],
)
def test_bad_joined_labels_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        joined(**change)  # type: ignore[arg-type]


verdicts = st.lists(
    st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.booleans(), st.integers(0, 3)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(verdicts, min_size=1, max_size=4))
def test_read_feedback_examples_keeps_exactly_the_last_verdict(
    batches: list[list[tuple[str, bool, int]]],
) -> None:
    expected: dict[str, tuple[int, int]] = {}  # tx_id -> (labeled hour, label)
    with tempfile.TemporaryDirectory() as folder:
        writer = OfflineStoreWriter(Path(folder))
        for batch in batches:
            writer.append(
                [
                    joined(tx, label=int(fraud), labeled_at=T0 + timedelta(hours=hour))
                    for tx, fraud, hour in batch
                ]
            )
            for tx, fraud, hour in batch:
                if tx not in expected or hour >= expected[tx][0]:
                    expected[tx] = (hour, int(fraud))

        examples = read_feedback_examples(Path(folder))

    assert examples.set_index("tx_id")["label"].to_dict() == {
        tx: label for tx, (_, label) in expected.items()
    }


def test_store_files_are_hidden_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[Path]] = []
    real_replace = os.replace

    def watch(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        assert Path(src).name.startswith(".") and Path(src).exists()
        seen.append(applied_label_files(tmp_path))
        real_replace(src, dst)

    monkeypatch.setattr(offline_store.os, "replace", watch)
    OfflineStoreWriter(tmp_path).append([joined("t1")])

    assert seen == [[]]
    assert len(applied_label_files(tmp_path)) == 1
