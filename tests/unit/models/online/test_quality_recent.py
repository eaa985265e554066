"""The online model's recent precision (the console header's figure): a rolling window of labels."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from models.exceptions import ModelFormatError
from models.online._quality import DECISION_CUT, RECENT_WINDOW, ProgressiveQuality

FLAGGED, PASSED = 0.9, 0.1


def _fed(pairs: list[tuple[bool, float]]) -> ProgressiveQuality:
    quality = ProgressiveQuality()
    for fraud, probability in pairs:
        quality.update(fraud, probability)
    return quality


def _same(left: dict[str, float], right: dict[str, float]) -> bool:
    return left.keys() == right.keys() and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in ((left[k], right[k]) for k in left)
    )


def test_recent_precision_is_unknown_until_something_is_flagged() -> None:
    assert math.isnan(ProgressiveQuality().report()["recent_precision"])
    quality = _fed([(True, PASSED), (False, PASSED)] * 50)
    assert math.isnan(quality.report()["recent_precision"])

    quality.update(False, DECISION_CUT)  # the cut itself flags

    assert quality.report()["recent_precision"] == 0.0


def test_recent_precision_counts_flagged_labels_in_the_window() -> None:
    quality = _fed([(True, FLAGGED)] * 3 + [(False, FLAGGED)] + [(True, PASSED)] * 5)

    report = quality.report()

    assert report["recent_precision"] == pytest.approx(0.75)
    assert report["recent_precision"] == pytest.approx(report["precision"])


def test_only_the_last_window_counts() -> None:
    # A model that was wrong for a whole window, then right for a whole window.
    quality = _fed([(False, FLAGGED)] * RECENT_WINDOW + [(True, FLAGGED)] * RECENT_WINDOW)

    report = quality.report()

    assert report["recent_precision"] == 1.0
    assert report["precision"] == pytest.approx(0.5)


def test_window_edge_is_exact() -> None:
    # One false positive, then RECENT_WINDOW - 1 true positives: still in the window...
    quality = _fed([(False, FLAGGED)] + [(True, FLAGGED)] * (RECENT_WINDOW - 1))
    assert quality.report()["recent_precision"] == pytest.approx(1 - 1 / RECENT_WINDOW)

    quality.update(True, FLAGGED)  # ...and one more label pushes it out

    assert quality.report()["recent_precision"] == 1.0


def test_unknown_again_once_every_flagged_label_left_the_window() -> None:
    quality = _fed([(True, FLAGGED)] * 10 + [(False, PASSED)] * RECENT_WINDOW)

    report = quality.report()

    assert math.isnan(report["recent_precision"])
    assert report["precision"] == 1.0  # the running figure still remembers


def _round_trip(state: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return loaded


def test_the_window_survives_a_checkpoint_and_keeps_rolling_identically() -> None:
    pairs = [(i % 3 == 0, FLAGGED if i % 2 else PASSED) for i in range(RECENT_WINDOW + 37)]
    quality = _fed(pairs)
    state = _round_trip(quality.state())

    restored = ProgressiveQuality.from_state(state)

    assert len(state["recent"]) == RECENT_WINDOW
    assert _same(restored.report(), quality.report())
    for fraud, probability in [(False, FLAGGED)] * 40 + [(True, FLAGGED)] * 3:
        quality.update(fraud, probability)
        restored.update(fraud, probability)
        assert restored.report()["recent_precision"] == quality.report()["recent_precision"]


def test_a_checkpoint_from_before_the_window_still_loads() -> None:
    quality = _fed([(True, FLAGGED), (False, FLAGGED), (True, PASSED)])
    state = _round_trip(quality.state())
    del state["recent"]

    restored = ProgressiveQuality.from_state(state)
    report = restored.report()

    assert math.isnan(report["recent_precision"])
    assert report["precision"] == quality.report()["precision"] == 0.5
    restored.update(True, FLAGGED)
    assert restored.report()["recent_precision"] == 1.0


@pytest.mark.parametrize(
    "recent",
    [
        {"tp": 1},
        "[[1, 1]]",
        [[1, 1]] * (RECENT_WINDOW + 1),
        [[1]],
        [[1, 1, 0]],
        [[2, 1]],
        [[1, -1]],
        [["1", "1"]],
        [[0.5, 1]],
        [None],
        [{"y": 1, "p": 1}],
    ],
)
def test_a_malformed_window_is_refused(recent: object) -> None:
    state = _round_trip(ProgressiveQuality().state())
    state["recent"] = recent

    with pytest.raises(ModelFormatError, match=r"quality\.recent"):
        ProgressiveQuality.from_state(state)
