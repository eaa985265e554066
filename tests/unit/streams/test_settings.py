from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from streams.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("259200", timedelta(days=3)),
        ("P2D", timedelta(days=2)),
    ],
)
def test_retrain_label_delay_reads_the_forms_people_write(
    text: str, expected: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_RETRAIN_LABEL_DELAY", text)
    assert Settings().retrain_label_delay == expected


def test_a_bad_label_delay_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_RETRAIN_LABEL_DELAY", "7 parsecs")
    with pytest.raises(ValidationError):
        Settings()


def test_feedback_state_lives_under_the_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_STATE_DIR", "/srv/fraud")
    settings = Settings()
    assert str(settings.resolved_offline_store_dir) == "/srv/fraud/offline-store"
    assert str(settings.feedback_dir) == "/srv/fraud/feedback"
