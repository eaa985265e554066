"""The review console over HTTP: a case, labelling it, card numbers and escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import redis
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.testclient import TestClient

from schemas import Label
from streams.console import Analysts, KafkaLabelSender, ReviewStore, build_app
from streams.exceptions import PublishError
from tests.doubles import TEST_PAN
from tests.integration._scorer import free_port
from tests.integration.console._http import (
    _FEATURE,
    ESCAPED,
    SCRIPT,
    Console,
    csrf,
    rows,
    sign_in,
    signed_in,
)

pytestmark = pytest.mark.integration


# --- a case ---------------------------------------------------------------------------------


def test_the_case_view_highlights_the_features_in_the_reasons(console: Console) -> None:
    features = {"amount_zscore": 4.2, "distance_km": 0.0, "hour": 3.0, "user_tx_count_1h": 1.0}
    console.add(
        console.case(
            1,
            features=features,
            reasons=["velocity_burst", "HIGH:amount_zscore", "LOW:distance_km"],
            member_scores={"xgboost": 0.91, "logreg": 0.74},
        )
    )
    client, _ = signed_in(console)

    page = client.get(f"/cases/{console.tx(1)}")

    assert page.status_code == 200
    assert _FEATURE.findall(page.text) == [
        ("push high", "amount_zscore"),
        ("push low", "distance_km"),
        ("", "hour"),
        ("", "user_tx_count_1h"),
    ]
    assert "▲ pushed up" in page.text
    assert "▼ pushed down" in page.text
    assert f'<span id="tx-id">{console.tx(1)}</span>' in page.text
    assert '<dt class="member">xgboost</dt><dd>0.910</dd>' in page.text
    assert '<p id="verdict">not labelled yet</p>' in page.text


def test_the_case_view_lists_the_users_recent_decisions(console: Console) -> None:
    mine = [console.case(n, decision="APPROVE", amount=f"{n}.50") for n in (2, 3)]
    stranger = console.case(4, user_id="u-someone-else")
    console.add(console.case(1), recent=(*mine, stranger))
    client, _ = signed_in(console)

    html = client.get(f"/cases/{console.tx(1)}").text
    table = html[html.index('class="user-events"') :]

    listed = re.findall(r'<tr><td><a href="/cases/([^"]+)">', table)
    assert listed == [console.tx(3), console.tx(2)]  # newest first, not the case itself
    assert "3.50" in table
    assert "APPROVE" in table


def test_an_unknown_case_is_a_404_and_a_bad_id_a_400(console: Console) -> None:
    client, token = signed_in(console)

    missing = client.get("/cases/tx-never-queued")
    bad = client.get(f"/cases/{quote('<b>bold', safe='')}")
    label = client.post(
        "/cases/tx-never-queued/label", data={"csrf_token": token, "verdict": "fraud"}
    )

    assert missing.status_code == 404
    assert "This case is not known" in missing.text
    assert bad.status_code == 400
    assert bad.text == "not a transaction id"
    assert label.status_code == 404
    assert console.labels() == []


def test_next_goes_to_the_following_case_then_back_to_the_queue(console: Console) -> None:
    console.add(console.case(1, score=0.9), console.case(2, score=0.1), console.case(3, score=0.5))
    client, _ = signed_in(console)

    def after(n: int, qs: str = "") -> str:
        response = client.get(f"/cases/{console.tx(n)}/next{qs}")
        assert response.status_code == 303
        return str(response.headers["location"])

    assert after(3) == f"/cases/{console.tx(2)}"
    assert after(1) == "/"
    assert after(1, "?order=score") == f"/cases/{console.tx(3)}?order=score"
    assert after(2, "?order=score") == "/?order=score"
    assert after(9) == f"/cases/{console.tx(3)}"  # not in the queue: its head


# --- labelling ------------------------------------------------------------------------------


def test_a_label_goes_to_the_labels_topic_with_the_analysts_name(console: Console) -> None:
    console.add(console.case(1), console.case(2), console.case(3))
    client, token = signed_in(console)

    response = client.post(
        f"/cases/{console.tx(2)}/label",
        data={"csrf_token": token, "verdict": "fraud", "note": "  account takeover  "},
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{console.tx(1)}"  # the next case
    ((key, label),) = console.labels()
    assert key == f"u-{console.tag}".encode()
    assert (label.tx_id, label.user_id) == (console.tx(2), f"u-{console.tag}")
    assert (label.label, label.source, label.analyst_id) == ("fraud", "analyst", "alice")
    assert label.note == "account takeover"
    assert abs(label.labeled_at - datetime.now(UTC)) < timedelta(minutes=5)
    # The case left the queue at once, and its page says who labelled it.
    assert not console.store.is_open(console.tx(2))
    assert rows(client.get("/").text) == [console.tx(3), console.tx(1)]
    case = client.get(f"/cases/{console.tx(2)}").text
    assert '<span class="closed">labelled</span>' in case
    assert "fraud\n    by alice" in case
    assert "<q>account takeover</q>" in case


def test_labelling_keeps_the_filters_and_ends_on_the_queue(console: Console) -> None:
    console.add(console.case(1, score=0.9), console.case(2, score=0.5), console.case(3, score=0.1))
    client, token = signed_in(console)
    qs = "order=score&min_score=0.4"

    def label(n: int) -> str:
        response = client.post(
            f"/cases/{console.tx(n)}/label",
            data={"csrf_token": token, "verdict": "legit", "qs": qs},
        )
        assert response.status_code == 303
        return str(response.headers["location"])

    assert label(1) == f"/cases/{console.tx(2)}?{qs}"
    assert label(2) == f"/?{qs}"
    assert [label.tx_id for _, label in console.labels()] == [console.tx(1), console.tx(2)]
    assert rows(client.get("/").text) == [console.tx(3)]


def test_a_second_verdict_replaces_the_first_and_the_history_says_who_changed_it(
    console: Console,
) -> None:
    console.add(console.case(1))
    alice, alices_token = signed_in(console, "alice")
    bob, bobs_token = signed_in(console, "bob")

    first = alice.post(
        f"/cases/{console.tx(1)}/label", data={"csrf_token": alices_token, "verdict": "fraud"}
    )
    page = bob.get(f"/cases/{console.tx(1)}").text
    second = bob.post(
        f"/cases/{console.tx(1)}/label",
        data={"csrf_token": csrf(page), "verdict": "legit", "note": "customer confirmed"},
    )

    assert first.status_code == second.status_code == 303
    assert bobs_token == csrf(page)
    sent = [(label.analyst_id, label.label) for _, label in console.labels()]
    assert sent == [("alice", "fraud"), ("bob", "legit")]
    case = alice.get(f"/cases/{console.tx(1)}").text
    verdict = re.search(r'<p id="verdict" class="verdict (\w+)">(\w+)\s+by (\w+)</p>', case)
    assert verdict is not None
    assert verdict.groups() == ("legit", "legit", "bob")
    history = case[case.index('<ol class="history"') : case.index("</ol>")]
    assert history.count("<li>") == 2
    assert "<b>alice</b>\n      said <b>fraud</b>" in history
    assert "<b>bob</b>\n      changed it from fraud to <b>legit</b>" in history
    assert "<q>customer confirmed</q>" in history
    assert console.store.summary().labels_today == 1  # one transaction labelled


def test_a_verdict_must_be_fraud_or_legit(console: Console) -> None:
    console.add(console.case(1))
    client, token = signed_in(console)

    for verdict in (None, "maybe", "FRAUD!", "1"):
        data = (
            {"csrf_token": token} if verdict is None else {"csrf_token": token, "verdict": verdict}
        )
        response = client.post(f"/cases/{console.tx(1)}/label", data=data)
        assert response.status_code == 400, verdict
        assert '<p class="error" id="error">' in response.text

    assert console.store.is_open(console.tx(1))
    assert console.labels() == []


@pytest.mark.parametrize(
    "note", [f"card {TEST_PAN} used twice", "card 4111 1111 1111 1111 used twice"]
)
def test_a_note_holding_a_card_number_is_refused_and_never_echoed(
    console: Console, note: str
) -> None:
    console.add(console.case(1), console.case(2))
    client, token = signed_in(console)

    response = client.post(
        f"/cases/{console.tx(1)}/label",
        data={"csrf_token": token, "verdict": "fraud", "note": note, "qs": "order=score"},
    )

    assert response.status_code == 400
    assert "card number" in response.text
    digits = re.sub(r"\D", "", response.text)
    assert TEST_PAN not in digits
    assert "4111 1111" not in response.text
    assert "location" not in response.headers
    assert all(TEST_PAN not in value.replace(" ", "") for value in response.headers.values())
    assert TEST_PAN not in str(response.url)
    assert 'name="note" id="note" rows="2" maxlength="1000"></textarea>' in response.text
    assert console.labels() == []
    assert console.store.is_open(console.tx(1))
    assert console.store.history(console.tx(1)) == []


@pytest.mark.parametrize("field", ["rule", "since", "min_score", "order"])
def test_a_card_number_typed_into_a_url_is_never_echoed(console: Console, field: str) -> None:
    console.add(console.case(1))
    client, _ = signed_in(console)
    params = {field: TEST_PAN}

    queue = client.get("/", params=params)
    responses = [
        queue,
        client.get("/queue/rows", params=params),
        client.get(f"/cases/{console.tx(1)}", params=params),
        client.get("/login", params={"next": f"/?{field}={TEST_PAN}"}),
        console.client().get("/", params=params),  # a stranger sent to sign in
    ]

    for response in responses:
        assert TEST_PAN not in response.text, response.url
        assert TEST_PAN not in response.headers.get("location", ""), response.url
    assert queue.status_code == 400
    assert f'<p class="error" id="error">{field}: ' in queue.text


def test_a_label_the_broker_does_not_acknowledge_is_a_503_and_the_case_stays(
    console: Console, analysts: Analysts
) -> None:
    class _DownSender:
        def send(self, label: Label) -> None:
            raise PublishError("the label was not acknowledged by Kafka (timed out); try again")

    console.add(console.case(1))
    app = build_app(console.store, _DownSender(), analysts)
    client = TestClient(app, follow_redirects=False)
    sign_in(client)

    response = client.post(
        f"/cases/{console.tx(1)}/label",
        data={"csrf_token": csrf(client.get("/").text), "verdict": "fraud"},
    )

    assert response.status_code == 503
    assert "not acknowledged by Kafka" in response.text
    assert console.store.is_open(console.tx(1))
    assert console.store.summary().labels_today == 0


def test_redis_down_is_a_503_not_a_crash(
    console: Console, analysts: Analysts, sender: KafkaLabelSender
) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    client = TestClient(
        build_app(ReviewStore(dead), sender, analysts, sse_poll_s=0.05), follow_redirects=False
    )
    assert sign_in(client).status_code == 303

    page = client.get("/")
    with client.stream("GET", "/events", params={"max_s": "1"}) as events:
        body = b"".join(events.iter_bytes()).decode()

    assert page.status_code == 503
    assert "Redis is unavailable" in page.text
    assert client.get("/api/summary").status_code == 503
    assert 'data: {"error":"Redis unavailable"}' in body


# --- escaping -------------------------------------------------------------------------------


def test_identifiers_cannot_carry_markup(console: Console) -> None:
    for field in ("tx_id", "user_id", "merchant_id"):
        with pytest.raises(ValidationError):
            console.case(1, **{field: SCRIPT})
    with pytest.raises(ValidationError):
        console.case(1, rules_fired=[{"id": SCRIPT, "reason": "r", "action": "REVIEW"}])


def test_user_text_is_escaped_on_every_page(console: Console) -> None:
    hostile = console.case(
        1,
        reasons=[SCRIPT, "HIGH:amount"],
        rules_fired=[{"id": "velocity_burst", "reason": SCRIPT, "action": "REVIEW"}],
        model_version=SCRIPT,
        degraded=True,
        degraded_cause=SCRIPT,
        member_scores={SCRIPT: 0.5},
        features={SCRIPT: 1.0, "amount": 2.0},
    )
    console.add(hostile, console.case(2))
    client, token = signed_in(console)
    labelled = client.post(
        f"/cases/{console.tx(2)}/label",
        data={"csrf_token": token, "verdict": "fraud", "note": SCRIPT},
    )
    assert labelled.status_code == 303

    pages = {
        "queue": client.get("/"),
        "rows": client.get("/queue/rows"),
        "case": client.get(f"/cases/{console.tx(1)}"),
        "labelled case": client.get(f"/cases/{console.tx(2)}"),
        "bad filter": client.get("/", params={"rule": f'"><{SCRIPT}', "since": SCRIPT}),
        "sign-in": console.client().get("/login", params={"next": f"/{SCRIPT}"}),
    }

    for name, response in pages.items():
        assert SCRIPT not in response.text, name
        assert "<script>alert" not in response.text, name
    for name, response in pages.items():
        assert ESCAPED in response.text, name
    assert [label.note for _, label in console.labels()] == [SCRIPT]  # kept as written
