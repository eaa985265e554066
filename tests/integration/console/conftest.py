"""Fixtures of the console tests (re-exported from ``_http``, where they are written)."""

from tests.integration.console._http import analysts, console, labels_settings, sender, store

__all__ = ["analysts", "console", "labels_settings", "sender", "store"]
