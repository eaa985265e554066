"""Point-in-time training sets: no label before it is known, no future event in a feature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.exceptions import TrainingError
from models.offline_store import parquet_files, read_labelled_history
from models.pit import (
    format_duration,
    parse_cutoff,
    parse_duration,
    point_in_time_dataset,
    point_in_time_training_set,
)
from models.simulator import SimulatorConfig, simulate_history
from models.training_set import build_training_set
from operators.features import FEATURE_NAMES, features_for_frame
from operators.label_features import LABEL_FEATURES, label_features_for_frame
from schemas.history import read_history

DELAY = timedelta(days=7)
RISK = FEATURE_NAMES.index("merchant_risk")


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return simulate_history(SimulatorConfig(users=80, merchants=30, days=12, seed=11))


@pytest.fixture(scope="module")
def full_features(history: pd.DataFrame) -> np.ndarray:
    return features_for_frame(history)


def served(frame: pd.DataFrame, delay: timedelta, features: np.ndarray | None = None) -> np.ndarray:
    """The feature code's rows with merchant_risk from the labels known at each event."""
    rows = features_for_frame(frame) if features is None else features.copy()
    known = label_features_for_frame(frame, delay // timedelta(milliseconds=1))
    rows[:, RISK] = known[:, LABEL_FEATURES.index("merchant_known_fraud_share_28d")]
    return rows


def ms(times: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(times).tz_convert(None), dtype="datetime64[ms]")


def test_a_label_inside_the_delay_window_never_reaches_the_training_set(
    history: pd.DataFrame,
) -> None:
    cutoff = datetime(2026, 1, 10, tzinfo=UTC)
    known_until = np.datetime64(cutoff.replace(tzinfo=None) - DELAY, "ms")
    times = ms(history["event_time"])

    dataset = point_in_time_dataset(history, cutoff, DELAY)

    assert dataset.training.event_times.max() <= known_until
    expected = times <= known_until
    assert len(dataset.training.labels) == expected.sum()
    np.testing.assert_array_equal(dataset.training.labels, history["label"].to_numpy()[expected])
    young = (times > known_until) & (times <= np.datetime64(cutoff.replace(tzinfo=None), "ms"))
    assert dataset.withheld == young.sum() > 0
    assert dataset.labels_known_until == cutoff - DELAY


def test_the_label_delay_boundary_is_inclusive() -> None:
    frame = tiny_frame(["2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z", "2026-01-08T00:00:01Z"])

    dataset = point_in_time_dataset(frame, datetime(2026, 1, 15, tzinfo=UTC), DELAY)

    assert dataset.training.event_times.tolist() == [
        np.datetime64("2026-01-01T00:00:00.000"),
        np.datetime64("2026-01-08T00:00:00.000"),
    ]


def test_no_event_after_the_cutoff_is_replayed_or_changes_a_feature(
    history: pd.DataFrame,
) -> None:
    cutoff = datetime(2026, 1, 9, 12, tzinfo=UTC)
    past = history[history["event_time"] <= pd.Timestamp(cutoff)]

    with_future = point_in_time_dataset(history, cutoff, DELAY)
    without_future = point_in_time_dataset(past.reset_index(drop=True), cutoff, DELAY)

    assert with_future.replayed == len(past) < len(history)
    np.testing.assert_array_equal(with_future.training.features, without_future.training.features)
    np.testing.assert_array_equal(with_future.user_ids, without_future.user_ids)


@pytest.mark.parametrize("row", [0, 1, 57, 1_000, 2_345])
def test_features_of_a_row_do_not_depend_on_later_rows(
    history: pd.DataFrame, full_features: np.ndarray, row: int
) -> None:
    prefix = features_for_frame(history.iloc[: row + 1])

    np.testing.assert_array_equal(prefix[row], full_features[row])


def test_features_are_the_feature_code_output_for_the_replayed_rows(
    history: pd.DataFrame, full_features: np.ndarray
) -> None:
    dataset = point_in_time_dataset(history, label_delay=timedelta(0))

    expected = served(history, timedelta(0), full_features)
    np.testing.assert_array_equal(dataset.training.features, expected)
    np.testing.assert_array_equal(dataset.training.labels, build_training_set(history).labels)
    assert dataset.cutoff == history["event_time"].max().to_pydatetime()
    assert dataset.withheld == 0
    np.testing.assert_array_equal(dataset.user_ids, history["user_id"].to_numpy(dtype=object))


def test_merchant_risk_is_the_share_of_fraud_among_labels_known_at_the_event() -> None:
    # m1: a fraud on day 0, legit on days 1 and 1.5, then events on days 3.25 and 40;
    # a label is known 2 days after its event, and only strictly before an event counts.
    frame = tiny_frame(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-02T12:00:00Z",
            "2026-01-04T06:00:00Z",
            "2026-02-10T00:00:00Z",
        ]
    )
    frame["label"] = [1, 0, 0, 0, 0]

    dataset = point_in_time_dataset(frame, label_delay=timedelta(days=2))

    risk = dataset.training.features[:, RISK]
    # days 0, 1, 1.5: nothing known yet (the fraud is known on day 2);
    # day 3.25: the fraud and day 1's legit are known (day 1.5's only at 3.5): 1/2.
    np.testing.assert_array_equal(risk[:3], [np.nan] * 3)
    assert risk[3] == pytest.approx(0.5)
    assert len(risk) == 4  # the last row's label is not known at the cut-off


def test_an_explicit_merchant_risk_lookup_wins(history: pd.DataFrame) -> None:
    dataset = point_in_time_dataset(history, label_delay=DELAY, merchant_risk=lambda m, t: 0.25)

    assert (dataset.training.features[:, RISK] == 0.25).all()


def test_merchant_risk_from_labels_does_not_depend_on_the_cutoff(history: pd.DataFrame) -> None:
    delay = timedelta(days=2)
    risk = point_in_time_dataset(history, label_delay=delay).training.features[:, RISK]
    cutoff = datetime(2026, 1, 8, tzinfo=UTC)

    earlier = point_in_time_dataset(history, cutoff, delay).training.features[:, RISK]

    assert np.isfinite(risk).any() and np.isnan(risk).any()
    assert 0 < len(earlier) < len(risk)
    np.testing.assert_array_equal(earlier, risk[: len(earlier)])


def test_tx_ids_are_aligned_with_the_training_rows(history: pd.DataFrame) -> None:
    dataset = point_in_time_dataset(history, label_delay=DELAY)

    assert dataset.tx_ids is not None
    expected = history.loc[history["event_time"] <= history["event_time"].max() - DELAY, "tx_id"]
    assert dataset.tx_ids.tolist() == expected.tolist()


def test_the_default_cutoff_is_the_newest_event(history: pd.DataFrame) -> None:
    newest = history["event_time"].max().to_pydatetime()
    training = point_in_time_training_set(history, label_delay=DELAY)

    assert training.event_times.max() <= np.datetime64(newest.replace(tzinfo=None) - DELAY, "ms")
    assert len(training.labels) == (history["event_time"] <= newest - DELAY).sum()


def test_unlabelled_rows_feed_features_but_are_not_examples(
    history: pd.DataFrame, full_features: np.ndarray
) -> None:
    frame = history.copy()
    frame["label"] = frame["label"].astype(object)
    frame.loc[frame.index[::2], "label"] = None

    dataset = point_in_time_dataset(frame, label_delay=timedelta(0))

    assert len(dataset.training.labels) == len(frame) - len(frame.index[::2])
    expected = served(frame, timedelta(0), full_features)[1::2]
    np.testing.assert_array_equal(dataset.training.features, expected)


def test_a_transaction_delivered_twice_is_one_example_with_its_last_label() -> None:
    frame = tiny_frame(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
    frame["tx_id"] = ["t1", "t1", "t2"]
    frame["label"] = [0, 1, 0]

    dataset = point_in_time_dataset(frame, label_delay=timedelta(0))

    assert dataset.training.labels.tolist() == [1, 0]


def test_no_known_label_is_refused_with_a_hint() -> None:
    frame = tiny_frame(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])

    with pytest.raises(TrainingError, match=r"no label is known.*--label-delay"):
        point_in_time_dataset(frame, label_delay=DELAY)
    with pytest.raises(TrainingError, match="no event at or before"):
        point_in_time_dataset(frame, datetime(2025, 1, 1, tzinfo=UTC), DELAY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0d", timedelta(0)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1.5h", "7y"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(TrainingError, match="duration"):
        parse_duration(text)


def test_durations_format_back() -> None:
    assert format_duration(timedelta(days=1, hours=12)) == "1d12h"
    assert format_duration(timedelta(0)) == "0s"


def test_cutoffs_parse_dates_as_utc_midnight_and_keep_zones() -> None:
    assert parse_cutoff("2026-03-20") == datetime(2026, 3, 20, tzinfo=UTC)
    assert parse_cutoff("2026-03-20T10:00:00+02:00") == datetime(2026, 3, 20, 8, tzinfo=UTC)
    assert parse_cutoff("2026-03-20T10:00:00") == datetime(2026, 3, 20, 10, tzinfo=UTC)
    with pytest.raises(TrainingError, match="cut-off"):
        parse_cutoff("last tuesday")


def test_the_offline_store_folder_reads_like_one_file(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    single = tmp_path / "history.parquet"
    history.to_parquet(single)
    store = tmp_path / "store"
    for day, rows in history.groupby(history["event_time"].dt.strftime("%Y-%m-%d")):
        partition = store / f"date={day}"
        partition.mkdir(parents=True)
        rows.to_parquet(partition / "part-0.parquet")
    (store / "_SUCCESS").write_text("")
    (store / "date=2026-01-01" / ".part-1.parquet").write_bytes(b"half written")
    progress: list[tuple[int, int]] = []

    frame = read_labelled_history(store, on_file=lambda done, total: progress.append((done, total)))

    assert len(parquet_files(store)) == history["event_time"].dt.date.nunique()
    assert progress[-1] == (len(parquet_files(store)),) * 2
    expected = read_history(single)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)


def test_unlabelled_rows_in_the_store_count_for_features_only(
    history: pd.DataFrame, full_features: np.ndarray, tmp_path: Path
) -> None:
    # The store keeps every transaction; a label not known yet is null (nullable Int8).
    frame = history.copy()
    frame["label"] = frame["label"].astype("Int8")
    frame.loc[frame.index[::2], "label"] = pd.NA
    (tmp_path / "date=2026-01-01").mkdir()
    frame.to_parquet(tmp_path / "date=2026-01-01" / "part-0.parquet")

    dataset = point_in_time_dataset(read_labelled_history(tmp_path), label_delay=timedelta(0))

    expected = served(frame, timedelta(0), full_features)[1::2]
    np.testing.assert_array_equal(dataset.training.features, expected)
    np.testing.assert_array_equal(dataset.training.labels, history["label"].to_numpy()[1::2])


def test_an_empty_store_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no Parquet files"):
        read_labelled_history(tmp_path)


def tiny_frame(times: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(len(times))],
            "user_id": "u1",
            "merchant_id": "m1",
            "amount": "10.00",
            "event_time": pd.to_datetime(times, utc=True),
            "label": 0,
        }
    )
