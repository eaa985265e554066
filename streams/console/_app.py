"""The review console: an ASGI (Starlette) app over the review store and the labels topic.

Pages are rendered on the server with Jinja2, autoescaping every value (tx ids, rule
reasons and notes come from outside), and work without JavaScript; the one script adds
the keyboard shortcuts and the live refresh (server-sent events carry the header figures,
the page then fetches the rows fragment it already renders). Redis calls are blocking, so
the endpoints that make them are plain functions Starlette runs in its thread pool.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
import structlog
from jinja2 import Environment, FileSystemLoader
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas import contains_pan
from schemas._types import Identifier
from streams.console._auth import Analysts, csrf_token, valid_csrf
from streams.console._filters import filter_params, parse_filter, query_string
from streams.console._labels import LabelSender
from streams.console._store import QueueFilter, ReviewStore
from streams.console._views import case_context, jinja_filters
from streams.exceptions import ConsoleError, PublishError
from streams.labelling import LabelError, make_label

__all__ = ["build_app"]

_log = structlog.get_logger("fraudstream.console")
_HERE = Path(__file__).parent
_TX_ID: TypeAdapter[str] = TypeAdapter(Identifier)
_ANALYST = "analyst"

CONSOLE_LABELS = Counter(
    "fraud_console_labels", "Labels given in the review console, by verdict.", ["label"]
)
CONSOLE_SIGNINS = Counter(
    "fraud_console_signins", "Console sign-in attempts, by outcome.", ["outcome"]
)

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class _SecurityHeaders:
    """Adds a strict CSP and friends to every response (pure ASGI, streams untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers if scope["type"] == "http" else send)


def _safe_next(target: str | None) -> str:
    """A same-site path to go to after sign-in; anything else goes to the queue."""
    if (
        target
        and target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and not contains_pan(target)  # a URL a card number was typed into is not echoed
    ):
        return target
    return "/"


def _tx_id(request: Request) -> str:
    try:
        return _TX_ID.validate_python(request.path_params["tx_id"])
    except ValidationError:
        raise ConsoleError("not a transaction id") from None


class _Console:
    """The endpoints, sharing the store, the label sender and the templates."""

    def __init__(
        self, store: ReviewStore, labels: LabelSender, analysts: Analysts, sse_poll_s: float
    ) -> None:
        self.store = store
        self.labels = labels
        self.analysts = analysts
        self.sse_poll_s = sse_poll_s
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"), autoescape=True, auto_reload=False
        )
        self.templates.filters.update(jinja_filters())

    # --- helpers -------------------------------------------------------------------------

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        analyst = self.signed_in(request)
        if analyst is not None and "summary" not in context and not name.startswith("_"):
            context["summary"] = self.store.summary()
        html = self.templates.get_template(name).render(
            analyst=analyst, csrf=csrf_token(request.session), **context
        )
        return HTMLResponse(html, status_code=status)

    def signed_in(self, request: Request) -> str | None:
        """The session's analyst, while the account still exists (removing it signs out)."""
        name = request.session.get(_ANALYST)
        return name if isinstance(name, str) and name in self.analysts else None

    def to_sign_in(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(_safe_next(target), safe='')}", 303)

    # --- sign-in -------------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        return self.page(
            request, "login.html", next=_safe_next(request.query_params.get("next")), error=None
        )

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not valid_csrf(request.session, form.get("csrf_token")):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "/")))
        ok = await run_in_threadpool(self.analysts.verify, name, password)
        CONSOLE_SIGNINS.labels(outcome="ok" if ok else "refused").inc()
        if not ok:
            _log.warning("sign-in refused", step="console-login")
            error = (
                "unknown analyst or wrong password"
                if self.analysts
                else "no analyst accounts are configured (FRAUD_CONSOLE_ANALYSTS)"
            )
            return self.page(request, "login.html", status=401, next=target, error=error)
        request.session.clear()  # a new session: no fixation, a fresh CSRF token
        request.session[_ANALYST] = name
        _log.info("analyst signed in", step="console-login", analyst=name)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not valid_csrf(request.session, form.get("csrf_token")):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # --- the queue ------------------------------------------------------------------------

    def queue(self, request: Request) -> Response:
        if self.signed_in(request) is None:
            return self.to_sign_in(request)
        params = dict(request.query_params)
        try:
            wanted, error = parse_filter(params), None
        except ConsoleError as exc:
            wanted, error = QueueFilter(), str(exc)
        summary = self.store.summary()  # before the rows: a case added between is not missed
        return self.page(
            request,
            "queue.html",
            status=400 if error else 200,
            summary=summary,
            cases=self.store.open_cases(wanted),
            recent=self.store.recently_labelled(10),
            filters=filter_params(params),  # never echo a card number
            qs=query_string(params),
            error=error,
        )

    def rows(self, request: Request) -> Response:
        if self.signed_in(request) is None:
            return PlainTextResponse("sign in first", 401)
        params = dict(request.query_params)
        wanted = parse_filter(params)
        return self.page(
            request, "_rows.html", cases=self.store.open_cases(wanted), qs=query_string(params)
        )

    def summary(self, request: Request) -> Response:
        if self.signed_in(request) is None:
            return JSONResponse({"error": "sign in first"}, 401)
        return JSONResponse(self.store.summary().to_json())

    async def events(self, request: Request) -> Response:
        if self.signed_in(request) is None:
            return PlainTextResponse("sign in first", 401)
        try:
            duration = min(max(float(request.query_params.get("max_s", "60")), 1.0), 300.0)
        except ValueError:
            raise ConsoleError("max_s: not a number of seconds") from None
        return StreamingResponse(self._summaries(request, duration), media_type="text/event-stream")

    async def _summaries(self, request: Request, duration: float) -> AsyncIterator[bytes]:
        """The header figures each time they change; ends after ``duration`` seconds.

        The browser reconnects by itself (``retry``), so a connection never outlives a
        sign-out by long, and idle proxies see traffic.
        """
        yield b"retry: 2000\n\n"
        last: dict[str, Any] | None = None
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not await request.is_disconnected():
            try:
                current = (await run_in_threadpool(self.store.summary)).to_json()
            except RedisError:
                current = {"error": "Redis unavailable"}
            if current != last:
                yield b"event: summary\ndata: " + orjson.dumps(current) + b"\n\n"
                last = current
            await asyncio.sleep(self.sse_poll_s)

    # --- a case ---------------------------------------------------------------------------

    def case(self, request: Request) -> Response:
        if self.signed_in(request) is None:
            return self.to_sign_in(request)
        tx_id = _tx_id(request)
        found = self.store.case(tx_id)
        if found is None:
            return self.page(request, "missing.html", status=404, qs=_qs(request))
        return self.page(
            request,
            "case.html",
            qs=_qs(request),
            error=None,
            **case_context(self.store, found),
        )

    def next_case(self, request: Request) -> Response:
        """The case after this one in the queue's order (the ``n`` key), or the queue."""
        if self.signed_in(request) is None:
            return self.to_sign_in(request)
        return self._go_next(_tx_id(request), _qs(request))

    def _go_next(self, tx_id: str, qs: str) -> Response:
        following = self.store.next_open(parse_filter(dict(parse_qsl(qs))), after=tx_id)
        suffix = f"?{qs}" if qs else ""
        target = f"/cases/{quote(following, safe='')}{suffix}" if following else f"/{suffix}"
        return RedirectResponse(target, status_code=303)

    async def label(self, request: Request) -> Response:
        analyst = self.signed_in(request)
        if analyst is None:
            return PlainTextResponse("sign in first", 401)
        form = await request.form()
        if not valid_csrf(request.session, form.get("csrf_token")):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        tx_id = _tx_id(request)
        qs = query_string(dict(parse_qsl(str(form.get("qs", "")))))
        return await run_in_threadpool(
            self._give_label, request, tx_id, analyst, form.get("verdict"), form.get("note"), qs
        )

    def _give_label(
        self, request: Request, tx_id: str, analyst: str, verdict: object, note: object, qs: str
    ) -> Response:
        found = self.store.case(tx_id)
        if found is None:
            return self.page(request, "missing.html", status=404, qs=qs)
        text = note.strip() if isinstance(note, str) else ""
        try:
            if verdict not in ("fraud", "legit"):
                raise LabelError("choose Fraud or Legit")
            label = make_label(
                tx_id,
                found.user_id,
                str(verdict),
                analyst_id=analyst,
                note=text or None,
                labeled_at=datetime.now(UTC),
            )
            self.labels.send(label)
        except (LabelError, PublishError) as exc:
            # The note is not echoed back: it may be what was refused (a card number).
            return self.page(
                request,
                "case.html",
                status=503 if isinstance(exc, PublishError) else 400,
                qs=qs,
                error=str(exc),
                **case_context(self.store, found),
            )
        following = self._go_next(tx_id, qs)  # while the case still holds its place
        # Recorded here as well as by the feedback service (idempotent): the case leaves
        # the queue the moment the broker has the label.
        self.store.record_labels([label])
        CONSOLE_LABELS.labels(label=label.label).inc()
        _log.info("label given", step="console-label", analyst=analyst, label=label.label)
        return following


def _qs(request: Request) -> str:
    return query_string(dict(request.query_params))


def _handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    async def bad_request(_request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), 400)

    async def redis_down(_request: Request, exc: Exception) -> Response:
        _log.warning("console: Redis unavailable", step="console", error=type(exc).__name__)
        return PlainTextResponse("Redis is unavailable: the queue cannot be read; retry", 503)

    return {ConsoleError: bad_request, RedisError: redis_down}


def build_app(
    store: ReviewStore,
    labels: LabelSender,
    analysts: Analysts,
    *,
    secret: str | None = None,
    secure_cookies: bool = False,
    session_hours: float = 8.0,
    sse_poll_s: float = 1.0,
) -> Starlette:
    """The console as an ASGI app; ``secret`` signs session cookies (None: a random one)."""
    console = _Console(store, labels, analysts, sse_poll_s)
    routes = [
        Route("/", console.queue, name="queue"),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/queue/rows", console.rows),
        Route("/api/summary", console.summary),
        Route("/events", console.events),
        Route("/cases/{tx_id:str}", console.case),
        Route("/cases/{tx_id:str}/next", console.next_case),
        Route("/cases/{tx_id:str}/label", console.label, methods=["POST"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=secret or secrets.token_urlsafe(32),
            session_cookie="fraudstream_console",
            max_age=int(session_hours * 3600),
            same_site="strict",
            https_only=secure_cookies,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=_handlers())
