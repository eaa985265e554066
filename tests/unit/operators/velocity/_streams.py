"""Hypothesis strategies: event streams over a few users and merchants, out of order.

Event times mix bursts (same millisecond, seconds apart), exact window boundaries and
gaps of days to weeks, so every window edge and bucket boundary gets exercised. The
arrival order sorts by event time + a random delay of at most the lateness, so no event
is ever later than the lateness for its user or merchant.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from operators.velocity import VelocityEvent

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z

LATENESS = st.sampled_from([0, MINUTE, 5 * MINUTE, 2 * HOUR, 2 * DAY])

_GAPS = st.one_of(
    st.just(0),
    st.integers(1, 59_999),
    st.sampled_from([MINUTE, 10 * MINUTE, HOUR, 7 * HOUR, DAY, 30 * HOUR, 7 * DAY, 30 * DAY]),
    st.integers(MINUTE, 2 * HOUR),
    st.integers(2 * HOUR, 3 * DAY),
    st.integers(3 * DAY, 35 * DAY),
)
# Few distinct amounts (so a std of exactly 0 happens), zero, and the full range.
_UNITS = st.one_of(
    st.sampled_from([125_000, 125_000, 990_000, 0]),
    st.integers(0, 10_000_000),
    st.integers(0, 10_000_000_000),
)
_LOCATION = st.one_of(
    st.none(),
    st.tuples(st.floats(-60, 60), st.floats(-170, 170)),
    st.tuples(st.floats(-60, 60), st.none()),
)


#: Gaps for a busy key: many events within an hour.
DENSE_GAPS = st.one_of(st.just(0), st.integers(1, 5 * MINUTE), st.sampled_from([HOUR]))


@st.composite
def events_in_time_order(
    draw: st.DrawFn,
    min_size: int = 1,
    max_size: int = 45,
    users: int = 2,
    merchants: int = 3,
    gaps: st.SearchStrategy[int] = _GAPS,
) -> list[VelocityEvent]:
    """Events sorted by time, with unique tx ids."""
    size = draw(st.integers(min_size, max_size))
    t = START + draw(st.integers(0, DAY))
    events = []
    for k in range(size):
        t += draw(gaps)
        where = draw(_LOCATION)
        lat, lon = (None, None) if where is None else where
        events.append(
            VelocityEvent(
                tx_id=f"tx{k}",
                event_ms=t,
                amount=draw(_UNITS) / 10_000,
                merchant_id=f"m{draw(st.integers(1, merchants))}",
                user_id=f"u{draw(st.integers(1, users))}",
                country=draw(st.sampled_from([None, "FR", "DE", "US"])),
                lat=lat,
                lon=lon,
            )
        )
    return events


@st.composite
def arrivals(
    draw: st.DrawFn, /, lateness: int, **shape: int | st.SearchStrategy[int]
) -> list[VelocityEvent]:
    """Events in an arrival order that is out of order by at most ``lateness``."""
    events = draw(events_in_time_order(**shape))  # type: ignore[arg-type]
    delays = draw(st.lists(st.integers(0, lateness), min_size=len(events), max_size=len(events)))
    order = sorted(range(len(events)), key=lambda k: (events[k].event_ms + delays[k], k))
    return [events[k] for k in order]


def shifted(event: VelocityEvent, delta_ms: int) -> VelocityEvent:
    """The same event at another time (for hand-written scenarios)."""
    return replace(event, event_ms=event.event_ms + delta_ms)
