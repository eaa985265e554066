"""Every window feature against the brute-force oracle, on random out-of-order streams."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.velocity import (
    MERCHANT_FEATURES,
    USER_FEATURES,
    MerchantVelocity,
    UserVelocity,
    VelocityEvent,
)
from tests.unit.operators.velocity import _oracle
from tests.unit.operators.velocity._streams import DENSE_GAPS, LATENESS, START, arrivals


@st.composite
def _streams(draw: st.DrawFn) -> tuple[int, list[VelocityEvent]]:
    lateness = draw(LATENESS)
    return lateness, draw(arrivals(lateness))


@settings(max_examples=1500, deadline=None)
@given(_streams())
def test_user_features_match_the_oracle(stream: tuple[int, list[VelocityEvent]]) -> None:
    lateness, events = stream
    states: dict[str, UserVelocity] = {}
    history: dict[str, list[VelocityEvent]] = defaultdict(list)
    for event in events:
        state = states.setdefault(event.user_id, UserVelocity(lateness))
        result = state.update(event)
        assert list(result.features) == list(USER_FEATURES)
        assert not result.late  # every delay is within the lateness
        want = _oracle.user_features(history[event.user_id], event)
        assert not _oracle.mismatches(result.features, want), (event, history[event.user_id])
        history[event.user_id].append(event)


@settings(max_examples=1500, deadline=None)
@given(_streams())
def test_merchant_features_match_the_oracle(stream: tuple[int, list[VelocityEvent]]) -> None:
    lateness, events = stream
    states: dict[str, MerchantVelocity] = {}
    history: dict[str, list[VelocityEvent]] = defaultdict(list)
    for event in events:
        state = states.setdefault(event.merchant_id, MerchantVelocity(lateness))
        result = state.update(event)
        assert list(result.features) == list(MERCHANT_FEATURES)
        assert not result.late
        want = _oracle.merchant_features(history[event.merchant_id], event)
        assert not _oracle.mismatches(result.features, want), (event, history[event.merchant_id])
        history[event.merchant_id].append(event)


@st.composite
def _busy_merchant(draw: st.DrawFn) -> tuple[int, list[VelocityEvent]]:
    # One merchant, many users, dense in time: exercises the head window's corrections.
    lateness = draw(st.sampled_from([5 * 60_000, 30 * 60_000, 2 * 3_600_000]))
    return lateness, draw(
        arrivals(lateness, min_size=20, max_size=60, users=6, merchants=1, gaps=DENSE_GAPS)
    )


@settings(max_examples=300, deadline=None)
@given(_busy_merchant())
def test_busy_merchant_matches_the_oracle(stream: tuple[int, list[VelocityEvent]]) -> None:
    lateness, events = stream
    state = MerchantVelocity(lateness)
    history: list[VelocityEvent] = []
    for event in events:
        want = _oracle.merchant_features(history, event)
        assert not _oracle.mismatches(state.update(event).features, want), event
        history.append(event)


@pytest.mark.parametrize("seed", range(12))
def test_uniformly_shuffled_busy_merchant_matches_the_oracle(seed: int) -> None:
    # Uniform delays reach the head-window corrections at both ends of the hour, which
    # hypothesis's boundary-heavy integers rarely do.
    rng = random.Random(seed)
    lateness = rng.choice([5 * 60_000, 20 * 60_000])
    t = START
    events = []
    for k in range(300):
        t += rng.randint(0, 300_000)
        user = f"u{rng.randint(1, 8)}"
        events.append(VelocityEvent(f"tx{k}", t, rng.randint(1, 10**6) / 100, "m1", user))
    order = sorted(events, key=lambda e: e.event_ms + rng.randint(0, lateness))
    state = MerchantVelocity(lateness)
    for position, event in enumerate(order):
        want = _oracle.merchant_features(order[:position], event)
        assert not _oracle.mismatches(state.update(event).features, want), event
