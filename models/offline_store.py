"""Reading labelled history for training: one file, or the offline store's Parquet folder.

The feedback loop appends labelled examples to a date-partitioned folder of Parquet
files (``<root>/date=2025-03-01/part-*.parquet``, Transaction columns plus ``label``).
Training reads either that folder or a single exported file through the same
``schemas.history.read_history`` canonicalisation, so ids, amounts and times mean the
same whichever way the data arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from models.exceptions import TrainingError
from schemas.history import read_history

__all__ = ["parquet_files", "read_labelled_history"]


def parquet_files(root: Path) -> list[Path]:
    """Every Parquet file under ``root``, in path order (date partitions sort by date).

    Hidden and underscore-prefixed names (``.part.tmp``, ``_SUCCESS``, ``_temporary/``)
    are a writer's work in progress or markers, never data, and are skipped.
    """
    files = [
        path
        for path in root.rglob("*.parquet")
        if path.is_file()
        and not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)
    ]
    return sorted(files)


def read_labelled_history(
    path: Path,
    mapping: Mapping[str, str] | None = None,
    *,
    on_file: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Read a history file or a folder of Parquet files, sorted by event time (stable).

    ``on_file(done, total)`` is told after each file of a folder, for progress displays.
    """
    columns = dict(mapping or {})
    if not path.is_dir():
        return read_history(path, columns)
    files = parquet_files(path)
    if not files:
        raise TrainingError(f"{path}: no Parquet files in this folder")
    frames = []
    for done, file in enumerate(files, start=1):
        frames.append(read_history(file, columns))
        if on_file is not None:
            on_file(done, len(files))
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("event_time", kind="stable").reset_index(drop=True)
