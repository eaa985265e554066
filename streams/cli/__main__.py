"""``python -m streams.cli``: the same entry point as ``fraudstream``."""

from streams.cli import app

app()
