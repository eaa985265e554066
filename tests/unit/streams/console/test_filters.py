"""The queue's URL filters: strict parsing that names the bad field, and a faithful round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.console import QueueFilter
from streams.console._filters import FILTER_FIELDS, parse_filter, query_string
from streams.exceptions import ConsoleError


def test_no_parameters_is_the_default_queue() -> None:
    assert parse_filter({}) == QueueFilter()
    assert parse_filter({name: "" for name in FILTER_FIELDS}) == QueueFilter()


def test_every_field_is_parsed() -> None:
    wanted = parse_filter(
        {
            "order": "score",
            "decision": " review ",
            "rule": "velocity_burst",
            "min_score": "0.25",
            "max_score": "1",
            "since": "2026-11-24T09:30",
            "until": "2026-11-24T10:30:00Z",
        }
    )

    assert wanted == QueueFilter(
        order="score",
        rule="velocity_burst",
        decision="REVIEW",
        min_score=0.25,
        max_score=1.0,
        since=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        until=datetime(2026, 11, 24, 10, 30, tzinfo=UTC),
    )


def test_times_without_a_zone_are_utc_and_others_are_converted() -> None:
    naive = parse_filter({"since": "2026-11-24T09:30"}).since
    offset = parse_filter({"since": "2026-11-24T11:30+02:00"}).since

    assert naive == offset == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    assert offset is not None and offset.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"order": "oldest"}, "order"),
        ({"decision": "APPROVE"}, "decision"),
        ({"rule": "<script>alert(1)</script>"}, "rule"),
        ({"rule": "-leading-dash"}, "rule"),
        ({"rule": "r" * 65}, "rule"),
        ({"min_score": "high"}, "min_score"),
        ({"max_score": "1.5"}, "max_score"),
        ({"min_score": "-0.1"}, "min_score"),
        ({"max_score": "nan"}, "max_score"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00"}, "until"),
    ],
)
def test_a_bad_field_is_refused_by_name(params: dict[str, str], field: str) -> None:
    with pytest.raises(ConsoleError, match=rf"^{field}: "):
        parse_filter(params)


def test_inverted_ranges_are_refused() -> None:
    with pytest.raises(ConsoleError, match="min_score is above max_score"):
        parse_filter({"min_score": "0.9", "max_score": "0.1"})
    with pytest.raises(ConsoleError, match="since is after until"):
        parse_filter({"since": "2026-11-24T10:00", "until": "2026-11-24T09:00"})


def test_equal_bounds_are_accepted() -> None:
    wanted = parse_filter({"min_score": "0.5", "max_score": "0.5"})

    assert wanted.min_score == wanted.max_score == 0.5


def test_query_string_keeps_only_filled_filter_fields() -> None:
    params = {"rule": "r1", "min_score": "", "page": "2", "csrf_token": "x", "order": "score"}

    assert query_string(params) == "order=score&rule=r1"
    assert query_string({}) == ""


def test_query_string_escapes_what_it_carries() -> None:
    assert query_string({"since": "2026-11-24T09:30+02:00"}) == "since=2026-11-24T09%3A30%2B02%3A00"


_moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


def _bounds(values: st.SearchStrategy[Any], text: Any) -> st.SearchStrategy[tuple[str, str]]:
    """A (low, high) pair in order, either side possibly left empty."""
    pair = st.lists(values, min_size=2, max_size=2).map(sorted)
    return st.tuples(pair, st.booleans(), st.booleans()).map(
        lambda p: ("" if p[1] else text(p[0][0]), "" if p[2] else text(p[0][1]))
    )


@given(
    order=st.sampled_from(["", "newest", "score"]),
    decision=st.sampled_from(["", "REVIEW", "BLOCK", "block"]),
    rule=st.one_of(
        st.just(""), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}", fullmatch=True)
    ),
    scores=_bounds(st.floats(0, 1).map(lambda v: round(v, 6)), repr),  # as typed in a form
    times=_bounds(_moments, datetime.isoformat),
)
def test_a_filter_survives_its_own_query_string(
    order: str,
    decision: str,
    rule: str,
    scores: tuple[str, str],
    times: tuple[str, str],
) -> None:
    params = {
        "order": order,
        "decision": decision,
        "rule": rule,
        "min_score": scores[0],
        "max_score": scores[1],
        "since": times[0],
        "until": times[1],
    }

    wanted = parse_filter(params)

    assert parse_filter(dict(parse_qsl(query_string(params)))) == wanted
    assert wanted.decision == (decision.upper() or None)
    assert wanted.rule == (rule or None)
