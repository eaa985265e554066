"""The review console end to end, in a real headless browser (Debian's chromium).

``fraudstream feedback`` runs as an operator runs it and serves the console; the test
produces REVIEW/BLOCK decisions (and a user's earlier APPROVEs) onto ``decisions`` and
then works the queue the way an analyst does: signs in, reads the rows, watches a new
case arrive without reloading, opens a case with the keyboard, labels it with ``f``,
skips with ``n``, labels another with ``l``. It proves that each label is on ``labels``
(the verdict, the analyst's name, keyed by user_id) and that the case left the queue.
The screenshots of the queue and of a case are the README's (FRAUD_CONSOLE_SCREENSHOTS).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from schemas import Decision, Label, decode, encode
from streams.console import hash_password
from streams.settings import Settings
from tests.doubles import decision_payload, now_ms
from tests.integration._feedback import FeedbackProcess, FeedbackTopics
from tests.integration._scorer import free_port, produce, read_all, wait_until
from tests.integration.console._browser import (
    SUMMARIES_SEEN,
    api_json,
    browser_page,
    console_up,
    screenshot_dir,
)

pytestmark = pytest.mark.integration

STARTUP_S = 90
#: Bound on a decision (or a label) travelling through Kafka and the feedback service.
ARRIVAL_S = 30
PASSWORD = "correct horse battery staple"

#: The rules of operators/rules/default_rules.yaml the cases fire: reason code, action.
RULES = {
    "card_testing": ("CARD_TESTING", "BLOCK"),
    "impossible_travel": ("IMPOSSIBLE_TRAVEL", "REVIEW"),
    "velocity_burst_1m": ("VELOCITY_BURST", "REVIEW"),
    "merchant_hopping_1h": ("MERCHANT_HOPPING", "REVIEW"),
    "amount_far_above_history": ("AMOUNT_ANOMALY", "REVIEW"),
    "amount_spike_ratio": ("AMOUNT_SPIKE", "TAG"),
    "high_risk_merchant": ("HIGH_MERCHANT_RISK", "REVIEW"),
    "atm_high_amount_new_country": ("ATM_NEW_COUNTRY", "REVIEW"),
    "very_high_risk_merchant_new_customer": ("HIGH_MERCHANT_RISK", "BLOCK"),
}

#: An ordinary payment's features; each case changes the ones that made it suspicious.
USUAL: dict[str, float | None] = {
    "amount": 42.0,
    "user_count_1m": 1.0,
    "user_count_10m": 1.0,
    "user_count_1h": 1.0,
    "user_count_24h": 3.0,
    "user_amount_mean_30d": 48.5,
    "user_amount_zscore_30d": -0.2,
    "user_amount_ratio_30d": 0.9,
    "user_seconds_since_prev": 14_400.0,
    "user_distinct_merchants_1h": 1.0,
    "user_distinct_countries_24h": 1.0,
    "user_first_time_merchant": 0.0,
    "user_travel_kmh": 3.0,
    "is_night": 0.0,
    "merchant_count_1h": 12.0,
    "merchant_risk": 0.04,
}


class Cases:
    """The decisions of one run: ids carry a fresh tag, times are relative to now."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self._serial = 0

    def decision(
        self,
        user: str,
        merchant: str,
        amount: str,
        score: float,
        minutes_ago: float,
        *,
        kind: str = "REVIEW",
        rules: tuple[str, ...] = (),
        pushes: tuple[str, ...] = (),
        features: dict[str, float | None] | None = None,
    ) -> Decision:
        self._serial += 1
        decided = now_ms() - int(minutes_ago * 60_000)
        reasons = [RULES[rule][0] for rule in rules] + list(pushes)
        payload: dict[str, Any] = decision_payload(
            tx_id=f"tx-{self.tag}{self._serial:02d}",
            user_id=f"u-{user}-{self.tag[:4]}",
            merchant_id=f"{merchant}-{self.tag[:4]}",
            amount=amount,
            decision=kind,
            score=score,
            member_scores={"xgboost": min(1.0, score + 0.04), "logreg": max(0.0, score - 0.09)},
            model_version="ensemble-20240611",
            rules_fired=[
                {"id": rule, "reason": RULES[rule][0], "action": RULES[rule][1]} for rule in rules
            ],
            reasons=reasons,
            features={**USUAL, "amount": float(amount), **(features or {})},
            event_time=decided - 180,
            decided_at=decided,
            latency_ms=3.4 + self._serial % 5,
        )
        return Decision.model_validate(payload)


def _send(settings: Settings, topic: str, decisions: list[Decision]) -> None:
    produce(settings, topic, [(d.user_id.encode(), encode(d)) for d in decisions])


def _labels_of(settings: Settings, topic: str, tx_id: str) -> list[tuple[bytes | None, Label]]:
    found = []
    for record in read_all(settings, topic):
        label = decode(record.value, Label)
        if label.tx_id == tx_id:
            found.append((record.key, label))
    return found


def _row(page: Page, case: Decision) -> Any:
    return page.locator(f'#rows tr.case[data-tx-id="{case.tx_id}"]')


def _queue_ids(page: Page) -> list[str | None]:
    return [row.get_attribute("data-tx-id") for row in page.locator("#rows tr.case").all()]


def _press(page: Page, key: str) -> None:
    """Press ``key`` once the page's script listens (it runs before DOMContentLoaded)."""
    page.wait_for_load_state("domcontentloaded")
    page.keyboard.press(key)


def _case_url(base: str, case: Decision) -> re.Pattern[str]:
    return re.compile(re.escape(f"{base}/cases/{case.tx_id}") + r"(\?.*)?$")


@pytest.fixture
def console(
    feedback_topics: FeedbackTopics, tmp_path: Path
) -> Iterator[tuple[str, FeedbackProcess]]:
    """The feedback service with its console on a free port, an own queue, analyst alice."""
    port = free_port()
    env = {
        "FRAUD_CONSOLE_PORT": str(port),
        "FRAUD_CONSOLE_ANALYSTS": orjson.dumps({"alice": hash_password(PASSWORD)}).decode(),
        "FRAUD_CONSOLE_QUEUE_NAME": f"test-{uuid.uuid4().hex}",
    }
    with FeedbackProcess(feedback_topics, tmp_path / "state", env=env) as service:
        url = console_up(port, timeout_s=STARTUP_S, diagnose=service.log_tail)
        yield url, service


def test_an_analyst_works_the_queue_in_a_real_browser(
    servers: Settings,
    feedback_topics: FeedbackTopics,
    console: tuple[str, FeedbackProcess],
    tmp_path: Path,
) -> None:
    """Sign in, live queue, keyboard labelling; each label on ``labels`` and out of the queue.

    Checks: the 8 queued cases are listed newest first with their amount, merchant,
    score, rules and reasons; a 9th appears on the open page with no reload and the header
    says 9; ``f`` on a case puts exactly one Label (fraud, analyst_id alice, keyed by the
    user) on ``labels`` and the header says 8; ``n`` moves to the next case and ``l``
    labels it legit; the queue then lists the 7 others (the skipped one included), the
    header says 7 with 2 labels today, and the first case shows "fraud by alice".
    """
    started = time.monotonic()
    base, service = console
    cases = Cases()
    # Anna's card is used far from where she paid an hour ago, at a new merchant.
    history = [
        cases.decision("anna", "grocer-berlin", "23.40", 0.02, 2 * 1440, kind="APPROVE"),
        cases.decision("anna", "fuel-potsdam", "61.90", 0.03, 1440 + 300, kind="APPROVE"),
        cases.decision("anna", "pharmacy-berlin", "12.75", 0.01, 55, kind="APPROVE"),
    ]
    travel = cases.decision(
        "anna", "electronics-lisbon", "849.00", 0.81, 2, rules=("impossible_travel",),
        pushes=("HIGH:user_travel_kmh", "HIGH:amount", "HIGH:user_first_time_merchant"),
        features={"user_travel_kmh": 2260.0, "user_first_time_merchant": 1.0,
                  "user_amount_zscore_30d": 4.1, "user_amount_ratio_30d": 17.5,
                  "user_seconds_since_prev": 3300.0, "user_distinct_countries_24h": 2.0},
    )  # fmt: skip
    testing = cases.decision(
        "bruno", "giftcards-online", "1.99", 0.97, 5, kind="BLOCK", rules=("card_testing",),
        pushes=("HIGH:user_count_10m", "LOW:user_amount_mean_30d"),
        features={"user_count_10m": 7.0, "user_count_1h": 9.0, "user_first_time_merchant": 1.0,
                  "user_amount_mean_30d": 2.1, "user_seconds_since_prev": 21.0},
    )  # fmt: skip
    jewels = cases.decision(
        "chen", "jeweller-paris", "2450.00", 0.74, 9,
        rules=("amount_far_above_history", "amount_spike_ratio"),
        pushes=("HIGH:user_amount_zscore_30d", "HIGH:amount"),
        features={"user_amount_zscore_30d": 9.3, "user_amount_ratio_30d": 38.0},
    )  # fmt: skip
    burst = cases.decision(
        "dana", "food-delivery", "18.50", 0.63, 14, rules=("velocity_burst_1m",),
        pushes=("HIGH:user_count_1m",),
        features={"user_count_1m": 6.0, "user_count_10m": 6.0, "user_seconds_since_prev": 8.0},
    )  # fmt: skip
    crypto = cases.decision(
        "emil", "crypto-exchange", "1200.00", 0.92, 20, kind="BLOCK",
        rules=("very_high_risk_merchant_new_customer",),
        pushes=("HIGH:merchant_risk", "HIGH:amount"),
        features={"merchant_risk": 0.97, "user_first_time_merchant": 1.0},
    )  # fmt: skip
    model_only = cases.decision(
        "farah", "airline-tickets", "412.00", 0.58, 31,
        pushes=("HIGH:is_night", "HIGH:user_first_time_merchant"),
        features={"is_night": 1.0, "user_first_time_merchant": 1.0},
    )  # fmt: skip
    atm = cases.decision(
        "hana", "atm-malaga", "600.00", 0.66, 44, rules=("atm_high_amount_new_country",),
        pushes=("HIGH:user_distinct_countries_24h",),
        features={"user_distinct_countries_24h": 2.0, "user_travel_kmh": 180.0},
    )  # fmt: skip
    risky_shop = cases.decision(
        "ivan", "sneakers-outlet", "75.00", 0.55, 57, rules=("high_risk_merchant",),
        pushes=("HIGH:merchant_risk",), features={"merchant_risk": 0.86},
    )  # fmt: skip
    queued = [travel, testing, jewels, burst, crypto, model_only, atm, risky_shop]  # newest first
    _send(servers, feedback_topics.decisions, [*history, *queued])

    shots = screenshot_dir(tmp_path)
    with browser_page(base) as page:
        # Signing in: the queue redirects to the sign-in page and back.
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        expect(page).to_have_url(f"{base}/")
        expect(page.locator("#analyst")).to_have_text("alice")

        wait_until(lambda: api_json(page, "/api/summary")["queue_size"] == len(queued),
                   timeout_s=ARRIVAL_S, what=f"{len(queued)} cases in the console's queue",
                   poll_s=0.5, diagnose=service.log_tail)  # fmt: skip
        page.goto("/")
        expect(page.locator("#rows tr.case")).to_have_count(len(queued))
        assert _queue_ids(page) == [case.tx_id for case in queued]
        for case in queued:
            cells = _row(page, case).locator("td").all_inner_texts()
            assert cells[2] == format(case.amount, "f")
            assert cells[3] == case.merchant_id
            assert cells[4] == f"{case.score:.3f}"
            assert cells[5] == case.decision
            assert cells[6].split() == [hit.id for hit in case.rules_fired]
            assert cells[7] == ", ".join(case.reasons)
        expect(page.locator("#queue-size")).to_have_text(str(len(queued)))

        # Live: a new case appears on the open page, no reload (marker survives).
        page.wait_for_function(SUMMARIES_SEEN, timeout=ARRIVAL_S * 1000)
        page.evaluate("window.__sameDocument = true")
        hopping = cases.decision(
            "gina", "marketplace", "329.00", 0.69, 0, rules=("merchant_hopping_1h",),
            pushes=("HIGH:user_distinct_merchants_1h",),
            features={"user_distinct_merchants_1h": 7.0, "user_count_1h": 8.0},
        )  # fmt: skip
        _send(servers, feedback_topics.decisions, [hopping])
        expect(_row(page, hopping)).to_be_visible(timeout=ARRIVAL_S * 1000)
        expect(page.locator("#queue-size")).to_have_text(str(len(queued) + 1))
        assert page.evaluate("window.__sameDocument") is True, "the queue page reloaded"
        assert _queue_ids(page) == [hopping.tx_id] + [case.tx_id for case in queued]

        # The selection stayed on the first case through the refresh: Enter opens it.
        expect(page.locator("#rows tr.case.selected")).to_have_attribute("data-tx-id", travel.tx_id)
        _press(page, "Enter")
        expect(page).to_have_url(_case_url(base, travel))
        expect(page.locator("#tx-id")).to_have_text(travel.tx_id)
        expect(page.locator("#verdict")).to_have_text("not labelled yet")
        shown = page.locator("table.user-events td:first-child a").all_inner_texts()
        assert shown == [earlier.tx_id for earlier in reversed(history)]  # newest first
        pushed = page.locator("table.features tr.push.high td:first-child").all_inner_texts()
        assert pushed == ["user_travel_kmh", "amount", "user_first_time_merchant"]
        page.screenshot(path=shots / "console-case.png", full_page=True)

        # f: Fraud. The page goes on to the next case once Kafka acknowledged the label.
        _press(page, "f")
        expect(page).to_have_url(_case_url(base, testing))
        expect(page.locator("#queue-size")).to_have_text(str(len(queued)))
        # n: the next case, unlabelled; l: Legit.
        _press(page, "n")
        expect(page).to_have_url(_case_url(base, jewels))
        _press(page, "l")
        expect(page).to_have_url(_case_url(base, burst))

        for case, verdict in ((travel, "fraud"), (jewels, "legit")):
            given = wait_until(
                partial(_labels_of, servers, feedback_topics.labels, case.tx_id),
                timeout_s=ARRIVAL_S, what=f"the label of {case.tx_id} on labels",
            )  # fmt: skip
            assert len(given) == 1, given
            key, label = given[0]
            assert key == case.user_id.encode()
            assert (label.user_id, label.label, label.source, label.analyst_id) == (
                case.user_id, verdict, "analyst", "alice",
            )  # fmt: skip
        assert _labels_of(servers, feedback_topics.labels, testing.tx_id) == []

        # Both labelled cases left the queue; the skipped one is still there.
        page.goto("/")
        expected = [hopping, testing, burst, crypto, model_only, atm, risky_shop]
        expect(page.locator("#rows tr.case")).to_have_count(len(expected))
        assert _queue_ids(page) == [case.tx_id for case in expected]
        expect(page.locator("#queue-size")).to_have_text(str(len(expected)))
        expect(page.locator("#labels-today")).to_have_text("2")
        recent = page.locator("section.recent a").all_inner_texts()
        assert recent[:2] == [jewels.tx_id, travel.tx_id]
        page.screenshot(path=shots / "console-queue.png")
        page.goto(f"/cases/{travel.tx_id}")
        expect(page.locator("#verdict")).to_have_text(re.compile(r"^fraud\s+by alice$"))
    print(
        f"console browser test: {len(queued) + 1} cases, 2 labels (fraud, legit) by alice "
        f"on labels, {len(expected)} left in the queue, {time.monotonic() - started:.1f} s; "
        f"screenshots in {shots}"
    )
