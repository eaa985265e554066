"""Shared simulated histories: simulating once per session keeps the suite fast."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from models.simulator import SimulatorConfig, simulate_history
from models.simulator._geography import COUNTRIES, COUNTRY_CURRENCY, COUNTRY_EUR_RATE

MID_CONFIG = SimulatorConfig(users=600, merchants=200, days=30, seed=11)

_EUR_PER_CURRENCY = {
    COUNTRY_CURRENCY[country]: rate
    for country, rate in zip(COUNTRIES, COUNTRY_EUR_RATE, strict=True)
}
_PAN_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


@pytest.fixture(scope="session")
def mid_history() -> pd.DataFrame:
    return simulate_history(MID_CONFIG)


def amount_in_euros(frame: pd.DataFrame) -> pd.Series:
    """Amounts converted back to euros with the simulator's own rates."""
    return frame["amount"].astype(float) / frame["currency"].map(_EUR_PER_CURRENCY)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def looks_like_pan(text: str) -> bool:
    """Same rule as the schema layer: 13-19 digits (maybe spaced or dashed), Luhn-valid."""
    for match in _PAN_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False
