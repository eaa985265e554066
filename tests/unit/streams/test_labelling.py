from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from streams.labelling import LabelError, label_rows, make_label


@pytest.mark.parametrize(
    ("verdict", "label"), [("fraud", "fraud"), ("LEGIT", "legit"), ("1", "fraud"), ("0", "legit")]
)
def test_verdicts_in_the_forms_analysts_write_them(verdict: str, label: str) -> None:
    assert make_label("tx-1", "u-1", verdict).label == label


def test_an_unknown_verdict_is_refused_with_the_accepted_ones() -> None:
    with pytest.raises(LabelError, match="fraud or legit"):
        make_label("tx-1", "u-1", "maybe")


def test_a_card_number_in_a_note_is_refused() -> None:
    with pytest.raises(LabelError):
        make_label("tx-1", "u-1", "fraud", note="card 4111111111111111 used abroad")


def test_file_rows_become_labels_or_reasons_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "tx_id,user_id,label,labeled_at\n"
        "tx-1,u-1,fraud,2026-11-20T10:00:00Z\n"
        "tx-2,u-2,perhaps,\n"
        "tx-3,u-3,0,\n"
    )
    rows = list(label_rows(path, {"source": "chargeback", "analyst_id": "ana"}))
    assert [line for line, _ in rows] == [2, 3, 4]
    first, refused, third = (item for _, item in rows)
    assert not isinstance(first, str)
    assert first.labeled_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert first.source == "chargeback"
    assert first.analyst_id == "ana"
    assert isinstance(refused, str)
    assert "perhaps" in refused
    assert not isinstance(third, str)
    assert third.label == "legit"


def test_parquet_files_work_too(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"tx_id": ["a"], "user_id": ["u"], "label": [1]}).to_parquet(path)
    ((line, item),) = list(label_rows(path, {}))
    assert line == 1
    assert not isinstance(item, str)
    assert item.label == "fraud"


def test_a_file_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("tx,label\na,fraud\n")
    with pytest.raises(LabelError, match="missing columns"):
        list(label_rows(path, {}))
