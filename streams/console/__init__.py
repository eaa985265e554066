"""The analyst review console: a web page to work the review queue and label decisions.

The feedback service keeps the queue in Redis (:class:`ReviewStore`, fed by every
decision and label it reads) and serves this console (:func:`start_console`); a label
given here goes to ``labels`` exactly as ``fraudstream label`` sends it, with the
signed-in analyst's name.
"""

from __future__ import annotations

from streams.console._app import build_app
from streams.console._auth import Analysts, hash_password
from streams.console._labels import KafkaLabelSender, LabelSender
from streams.console._server import ConsoleServer
from streams.console._store import QueueFilter, ReviewStore, Summary
from streams.settings import Settings

__all__ = [
    "Analysts",
    "ConsoleServer",
    "KafkaLabelSender",
    "LabelSender",
    "QueueFilter",
    "ReviewStore",
    "Summary",
    "build_app",
    "hash_password",
    "review_store",
    "start_console",
]


def review_store(settings: Settings) -> ReviewStore:
    """The review store on the configured Redis (ACL user, TLS), with short timeouts."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from streams._redis_client import redis_client

    # No retries: a page (and the feedback loop's queue writes) fail at once when Redis
    # is down, instead of after redis-py's default retries of several seconds.
    client = redis_client(
        settings.redis_dsn,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )
    return ReviewStore(
        client, queue=settings.console_queue_name, case_ttl_s=settings.console_case_ttl_s
    )


def start_console(settings: Settings) -> ConsoleServer:
    """Build the console from ``settings`` and serve it; raise ConsoleError if it cannot."""
    secret = settings.console_secret
    app = build_app(
        review_store(settings),
        KafkaLabelSender(settings),
        Analysts(settings.console_analysts),
        secret=None if secret is None else secret.get_secret_value(),
        secure_cookies=settings.console_secure_cookies,
        session_hours=settings.console_session_hours,
    )
    server = ConsoleServer(app, settings.console_host, settings.console_port)
    server.start()
    return server
