from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.exceptions import SimulatorError
from models.simulator import (
    COLUMNS,
    SimulatorConfig,
    history_format,
    read_history,
    simulate_history,
    write_history,
)


@pytest.fixture(scope="module")
def small_history() -> pd.DataFrame:
    return simulate_history(SimulatorConfig(users=60, merchants=25, days=4, seed=21))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".CSV"])
def test_round_trip_is_exact(small_history: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = write_history(small_history, tmp_path / "nested" / f"history{suffix}")
    assert path.exists()
    pd.testing.assert_frame_equal(read_history(path), small_history)


def test_parquet_types_follow_the_contract(small_history: pd.DataFrame, tmp_path: Path) -> None:
    path = write_history(small_history, tmp_path / "history.parquet")
    schema = pq.read_schema(path)
    assert schema.names == list(COLUMNS)
    assert schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("amount").type == pa.string()
    assert schema.field("mcc").type == pa.string()
    assert schema.field("lat").type == pa.float64()


def test_csv_keeps_amounts_as_text_and_times_in_rfc3339(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_history(small_history, tmp_path / "history.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert raw["event_time"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").all()
    assert raw["amount"].str.fullmatch(r"\d+\.\d\d").all()
    assert raw["mcc"].str.fullmatch(r"\d{4}").all()
    assert (raw["amount"] == small_history["amount"]).all()


@pytest.mark.parametrize("name", ["history.json", "history", "history.parquet.gz"])
def test_other_suffixes_are_refused(small_history: pd.DataFrame, tmp_path: Path, name: str) -> None:
    with pytest.raises(SimulatorError, match=r"\.parquet or \.csv"):
        history_format(tmp_path / name)
    with pytest.raises(SimulatorError):
        write_history(small_history, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_frame_without_the_contract_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="missing columns"):
        write_history(pd.DataFrame({"tx_id": ["a"]}), tmp_path / "x.csv")
