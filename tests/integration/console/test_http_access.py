"""The review console over HTTP: who gets in, forged forms refused, security headers."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from streams.console import Analysts, KafkaLabelSender, build_app, hash_password
from tests.integration.console._http import (
    PASSWORDS,
    REFUSED,
    Console,
    csrf,
    sign_in,
    signed_in,
)

pytestmark = pytest.mark.integration


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/", "/"),
        ("/?order=score&rule=geo_jump", "/?order=score&rule=geo_jump"),
        ("/cases/tx-1", "/cases/tx-1"),
        ("/cases/tx-1/next?order=score", "/cases/tx-1/next?order=score"),
    ],
)
def test_pages_send_a_stranger_to_sign_in_and_back(
    console: Console, path: str, target: str
) -> None:
    client = console.client()

    response = client.get(path)

    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={quote(target, safe='')}"
    login = client.get(response.headers["location"])
    assert login.status_code == 200
    assert f'name="next" value="{target.replace("&", "&amp;")}"' in login.text
    assert sign_in(client, next=target).headers["location"] == target


@pytest.mark.parametrize("path", ["/queue/rows", "/api/summary", "/events", "/events?max_s=1"])
def test_fragments_api_and_events_refuse_a_stranger(console: Console, path: str) -> None:
    console.add(console.case(1))

    response = console.client().get(path)

    assert response.status_code == 401
    assert console.tx(1) not in response.text
    assert "queue_size" not in response.text


def test_a_stranger_cannot_label_even_with_a_valid_token(console: Console) -> None:
    console.add(console.case(1))
    client = console.client()
    token = csrf(client.get("/login").text)  # the sign-in page's own token

    response = client.post(
        f"/cases/{console.tx(1)}/label", data={"csrf_token": token, "verdict": "fraud"}
    )

    assert response.status_code == 401
    assert console.store.is_open(console.tx(1))
    assert console.store.history(console.tx(1)) == []
    assert console.labels() == []


def test_the_sign_in_page_and_the_script_are_public(console: Console) -> None:
    client = console.client()

    login = client.get("/login")
    script = client.get("/static/console.js")

    assert login.status_code == 200
    assert 'id="username"' in login.text
    assert 'id="analyst"' not in login.text  # no one is shown as signed in
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "EventSource" in script.text
    for escape in ("/static/..%2F_app.py", "/static/%2E%2E/_app.py", "/static/..%5C_app.py"):
        outside = client.get(escape)
        assert outside.status_code == 404, escape
        assert "build_app" not in outside.text
    assert client.get("/static/nothing.js").status_code == 404


# --- sign-in ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "password"), [("alice", "wrong-password"), ("mallory", "alice-correct-horse")]
)
def test_a_wrong_password_and_an_unknown_name_get_the_same_refusal(
    console: Console, name: str, password: str
) -> None:
    client = console.client()

    response = sign_in(client, name, password)

    assert response.status_code == 401
    assert f'<p class="error" id="error">{REFUSED}</p>' in response.text
    assert password not in response.text
    assert client.get("/").status_code == 303  # still a stranger


def test_the_right_password_opens_a_session_with_a_strict_cookie(console: Console) -> None:
    client = console.client()

    response = sign_in(client)
    cookie = response.headers["set-cookie"].lower()

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert cookie.startswith("fraudstream_console=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain HTTP on 127.0.0.1 by default
    assert "alice-correct-horse" not in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert '<span id="analyst">alice</span>' in page.text


def test_behind_tls_the_cookie_is_secure(
    console: Console, analysts: Analysts, sender: KafkaLabelSender
) -> None:
    app = build_app(console.store, sender, analysts, secure_cookies=True, session_hours=1)
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)

    cookie = sign_in(client).headers["set-cookie"].lower()

    assert "; secure" in cookie
    assert "max-age=3600" in cookie


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example/", "/\\evil.example", "evil.example"]
)
def test_sign_in_never_redirects_off_site(console: Console, target: str) -> None:
    client = console.client()
    page = client.get("/login", params={"next": target})

    response = sign_in(client, next=target)

    assert 'name="next" value="/"' in page.text
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_without_accounts_sign_in_says_what_to_configure(
    console: Console, sender: KafkaLabelSender
) -> None:
    client = TestClient(build_app(console.store, sender, Analysts({})), follow_redirects=False)

    response = sign_in(client, "alice", "anything")

    assert response.status_code == 401
    assert "FRAUD_CONSOLE_ANALYSTS" in response.text


def test_removing_an_account_ends_its_sessions(console: Console, sender: KafkaLabelSender) -> None:
    client, _ = signed_in(console)
    cookie = client.cookies.get("fraudstream_console")
    assert cookie
    # the same signing key, an analyst list without alice (a restart with her removed)
    without_alice = Analysts({"bob": SecretStr(hash_password(PASSWORDS["bob"]))})
    restarted = TestClient(
        build_app(console.store, sender, without_alice, secret="test-secret"),
        follow_redirects=False,
    )
    restarted.cookies.set("fraudstream_console", cookie)

    assert client.get("/").status_code == 200
    assert restarted.get("/").status_code == 303
    assert restarted.get("/api/summary").status_code == 401


def test_sign_in_renews_the_session_and_its_token(console: Console) -> None:
    client = console.client()
    before = csrf(client.get("/login").text)

    sign_in(client)
    after = csrf(client.get("/").text)

    assert after != before  # no session fixation: a token seen before sign-in is dead


def test_sign_out_ends_the_session(console: Console) -> None:
    client, token = signed_in(console)

    response = client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.get("/").status_code == 303
    assert client.get("/api/summary").status_code == 401


# --- cross-site request forgery -------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_sign_in_without_the_pages_token_is_refused(console: Console, token: str | None) -> None:
    client = console.client()
    client.get("/login")  # the session has a token; the form does not echo it
    data = {"username": "alice", "password": PASSWORDS["alice"]}
    if token is not None:
        data["csrf_token"] = token

    response = client.post("/login", data=data)

    assert response.status_code == 403
    assert "CSRF" in response.text
    assert client.get("/").status_code == 303


def test_sign_in_with_another_sessions_token_is_refused(console: Console) -> None:
    victim, attacker = console.client(), console.client()
    victim.get("/login")
    stolen = csrf(attacker.get("/login").text)

    response = victim.post(
        "/login", data={"csrf_token": stolen, "username": "alice", "password": PASSWORDS["alice"]}
    )

    assert response.status_code == 403
    assert victim.get("/").status_code == 303


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_sign_out_without_the_token_is_refused(console: Console, token: str | None) -> None:
    client, _ = signed_in(console)

    response = client.post("/logout", data={} if token is None else {"csrf_token": token})

    assert response.status_code == 403
    assert client.get("/").status_code == 200  # still signed in


@pytest.mark.parametrize("how", ["missing", "wrong", "another session", "before sign-in"])
def test_a_label_without_this_sessions_token_is_refused(console: Console, how: str) -> None:
    console.add(console.case(1))
    client = console.client()
    stale = csrf(client.get("/login").text)
    sign_in(client)
    _, bobs_token = signed_in(console, "bob")
    token = {
        "missing": None,
        "wrong": "forged-token",
        "another session": bobs_token,
        "before sign-in": stale,
    }[how]
    data = {"verdict": "fraud", "note": "forged"}
    if token is not None:
        data["csrf_token"] = token

    response = client.post(f"/cases/{console.tx(1)}/label", data=data)

    assert response.status_code == 403
    assert console.store.is_open(console.tx(1))
    assert console.store.history(console.tx(1)) == []
    assert console.store.summary().labels_today == 0
    assert console.labels() == []


# --- security headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/login", "/", "/queue/rows", "/api/summary", "/cases/tx-x", "/static/console.js"]
)
def test_every_response_carries_the_security_headers(console: Console, path: str) -> None:
    client, _ = signed_in(console)
    console.add(console.case(1, tx_id="tx-x"))

    headers = client.get(path).headers

    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"


def test_refusals_carry_the_security_headers_too(console: Console) -> None:
    client = console.client()

    for response in (client.get("/"), client.get("/api/summary"), client.post("/logout")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
