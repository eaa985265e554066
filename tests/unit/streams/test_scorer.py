"""The scorer process's GC tuning (its effect on CPU and pauses is in benchmarks/README.md)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from streams.scorer import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_raises_gen0_and_keeps_freezing_what_is_alive() -> None:
    _, gen1, gen2 = gc.get_threshold()
    freezer = tune_gc(12_345, freeze_every_s=0.05)
    assert freezer is not None
    assert freezer.daemon
    assert gc.get_threshold() == (12_345, gen1, gen2)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    kept = [[index] for index in range(1000)]  # young containers, alive
    deadline = time.monotonic() + 10
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    freezer.stop()
    freezer.join(timeout=5)
    assert gc.get_freeze_count() >= len(kept)
    assert not freezer.is_alive()


@pytest.mark.usefixtures("restored_gc")
def test_zero_keeps_pythons_defaults() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    assert tune_gc(0, 0.0) is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
