"""The end-to-end demo: every part of the system on local servers, started and stopped here.

Stages, each visible: servers, topics, a simulated history and a first model trained on
it, the scorer and the feedback service, live synthetic traffic with fraud (plus a few
poison records, to show the DLQ), decisions arriving, a simulated analyst labelling part
of the REVIEW/BLOCK queue and chargebacks for missed fraud, the metrics view
(``fraudstream metrics tail``) at the end, and a summary written to
``<state_dir>/demo-summary.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.rule import Rule

from models._fs import private_dir
from schemas import Decision, SchemaValidationError, decode
from streams.analyst import SimulatedAnalyst
from streams.cli._common import console
from streams.consuming import end_offsets, read_topic
from streams.exceptions import InfraError
from streams.infra import infra_down, infra_status, infra_up
from streams.monitoring import MetricsView, ViewRecorder, discover, render, snapshot
from streams.producing import RecordProducer
from streams.settings import Settings
from streams.topics import create_topics

__all__ = ["DemoSummary", "run_demo"]

_STYLE = {"APPROVE": "green", "REVIEW": "yellow", "BLOCK": "bold red"}
_POISON = (
    b"{not json",
    b'{"tx_id": "bad-1", "user_id": "u1", "merchant_id": "m1", "amount": 12.5, '
    b'"event_time": "2026-01-01T00:00:00Z"}',
    b'{"tx_id": "bad-2", "user_id": "4111 1111 1111 1111", "merchant_id": "m1", '
    b'"amount": "1.00", "event_time": "2026-01-01T00:00:00Z"}',
)


def _fraudstream() -> str:
    return str(Path(sys.executable).with_name("fraudstream"))


@contextlib.contextmanager
def _local_servers(settings: Settings, keep: bool) -> Iterator[None]:
    """Start what is not running; on exit stop only what this demo started."""
    before = {status.name: status.running for status in infra_status(settings)}
    for status in infra_up(settings, on_progress=lambda msg: console.print(f"  {msg}")):
        console.print(f"  [green]✔[/] {status.name} at {status.address} ({status.version})")
    try:
        yield
    finally:
        if keep or all(before.values()):
            console.print("servers left running (`fraudstream infra down` stops them)")
        elif not any(before.values()):
            infra_down(settings)
            console.print("servers stopped")
        else:
            console.print("servers were partly running before the demo; left running")


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is interrupted (then killed) when the block ends."""
    with log.open("wb") as sink:
        child = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _wait_ready(
    port: int, child: subprocess.Popen[bytes], timeout_s: float = 60, name: str = "scorer"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise InfraError(f"the {name} exited with code {child.returncode}; see its log")
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as reply:
            if reply.status == 200:
                return
        time.sleep(0.3)
    raise InfraError(f"the {name} did not become ready in time; see its log")


class DemoSummary:
    """What the demo saw: counts by outcome and the latency distribution."""

    def __init__(self) -> None:
        self.decisions: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.degraded = 0
        self.seen: set[str] = set()

    def add(self, decision: Decision) -> bool:
        """Count a decision once per tx_id; False for a re-emitted duplicate."""
        if decision.tx_id in self.seen:
            return False
        self.seen.add(decision.tx_id)
        self.decisions[decision.decision] += 1
        self.latencies.append(decision.latency_ms)
        self.degraded += decision.degraded
        return True

    def as_dict(self, produced: int, dlq: int) -> dict[str, Any]:
        """The JSON written to demo-summary.json."""
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {
            "produced": produced,
            "decided": len(self.seen),
            "dlq": dlq,
            "degraded": self.degraded,
            "decisions": {k: self.decisions.get(k, 0) for k in ("APPROVE", "REVIEW", "BLOCK")},
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 2),
                "p99": round(float(np.percentile(lat, 99)), 2),
            },
        }


def run_demo(settings: Settings, *, duration_s: float, rate: float, keep_servers: bool) -> None:
    """Run the demo; ``duration_s == 0`` streams until Ctrl-C."""
    state = settings.state_dir / "demo"
    private_dir(settings.state_dir)
    private_dir(state)
    console.print(Rule("1. local Kafka and Redis"))
    with _local_servers(settings, keep_servers):
        console.print(Rule("2. topics (this run's own, deleted at the end)"))
        # Letters between digit groups: a dash-joined run like 20261124-105656 can pass
        # the card-number check, and paths holding it would be refused in ModelUpdates.
        run = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S")
        settings = settings.model_copy(
            update={
                f"topic_{role}": f"demo-{run}-{role}"
                for role in ("transactions", "decisions", "labels", "dlq", "model_updates")
            }
            | {"feedback_app_id": f"demo-{run}-feedback"}
        )
        for name, outcome in create_topics(settings).items():
            console.print(f"  {name}: {outcome}")

        console.print(Rule("3. a simulated, labelled history and a first champion"))
        history = state / "history.parquet"
        run_dir = (state / f"run-{run}").resolve()
        private_dir(run_dir)
        env = _run_env(settings, run_dir, history)
        try:
            subprocess.run(
                [_fraudstream(), "simulate", "--users", "2000", "--merchants", "500", "--days",
                 "21", "--out", str(history)],
                check=True,
            )  # fmt: skip
            # Registered and announced on this run's model-updates: the scorer follows the
            # topic, so the online model and retrained champions reach it live.
            subprocess.run([_fraudstream(), "train", "--data", str(history)], env=env, check=True)
            summary = _stream(settings, run_dir, env, duration_s, rate)
        finally:
            _delete_run_topics(settings)
        console.print(Rule("summary"))
        console.print_json(data=summary)
        path = settings.state_dir / "demo-summary.json"
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        console.print(f"written to {path}")


def _delete_run_topics(settings: Settings) -> None:
    names = [settings.topic_transactions, settings.topic_decisions, settings.topic_labels,
             settings.topic_dlq, settings.topic_model_updates]  # fmt: skip
    admin = AdminClient(settings.kafka_config())
    app = settings.feedback_app_id  # Faust's changelog and assignor topics of this run
    names += [name for name in admin.list_topics(timeout=10).topics if name.startswith(app)]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(KafkaException):
            future.result(timeout=30)


def _run_env(settings: Settings, run_dir: Path, history: Path) -> dict[str, str]:
    """The environment every child of this run shares.

    Its topics, its state folder (registry, offline store, feedback state) and the
    history the retrain adds to the offline store.
    """
    env = {key: value for key, value in os.environ.items() if key != "FRAUD_MODEL_DIR"}
    return {
        **env,
        "FRAUD_TOPIC_TRANSACTIONS": settings.topic_transactions,
        "FRAUD_TOPIC_DECISIONS": settings.topic_decisions,
        "FRAUD_TOPIC_LABELS": settings.topic_labels,
        "FRAUD_TOPIC_DLQ": settings.topic_dlq,
        "FRAUD_TOPIC_MODEL_UPDATES": settings.topic_model_updates,
        "FRAUD_FEEDBACK_APP_ID": settings.feedback_app_id,
        "FRAUD_CONSOLE_QUEUE_NAME": settings.feedback_app_id,  # this run's review queue
        "FRAUD_STATE_DIR": str(run_dir),
        "FRAUD_RETRAIN_HISTORY": str(history.resolve()),
        # A demo lasts minutes: publish the online model after a few dozen labels.
        "FRAUD_ONLINE_PUBLISH_EVERY": "25",
        "FRAUD_ONLINE_PUBLISH_INTERVAL_S": "10",
    }


def _stream(
    settings: Settings, state: Path, env: dict[str, str], duration_s: float, rate: float
) -> dict[str, Any]:
    """Scorer + feedback + producer + analysts + live view of decisions; returns the summary."""
    started_at = datetime.now(tz=UTC)
    summary = DemoSummary()
    console.print(Rule("4. the scorer and the feedback service"))
    scorer_args = [_fraudstream(), "score", "--recovery-dir", str(state / "recovery")]
    console.print(f"  topics: {settings.topic_transactions} -> {settings.topic_decisions}")
    feedback_args = [_fraudstream(), "feedback"]
    login = _console_login(env)
    with (
        _process(scorer_args, env, state / "scorer.log") as scorer,
        _process(feedback_args, env, state / "feedback.log") as feedback,
    ):
        _wait_ready(settings.metrics_port, scorer)
        console.print(
            f"  scoring; metrics at http://{settings.metrics_host}:{settings.metrics_port}/metrics,"
            f" log in {state / 'scorer.log'}"
        )
        _wait_ready(settings.feedback_metrics_port, feedback, timeout_s=120, name="feedback")
        console.print(
            f"  feedback service: labels -> online model, merchant risk, offline store; "
            f"metrics at http://{settings.metrics_host}:{settings.feedback_metrics_port}/metrics,"
            f" log in {state / 'feedback.log'}"
        )
        who = f"sign in as {login[0]} / {login[1]}" if login else "FRAUD_CONSOLE_ANALYSTS sign in"
        console.print(
            f"  review console: http://{settings.console_host}:{settings.console_port}/ ({who});"
            " the simulated analysts work the same queue",
            highlight=False,
        )
        console.print(Rule(f"5. live traffic at {rate:.0f}/s, the decisions and the analysts"))
        poison = RecordProducer(settings, settings.topic_transactions)
        for raw in _POISON:
            poison.send(b"poison", raw)
        poison.flush()
        truth = state / "truth.jsonl"
        producer_args = [_fraudstream(), "produce", "--rate", str(rate), "--duration",
                         str(duration_s), "--truth", str(truth)]  # fmt: skip
        analyst = SimulatedAnalyst(settings, truth)
        analyst.start()
        recorder = ViewRecorder(settings).start()
        with _process(producer_args, env, state / "producer.log") as producer:
            try:
                _show_decisions(settings, summary, started_at, producer, scorer)
            except KeyboardInterrupt:
                console.print("stopping")
        during = recorder.stop()
        produced = sum(end_offsets(settings, settings.topic_transactions).values())
        _drain(settings, summary, started_at, produced - len(_POISON), scorer)
        analyst.stop()
        view = _final_view(settings, sum(analyst.sent.values()))
        console.print(Rule("6. `fraudstream metrics tail`, in the last seconds of traffic"))
        console.print(render(during or view))
        learning = _learning(view.to_json())
    for name, child in (("scorer", scorer), ("feedback", feedback)):
        if child.returncode not in (0, 130, -signal.SIGINT):
            raise InfraError(
                f"the {name} service failed (exit {child.returncode}); see {state / name}.log"
            )
    dlq = sum(end_offsets(settings, settings.topic_dlq).values())
    shutil.rmtree(state / "recovery", ignore_errors=True)
    return {**summary.as_dict(produced, dlq), "labels_sent": dict(analyst.sent), **learning}


def _console_login(env: dict[str, str]) -> tuple[str, str] | None:
    """A one-run analyst account for the review console, unless accounts are configured."""
    if env.get("FRAUD_CONSOLE_ANALYSTS"):
        return None
    from streams.console import hash_password

    password = secrets.token_urlsafe(9)
    env["FRAUD_CONSOLE_ANALYSTS"] = orjson.dumps({"demo": hash_password(password)}).decode()
    return "demo", password


def _final_view(settings: Settings, sent: int, timeout_s: float = 20) -> MetricsView:
    """The metrics view, once the feedback service has applied every label sent."""
    endpoints = discover(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        view = snapshot(endpoints, interval_s=1.0)
        applied = sum(view.to_json()["feedback"]["applied"].values())
        if applied >= sent or time.monotonic() > deadline:
            return view


def _learning(view: dict[str, Any]) -> dict[str, Any]:
    """The summary's figures from the metrics view: feedback, drift, models serving."""
    feedback, drift = view["feedback"], view["drift"]
    quality = feedback["online_quality"]
    worst = list(drift["features"].items())[:3]
    return {
        "feedback": {
            "labels_applied": feedback["applied"],
            "parked": feedback["parked"],
            "online_model": {
                metric: _finite(quality.get(metric))
                for metric in ("labels", "auc", "precision", "recall")
            },
            "online_publishes": feedback["publishes"].get("published", 0.0),
        },
        "drift": {
            "window_rows": drift["window_rows"],
            "prediction_psi": _finite(drift["prediction_psi"]),
            "worst_features": {name: _finite(psi) for name, psi in worst},
        },
        "serving": view["models"],
    }


def _finite(value: float | None) -> float | None:
    """A metric for the JSON summary: rounded, and None where it is undefined (NaN)."""
    return None if value is None or math.isnan(value) else round(value, 4)


def _show_decisions(
    settings: Settings,
    summary: DemoSummary,
    started_at: datetime,
    producer: subprocess.Popen[bytes],
    scorer: subprocess.Popen[bytes],
) -> None:
    """Print every REVIEW/BLOCK and a running count, until the producer is done."""
    last_report = time.monotonic()

    def finished() -> bool:
        return producer.poll() is not None or scorer.poll() is not None

    for message in read_topic(
        settings, settings.topic_decisions, from_beginning=True, stop=finished
    ):
        _count(message.value(), summary, started_at, show=True)
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            counts = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.decisions.items()))
            console.print(f"  [dim]{len(summary.seen):,} decided so far: {counts}[/]")


def _drain(
    settings: Settings,
    summary: DemoSummary,
    started_at: datetime,
    expected: int,
    scorer: subprocess.Popen[bytes],
) -> None:
    """Read the last decisions (up to 30 s) so the summary covers everything produced."""
    deadline = time.monotonic() + 30

    def done() -> bool:
        return (
            len(summary.seen) >= expected
            or time.monotonic() > deadline
            or scorer.poll() is not None
        )

    for message in read_topic(
        settings, settings.topic_decisions, from_beginning=True, idle_timeout_s=10, stop=done
    ):
        _count(message.value(), summary, started_at, show=False)


def _count(raw: bytes | None, summary: DemoSummary, started_at: datetime, *, show: bool) -> None:
    try:
        decision = decode(raw or b"", Decision)
    except SchemaValidationError:
        return
    if decision.event_time < started_at or not summary.add(decision):
        return
    if show and decision.decision != "APPROVE":
        rules = ",".join(hit.id for hit in decision.rules_fired if not hit.shadow) or "-"
        score = "-" if decision.score is None else f"{decision.score:.3f}"
        console.print(
            f"  [{_STYLE[decision.decision]}]{decision.decision:<6}[/] {decision.tx_id} "
            f"user={decision.user_id} score={score} rules={rules} "
            f"reasons={' '.join(decision.reasons[:3])} {decision.latency_ms:.1f} ms",
            highlight=False,
        )
