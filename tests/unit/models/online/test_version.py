from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from models.manifest import PLAIN_NAME
from models.online import online_version
from schemas import contains_pan

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(st.integers(min_value=0, max_value=10**12), moments)
def test_a_version_never_looks_like_a_card_number(n_learned: int, moment: datetime) -> None:
    version = online_version(n_learned, moment)
    # A PAN-like digit run would make every ModelUpdate naming it refused (found in the demo).
    assert not contains_pan(version)
    assert not contains_pan(f"/var/lib/fraudstream/registry/online/{version}.onnx")
    assert re.fullmatch(PLAIN_NAME, version)


def test_the_demo_case_that_tripped_the_card_number_check() -> None:
    assert contains_pan("online-0000005-20261124T105415697027")  # the old scheme
    moment = datetime(2026, 11, 24, 10, 54, 15, 697027, tzinfo=UTC)
    assert online_version(5, moment) == "online-20261124T105415m697-n5"


@given(st.integers(min_value=0, max_value=10**6), moments)
def test_versions_sort_by_time(n_learned: int, moment: datetime) -> None:
    later = moment + timedelta(milliseconds=1)
    assert online_version(n_learned, moment) < online_version(n_learned, later)
