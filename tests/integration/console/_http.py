"""The review console under test: a ``build_app`` per test on the real Redis and Kafka.

Each test gets a queue of its own in Redis and transaction ids of its own on a labels topic
shared by the module, and talks to the app through Starlette's TestClient with the cookie
jar of a browser (redirects are not followed, so every 303 is checked). The fixtures that
build it are in ``conftest.py``; the tests import the helpers from here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from schemas import Decision, Label, decode
from schemas._types import epoch_ms
from streams.console import Analysts, KafkaLabelSender, ReviewStore, build_app, hash_password
from streams.redis_store import keys
from streams.settings import Settings
from tests.doubles import decision_payload
from tests.integration._scorer import create_topics, delete_topics, read_all

PASSWORDS = {"alice": "alice-correct-horse", "bob": "bob-battery-staple"}
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
NOON = datetime(2026, 11, 24, 12, tzinfo=UTC)
VELOCITY = {"id": "velocity_burst", "reason": "5 tx in 1 min", "action": "REVIEW"}
GEO = {"id": "geo_jump", "reason": "800 km in 10 min", "action": "BLOCK"}
REFUSED = "unknown analyst or wrong password"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ROW = re.compile(r'<tr class="case" data-tx-id="([^"]+)"')
_FEATURE = re.compile(r'<tr class="([^"]*)"><td>([^<]+)</td><td class="num">')


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysts() -> Analysts:
    return Analysts({name: SecretStr(hash_password(pw)) for name, pw in PASSWORDS.items()})


@pytest.fixture(scope="module")
def labels_settings(servers: Settings) -> Iterator[Settings]:
    """The servers' settings pointed at a fresh labels topic (3 partitions), deleted after."""
    topic = f"test-console-labels-{uuid.uuid4().hex}"
    create_topics(servers, [topic], partitions=3)
    yield servers.model_copy(update={"topic_labels": topic})
    delete_topics(servers, [topic])


@pytest.fixture(scope="module")
def sender(labels_settings: Settings) -> KafkaLabelSender:
    return KafkaLabelSender(labels_settings)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[ReviewStore]:
    """A queue of its own (the ACL user cannot FLUSHDB), its keys deleted afterwards."""
    queue = uuid.uuid4().hex
    yield ReviewStore(redis_client, queue=queue)
    stale = list(redis_client.scan_iter(match=keys.review(f"{queue}:*"), count=1000))
    if stale:
        redis_client.delete(*stale)


def case_at(n: int, **fields: Any) -> Decision:
    """A REVIEW case made and decided ``n`` minutes after noon; ``fields`` fill the rest."""
    moment = epoch_ms(NOON + timedelta(minutes=n))
    payload: dict[str, Any] = {"decision": "REVIEW", "decided_at": moment, "event_time": moment}
    payload |= {"rules_fired": [VELOCITY], **fields}
    return Decision.model_validate(decision_payload(**payload))


@dataclass
class Console:
    """One test's console: its app, its Redis queue, its own transaction ids."""

    app: Starlette
    store: ReviewStore
    settings: Settings
    tag: str

    def client(self) -> TestClient:
        """A fresh browser: its own cookie jar, redirects returned rather than followed."""
        return TestClient(self.app, follow_redirects=False)

    def tx(self, n: int) -> str:
        return f"tx-{self.tag}-{n}"

    def case(self, n: int, **overrides: Any) -> Decision:
        """Case ``n``: decided ``n`` minutes after noon, scored ``n / 100``, user u-<tag>."""
        fields = {"tx_id": self.tx(n), "user_id": f"u-{self.tag}", "score": n / 100}
        return case_at(n, **(fields | overrides))

    def add(self, *cases: Decision, recent: tuple[Decision, ...] = ()) -> None:
        self.store.record_decisions(list(cases), [*cases, *recent], user_history=20)

    def labels(self) -> list[tuple[bytes | None, Label]]:
        """This test's labels on the labels topic (key, label), in partition/offset order."""
        found = []
        for record in read_all(self.settings, self.settings.topic_labels, timeout_s=30):
            label = decode(record.value, Label)
            if label.tx_id.startswith(f"tx-{self.tag}-"):
                found.append((record.key, label))
        return found


@pytest.fixture
def console(
    store: ReviewStore,
    analysts: Analysts,
    sender: KafkaLabelSender,
    labels_settings: Settings,
) -> Console:
    app = build_app(store, sender, analysts, secret="test-secret", sse_poll_s=0.05)
    return Console(app, store, labels_settings, uuid.uuid4().hex[:8])


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(
    client: TestClient, name: str = "alice", password: str | None = None, **form: str
) -> Any:
    """POST the sign-in form with the page's own token; the response (httpx's)."""
    token = csrf(client.get("/login").text)
    data = {"csrf_token": token, "username": name, "password": password or PASSWORDS[name]}
    return client.post("/login", data={**data, **form})


def signed_in(console: Console, name: str = "alice") -> tuple[TestClient, str]:
    """A client signed in as ``name`` and the CSRF token of its session."""
    client = console.client()
    assert sign_in(client, name).status_code == 303
    return client, csrf(client.get("/").text)


def rows(html: str) -> list[str]:
    return _ROW.findall(html)
