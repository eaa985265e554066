"""Labelled history for training: exported files, and the offline store of applied verdicts.

Two kinds of data feed a retrain:

- *history*: one exported file, or a folder of date-partitioned Parquet files with the
  Transaction columns plus ``label``, read by :func:`read_labelled_history` through the
  same ``schemas.history.read_history`` canonicalisation, so ids, amounts and times mean
  the same whichever way the data arrived.
- *the offline store*: every verdict the feedback service applied, joined with the
  decision it judged (:class:`JoinedLabel`: ids, amount, label, the score and the exact
  feature vector that was served). :class:`OfflineStoreWriter` appends them, and
  :func:`read_feedback_examples` gives the last verdict per transaction for training.

Store layout: ``<root>/date=YYYY-MM-DD/part-<ns>-<id8>.parquet``, partitioned by the
transaction's event date (UTC), one file per date per append. File names sort in write
order (a zero-padded, strictly increasing nanosecond stamp), which is how "the last
verdict" is decided between equal ``labeled_at``. A file is written under a hidden
``.tmp`` name, fsynced and renamed, so a reader never sees half of one and a crash leaves
only a hidden file that every reader skips.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models._fs import private_dir
from models.exceptions import TrainingError
from models.manifest import fsync_directory
from schemas._types import epoch_ms
from schemas.history import read_history

__all__ = [
    "FEATURE_PREFIX",
    "JoinedLabel",
    "OfflineStoreWriter",
    "applied_label_files",
    "parquet_files",
    "read_feedback_examples",
    "read_joined_labels",
    "read_labelled_history",
]

#: Feature ``name`` of a joined label is stored in the float64 column ``f:name``.
FEATURE_PREFIX = "f:"

_TIME = pa.timestamp("ms", tz="UTC")
_SCHEMA = pa.schema(
    [
        pa.field("tx_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("merchant_id", pa.string()),
        pa.field("amount", pa.string()),
        pa.field("event_time", _TIME, nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("labeled_at", _TIME, nullable=False),
        pa.field("analyst_id", pa.string()),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("model_version", pa.string()),
    ]
)
_COLUMNS = tuple(_SCHEMA.names)
_FILE_NAME = re.compile(r"part-(\d{20})-([0-9a-f]{8})\.parquet")
_ORDER = "__write_order"


@dataclass(frozen=True, slots=True)
class JoinedLabel:
    """One applied verdict joined with the decision snapshot it judged.

    Times are aware datetimes (kept to the millisecond, like every wire timestamp);
    ``label`` is 1 for fraud, 0 for legit; ``features`` is the vector as scored (a
    ``None`` or NaN value is unknown; both are kept apart in the store).
    """

    tx_id: str
    user_id: str
    merchant_id: str | None
    amount: str | None
    event_time: datetime
    label: int
    source: str
    labeled_at: datetime
    analyst_id: str | None
    decision: str
    score: float | None
    model_version: str | None
    features: Mapping[str, float | None]

    def __post_init__(self) -> None:
        for name in ("tx_id", "user_id", "source", "decision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TrainingError(
                    f"joined label {self.tx_id!r}: {name} must be a non-empty string"
                )
        if self.label not in (0, 1):
            raise TrainingError(f"joined label {self.tx_id}: label must be 1 or 0")
        for name in ("event_time", "labeled_at"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise TrainingError(f"joined label {self.tx_id}: {name} must be an aware datetime")


class OfflineStoreWriter:
    """Appends joined labels to the store under ``root``, one atomic file per event date.

    An append is atomic per file, not per call: after a crash, appending the same
    verdicts again is harmless, as readers keep one row per ``tx_id``. One writer per
    store: file names increase strictly within a writer and start after the newest file
    already there, so the order survives restarts and clock steps back.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        files = applied_label_files(root)
        self._last_ns = _stamp(files[-1]) if files else 0

    @property
    def root(self) -> Path:
        """The store folder."""
        return self._root

    def append(self, rows: Sequence[JoinedLabel]) -> list[Path]:
        """Write ``rows`` (in order within each date); return the files written."""
        by_date: dict[str, list[JoinedLabel]] = {}
        for row in rows:
            day = row.event_time.astimezone(UTC).strftime("%Y-%m-%d")
            by_date.setdefault(day, []).append(row)
        return [
            self._write(self._root / f"date={day}", _table(by_date[day])) for day in sorted(by_date)
        ]

    def _write(self, partition: Path, table: pa.Table) -> Path:
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        name = f"part-{self._last_ns:020d}-{uuid.uuid4().hex[:8]}.parquet"
        created = not partition.is_dir()
        if created:
            private_dir(self._root)
        partition.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created:
            fsync_directory(partition.parent)
        temporary, final = partition / f".{name}.tmp", partition / name
        try:
            with temporary.open("wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(partition)
        return final


def applied_label_files(root: Path) -> list[Path]:
    """Every store file under ``root``, in write order (by the stamp in its name).

    A missing folder is an empty store. A visible Parquet file the writer did not name
    is refused: its place in the order of verdicts would be a guess.
    """
    if not root.is_dir():
        return []
    named: list[tuple[int, str, Path]] = []
    for path in parquet_files(root):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise TrainingError(
                f"{path}: not an offline store file (expected part-<ns>-<id>.parquet)"
            )
        named.append((int(match[1]), match[2], path))
    return [path for *_, path in sorted(named)]


def read_joined_labels(path: Path) -> list[JoinedLabel]:
    """The rows of one store file, as written (a feature a row lacked comes back None)."""
    table = _read_table(path)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    features = [name for name in table.column_names if name.startswith(FEATURE_PREFIX)]
    labels = []
    for i in range(table.num_rows):
        values = {name: columns[name][i] for name in _COLUMNS}
        values["event_time"] = values["event_time"].astimezone(UTC)
        values["labeled_at"] = values["labeled_at"].astimezone(UTC)
        vector = {name[len(FEATURE_PREFIX) :]: columns[name][i] for name in features}
        labels.append(JoinedLabel(**values, features=vector))
    return labels


def read_feedback_examples(root: Path) -> pd.DataFrame:
    """The store as training examples: the last verdict per ``tx_id``, by event time.

    The last verdict is the one with the latest ``labeled_at``, then the latest written.
    Columns: those of :class:`JoinedLabel` (``label`` int8, times ``datetime64[ms, UTC]``)
    and one float64 ``f:<name>`` column per feature ever stored (NaN where unknown).
    An empty or missing store gives an empty frame with the fixed columns.
    """
    files = applied_label_files(root)
    if not files:
        empty: pd.DataFrame = _SCHEMA.empty_table().to_pandas()
        return empty
    table = pa.concat_tables([_read_table(path) for path in files], promote_options="default")
    frame: pd.DataFrame = table.to_pandas()
    frame[_ORDER] = range(len(frame))
    last = frame.sort_values(["labeled_at", _ORDER], kind="stable").drop_duplicates(
        "tx_id", keep="last"
    )
    ordered = last.sort_values(["event_time", _ORDER], kind="stable")
    return ordered.drop(columns=_ORDER).reset_index(drop=True)


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


def _table(rows: Sequence[JoinedLabel]) -> pa.Table:
    """Rows as an Arrow table: the fixed columns, then ``f:`` columns in first-seen order."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.features))
    columns: list[pa.Array] = []
    for field in _SCHEMA:
        values = [getattr(row, field.name) for row in rows]
        if field.type == _TIME:
            columns.append(pa.array([epoch_ms(v) for v in values], pa.int64()).cast(_TIME))
        elif field.type == pa.float64():
            columns.append(pa.array([_float(v) for v in values], pa.float64()))
        elif field.type == pa.int8():
            columns.append(pa.array([int(v) for v in values], pa.int8()))
        else:
            columns.append(pa.array(values, field.type))
    for name in names:
        columns.append(pa.array([_float(row.features.get(name)) for row in rows], pa.float64()))
    features = [pa.field(FEATURE_PREFIX + name, pa.float64()) for name in names]
    return pa.Table.from_arrays(columns, schema=pa.schema([*_SCHEMA, *features]))


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _read_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TrainingError(f"{path}: unreadable offline store file: {exc}") from exc
    missing = [name for name in _COLUMNS if name not in table.column_names]
    if missing:
        raise TrainingError(f"{path}: not an offline store file, it lacks {missing}")
    bad = [
        name
        for name, kind in zip(table.column_names, table.schema.types, strict=True)
        if name.startswith(FEATURE_PREFIX) and kind != pa.float64()
    ]
    if bad:
        raise TrainingError(f"{path}: feature columns {bad[:5]} are not float64")
    return table.select(
        [*_COLUMNS, *(n for n in table.column_names if n.startswith(FEATURE_PREFIX))]
    )


def _stamp(path: Path) -> int:
    match = _FILE_NAME.fullmatch(path.name)
    return 0 if match is None else int(match[1])
