"""``fraudstream bench`` option parsing that needs no servers."""

from __future__ import annotations

import pytest
import typer

from streams.cli._bench import _start_rates


def test_start_rates_parse_per_system() -> None:
    assert _start_rates("passthrough=8000, quix=100") == {"passthrough": 8000.0, "quix": 100.0}
    assert _start_rates("") == {}


@pytest.mark.parametrize("text", ["quix", "quix=fast", "quix=0", "nobody=100"])
def test_bad_start_rates_are_refused_with_the_option_named(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        _start_rates(text)
