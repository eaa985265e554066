"""Simulated histories on disk: Parquet for typed, compact files; CSV for everything else.

Both carry the same columns and round-trip exactly: amounts stay decimal text, ids stay
text (an MCC like "0742" keeps its zero), times are UTC milliseconds (RFC 3339 with Z in
CSV), and a missing device or location stays missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.exceptions import SimulatorError
from models.simulator._render import ARROW_SCHEMA, COLUMNS

__all__ = ["history_format", "read_history", "write_history"]

_SUFFIXES: dict[str, Literal["parquet", "csv"]] = {".parquet": "parquet", ".csv": "csv"}
_STRING_COLUMNS = [name for name in COLUMNS if ARROW_SCHEMA.field(name).type == pa.string()]


def history_format(path: Path | str) -> Literal["parquet", "csv"]:
    """Tell which file format a path asks for, refusing anything else before work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise SimulatorError(
            f"cannot write {str(path)!r}: the file name must end in .parquet or .csv"
        )
    return _SUFFIXES[suffix]


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise SimulatorError(f"{source} is not a simulated history, missing columns: {missing}")


def write_history(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write a history as Parquet or CSV, chosen by the file's suffix; return the path."""
    target = Path(path)
    file_format = history_format(target)
    _check_columns(frame, "the frame")
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=ARROW_SCHEMA, preserve_index=False)
    if file_format == "parquet":
        pq.write_table(table, target, compression="zstd")
        return target
    text = frame[list(COLUMNS)].copy()
    epoch_ms = table.column("event_time").cast(pa.int64()).to_numpy()
    text["event_time"] = np.datetime_as_string(
        epoch_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC"
    )
    text.to_csv(target, index=False)
    return target


def read_history(path: Path | str) -> pd.DataFrame:
    """Read a history written by :func:`write_history` back with its exact column types."""
    source = Path(path)
    if history_format(source) == "parquet":
        frame = pq.read_table(source).to_pandas()
    else:
        frame = pd.read_csv(
            source,
            dtype={
                **dict.fromkeys(_STRING_COLUMNS, "str"),
                "lat": "float64",
                "lon": "float64",
                "schema_version": "int64",
                "label": "int64",
            },
            keep_default_na=False,
            na_values={"device_id": [""], "lat": [""], "lon": [""]},
        )
        _check_columns(frame, str(source))
        frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True, format="ISO8601")
    _check_columns(frame, str(source))
    frame["event_time"] = frame["event_time"].astype("datetime64[ms, UTC]")
    return frame[list(COLUMNS)]
