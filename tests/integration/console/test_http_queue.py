"""The review console over HTTP: the queue, its filters, the header and the live events."""

from __future__ import annotations

import re

import orjson
import pytest

from tests.integration.console._http import (
    GEO,
    VELOCITY,
    Console,
    rows,
    signed_in,
)

pytestmark = pytest.mark.integration


# --- the queue ------------------------------------------------------------------------------


def test_a_row_shows_amount_merchant_time_score_decision_rules_and_reasons(
    console: Console,
) -> None:
    console.add(
        console.case(
            7,
            amount="1234.56",
            merchant_id="m-row-check",
            score=0.873,
            rules_fired=[VELOCITY, GEO],
            reasons=["HIGH:amount_zscore", "velocity_burst"],
        )
    )
    client, _ = signed_in(console)

    for html in (client.get("/").text, client.get("/queue/rows").text):
        row = html[html.index(f'data-tx-id="{console.tx(7)}"') :]
        row = row[: row.index("</tr>")]
        assert ">1234.56<" in row
        assert ">m-row-check<" in row
        assert "2026-11-24 12:07" in row
        assert ">0.873<" in row
        assert ">REVIEW<" in row
        assert '<span class="rule">velocity_burst</span>' in row
        assert '<span class="rule">geo_jump</span>' in row
        assert "HIGH:amount_zscore, velocity_burst" in row


def test_the_queue_newest_first_or_highest_score_first(console: Console) -> None:
    console.add(console.case(1, score=0.9), console.case(2, score=0.2), console.case(3, score=None))
    client, _ = signed_in(console)

    newest = rows(client.get("/").text)
    by_score = rows(client.get("/", params={"order": "score"}).text)
    fragment = rows(client.get("/queue/rows", params={"order": "score"}).text)

    assert newest == [console.tx(3), console.tx(2), console.tx(1)]
    assert by_score == fragment == [console.tx(1), console.tx(2), console.tx(3)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"rule": "geo_jump"}, [4, 1]),
        ({"decision": "BLOCK"}, [4]),
        ({"decision": "review"}, [3, 2, 1]),
        ({"min_score": "0.3"}, [4, 3]),
        ({"min_score": "0.2", "max_score": "0.3"}, [3, 2]),
        ({"order": "score", "max_score": "0.35"}, [3, 2, 1]),
        ({"since": "2026-11-24T12:02", "until": "2026-11-24T12:03"}, [3, 2]),
        ({"since": "2026-11-24T13:02+01:00"}, [4, 3, 2]),
        ({"rule": "geo_jump", "decision": "REVIEW", "min_score": "0.05"}, [1]),
        ({"rule": "no_such_rule"}, []),
    ],
)
def test_queue_filters(console: Console, params: dict[str, str], expected: list[int]) -> None:
    console.add(
        console.case(1, score=0.1, rules_fired=[VELOCITY, GEO]),
        console.case(2, score=0.2),
        console.case(3, score=0.3),
        console.case(4, score=0.4, decision="BLOCK", rules_fired=[GEO]),
    )
    client, _ = signed_in(console)

    page = client.get("/", params=params)
    fragment = client.get("/queue/rows", params=params)

    assert page.status_code == fragment.status_code == 200
    assert rows(page.text) == rows(fragment.text) == [console.tx(n) for n in expected]
    if not expected:
        assert "No open case matches" in page.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"order": "oldest"}, "order"),
        ({"decision": "APPROVE"}, "decision"),
        ({"rule": "bad rule!"}, "rule"),
        ({"min_score": "lots"}, "min_score"),
        ({"max_score": "2"}, "max_score"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-02-30T00:00"}, "until"),
        ({"min_score": "0.9", "max_score": "0.1"}, "min_score"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(
    console: Console, params: dict[str, str], field: str
) -> None:
    console.add(console.case(1))
    client, _ = signed_in(console)

    page = client.get("/", params=params)
    fragment = client.get("/queue/rows", params=params)

    assert page.status_code == fragment.status_code == 400
    error = re.search(r'<p class="error" id="error">([^<]*)</p>', page.text)
    assert error is not None
    assert error.group(1).startswith(field)
    assert fragment.text.startswith(field)
    assert rows(page.text) == [console.tx(1)]  # the unfiltered queue is still shown


def test_the_header_and_the_summary_api_show_the_figures(console: Console) -> None:
    console.add(console.case(1), console.case(2))
    console.store.publish_online_quality({"recent_precision": 0.8125, "labels": 64.0})
    client, token = signed_in(console)
    client.post(f"/cases/{console.tx(1)}/label", data={"csrf_token": token, "verdict": "legit"})

    page = client.get("/").text
    summary = client.get("/api/summary")

    assert '<b id="queue-size">1</b>' in page
    assert '<b id="labels-today">1</b>' in page
    assert '<b id="online-precision">0.812</b>' in page  # three decimals
    assert summary.headers["content-type"] == "application/json"
    assert summary.json() == {
        "queue_size": 1,
        "labels_today": 1,
        "online_precision": 0.8125,
        "online_labels": 64,
        "version": console.store.version(),
    }
    assert f'<a href="/cases/{console.tx(1)}">{console.tx(1)}</a>' in page  # recently labelled


def test_events_stream_the_summary(console: Console) -> None:
    console.add(console.case(1))
    console.store.publish_online_quality({"recent_precision": 0.5, "labels": 10.0})
    client, _ = signed_in(console)

    with client.stream("GET", "/events", params={"max_s": "1"}) as response:
        body = b"".join(response.iter_bytes()).decode()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert body.startswith("retry: 2000\n\n")
    events = [chunk for chunk in body.split("\n\n") if chunk.startswith("event: summary\n")]
    assert len(events) == 1  # one per change, and nothing changed
    data = orjson.loads(events[0].removeprefix("event: summary\ndata: "))
    assert data["queue_size"] == 1
    assert data["labels_today"] == 0
    assert data["online_precision"] == 0.5
    assert data == console.store.summary().to_json()


def test_events_refuse_a_bad_duration(console: Console) -> None:
    client, _ = signed_in(console)

    response = client.get("/events", params={"max_s": "forever"})

    assert response.status_code == 400
    assert response.text.startswith("max_s")
