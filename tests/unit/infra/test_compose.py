"""The docker-compose stack: the compose file, its mounted configs, the image recipe.

Docker itself is not needed: `docker compose config` runs where the compose plugin is
installed, and the structural checks below always run. `promtool` (Debian package
`prometheus`) checks the Prometheus config, the alert rules and the dashboard's queries;
without it those checks skip locally and fail in CI (where CI is set). The alerts' own
unit tests are in test_alerts.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
REDIS_ACL = ROOT / "infra" / "redis" / "users.acl"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "fraudstream.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"

INFRA_SERVICES = ("kafka", "redis", "prometheus", "grafana")
LONG_RUNNING_APP_SERVICES = ("scorer", "feedback")
METRICS_PORTS = {"scorer": 9100, "feedback": 9200}

# ${NAME:-default} in the compose file; the default is what `docker compose up` uses.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def _interpolate(value: str) -> str:
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves the YAML anchors and `<<` merge keys the file uses.
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return cast("dict[str, Any]", loaded)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cast("dict[str, dict[str, Any]]", compose["services"])


def _app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services.items() if "build" in svc}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: _interpolate(str(value)) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def _depends_on(service: dict[str, Any]) -> dict[str, Any]:
    return cast("dict[str, Any]", service.get("depends_on", {}))


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) of every bind mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def _named_volume_mounts(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source and not source.startswith((".", "/")):
            names.append(source)
    return names


# --- (1) the compose file ---------------------------------------------------------------


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin), else the Debian `docker-compose` (v1), else None."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


@pytest.mark.skipif(
    _compose_command() is None,
    reason="needs docker compose (or docker-compose); test_compose_structure still runs",
)
@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_docker_compose_config_is_valid(profile: list[str]) -> None:
    command = _compose_command()
    assert command is not None
    result = subprocess.run(
        [*command, "-f", "docker-compose.yml", *profile, "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_structure(services: dict[str, dict[str, Any]]) -> None:
    expected = {*INFRA_SERVICES, "topics", *LONG_RUNNING_APP_SERVICES, "producer"}
    assert expected <= services.keys()

    for name in INFRA_SERVICES:
        test = services[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test must be a list"

    for name, service in services.items():
        for dependency, spec in _depends_on(service).items():
            # The short list form only waits for "started", which is not "ready".
            assert isinstance(spec, dict), f"{name}: depends_on must use the mapping form"
            assert "condition" in spec, f"{name} -> {dependency} has no condition"
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy, but it has no healthcheck"
                )
            if spec["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", (
                    f"{name} waits for {dependency} to complete, but it is restarted"
                )


def test_topics_service_is_one_shot_and_gates_the_apps(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert _command(topics) == ["topics", "create"]
    assert topics.get("restart") == "no"
    assert _depends_on(topics) == {"kafka": {"condition": "service_healthy"}}

    for name in LONG_RUNNING_APP_SERVICES:
        assert _depends_on(services[name]) == {
            "kafka": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
    assert _depends_on(services["producer"])["topics"] == {
        "condition": "service_completed_successfully"
    }


def test_app_services_run_the_fraudstream_image_against_the_compose_servers(
    services: dict[str, dict[str, Any]],
) -> None:
    apps = _app_services(services)
    assert set(apps) == {"topics", *LONG_RUNNING_APP_SERVICES, "producer"}
    assert _command(services["scorer"]) == ["score"]
    assert _command(services["feedback"]) == ["feedback"]
    assert _command(services["producer"])[0] == "produce"
    assert services["producer"].get("profiles") == ["demo"]

    for name, service in apps.items():
        assert service["build"] in (".", {"context": "."}), name
        env = _environment(service)
        # Both set: the app never tries to start a local Kafka or Redis in a container.
        assert env["FRAUD_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["FRAUD_REDIS_URL"].startswith("redis://fraudstream:"), name
        assert env["FRAUD_REDIS_URL"].endswith("@redis:6379/0"), name
        assert env["FRAUD_METRICS_HOST"] == "0.0.0.0", name  # noqa: S104 - in-container


def test_kafka_is_single_node_kraft_without_topic_auto_creation(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert any(listener.startswith("CONTROLLER://") for listener in listeners)
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(listener.endswith("//kafka:9092") for listener in advertised)
    assert any(listener.endswith("//localhost:19092") for listener in advertised)
    assert any(_interpolate(port).endswith(":19092:19092") for port in kafka["ports"])
    # Every advertised listener has a listener behind it, on the same port.
    listener_ports = {listener.rsplit(":", 1)[1] for listener in listeners}
    assert {listener.rsplit(":", 1)[1] for listener in advertised} <= listener_ports


def test_redis_acl_disables_default_user_and_matches_the_app_password(
    services: dict[str, dict[str, Any]],
) -> None:
    redis = services["redis"]
    command = _command(redis)
    acl_target = command[command.index("--aclfile") + 1]
    assert ("./infra/redis/users.acl", acl_target) in _bind_mounts(redis)
    assert "--requirepass" not in command  # it would re-enable the default user

    lines = [line for line in REDIS_ACL.read_text().splitlines() if line.strip()]
    # Redis 7 refuses to start on any line that is not a user definition (no comments).
    assert all(line.startswith("user ") for line in lines), lines
    users = {line.split()[1]: line.split()[2:] for line in lines}
    assert "off" in users["default"]
    assert "nopass" not in users["default"]
    assert "on" in users["fraudstream"]

    password = _environment(redis)["REDISCLI_AUTH"]
    url_password = re.fullmatch(
        r"redis://fraudstream:(?P<pw>[^@]+)@redis:6379/0",
        _environment(services["scorer"])["FRAUD_REDIS_URL"],
    )
    assert url_password is not None
    assert url_password["pw"] == password
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert f"#{digest}" in users["fraudstream"], "users.acl hash != compose default password"


def test_redis_compose_user_has_the_local_least_privilege_rules() -> None:
    """The compose Redis grants the app user what `infra up`'s Redis grants, no more."""
    from streams.infra._redis import ACL_RULES

    users = {line.split()[1]: line.split()[2:] for line in REDIS_ACL.read_text().splitlines()}
    assert users["default"] == ["off"]
    on, password_hash, *rules = users["fraudstream"]
    assert (on, password_hash[0]) == ("on", "#")
    assert rules == ACL_RULES.split()
    assert "+@all" not in rules and "&*" not in rules


def test_stateful_services_keep_data_in_declared_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes", {}))
    for name in (*INFRA_SERVICES, *LONG_RUNNING_APP_SERVICES):
        assert _named_volume_mounts(services[name]), f"{name} keeps no data in a volume"
    for name, service in services.items():
        for volume in _named_volume_mounts(service):
            assert volume in declared, f"{name} mounts undeclared volume {volume}"


def test_prometheus_scrapes_the_app_metrics_ports(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, port in METRICS_PORTS.items():
        assert f"{name}:{port}" in targets
        variable = "FRAUD_FEEDBACK_METRICS_PORT" if name == "feedback" else "FRAUD_METRICS_PORT"
        assert _environment(services[name]).get(variable) == str(port), name
    rule_files = config["rule_files"]
    assert [PROMETHEUS_DIR / path for path in rule_files] == [ALERTS]


# --- (2) everything the compose file and the Dockerfile refer to exists -------------------


def test_every_bind_mount_exists_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    mounted = 0
    for name, service in services.items():
        for source, _target in _bind_mounts(service):
            path = (ROOT / _interpolate(source)).resolve()
            assert path.exists(), f"{name} mounts {source}, which does not exist"
            assert ROOT in path.parents, f"{name} mounts {source}, outside the repo"
            mounted += 1
    assert mounted >= 5  # prometheus x2, grafana x2, redis ACL


def test_grafana_provisioning_points_at_the_mounted_repo_files(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana_mounts = {target: ROOT / source for source, target in _bind_mounts(services["grafana"])}
    assert grafana_mounts["/etc/grafana/provisioning"].resolve() == (GRAFANA_DIR / "provisioning")

    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert providers
    for provider in providers:
        container_path = provider["options"]["path"]
        host_dir = grafana_mounts[container_path].resolve()
        assert host_dir == DASHBOARD.parent
        assert list(host_dir.glob("*.json")), f"no dashboards in {host_dir}"

    home = _environment(services["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        directory, _, filename = home.rpartition("/")
        assert (grafana_mounts[directory] / filename).resolve() == DASHBOARD

    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [ds["url"] for ds in datasources] == ["http://prometheus:9090"]


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", ".git", ".fraudstream"):
        assert required in ignored

    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root\b|0\b)\S+", text, re.M), "the image must not run as root"
    assert 'ENTRYPOINT ["fraudstream"]' in text
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    sources = [src for args in copies if not args[0].startswith("--") for src in args]
    assert "requirements.lock" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
        assert source not in ignored, f"Dockerfile copies {source}, which .dockerignore drops"


# --- (3) the Grafana dashboard ------------------------------------------------------------

# The panels issue 7 asks for (throughput, latency percentiles, decision mix, rule hits, DLQ
# and degraded rates, drift, model versions, lag) and the ones the alerts send on-call to.
REQUIRED_PANELS = {
    "Decisions per second",
    "Decision latency",
    "Decision mix",
    "Throughput vs 1-hour baseline",
    "Rule hits per second",
    "Dead-lettered messages per second",
    "DLQ share",
    "Degraded decisions per second",
    "Degraded share",
    "Prediction drift (PSI)",
    "Feature drift (PSI), top 10",
    "Null ratio above reference, top 10",
    "Out-of-range ratio, top 10",
    "ADWIN score drift detections",
    "Model versions",
    "Consumer lag per consumer",
    "Consumer lag by partition",
    "Labels per second",
    "Online model quality",
    "Retrain runs",
}
# Panel -> (the alert it shows, the alert's threshold): the dashed line is where it fires.
ALERT_THRESHOLDS = {
    "Decision latency": ("FraudDecisionLatencyHigh", 0.05),
    "DLQ share": ("FraudDLQShareHigh", 0.01),
    "Degraded share": ("FraudDegradedShareHigh", 0.01),
    "Prediction drift (PSI)": ("FraudPredictionDrift", 0.2),
    "Feature drift (PSI), top 10": ("FraudFeatureDrift", 0.25),
    "Null ratio above reference, top 10": ("FraudFeatureNullRateHigh", 0.05),
    "Consumer lag per consumer": ("FraudConsumerLagGrowing", 1000),
}
# Per-process gauges whose processes see different users: the worst one is the signal.
_MAX_GAUGES = re.compile(
    r"\bfraud_(prediction_drift_psi|feature_drift_psi|feature_null_ratio"
    r"|feature_reference_null_ratio|feature_out_of_range_ratio)\b"
)


def _dashboard() -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads(DASHBOARD.read_text()))


def _panels() -> list[dict[str, Any]]:
    """Every panel that shows data (rows only group them)."""
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _panel(title: str) -> dict[str, Any]:
    return next(panel for panel in _panels() if panel["title"] == title)


def _dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target of every panel."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in _panels()
        for target in panel["targets"]
    ]


def test_dashboard_panels_query_fraud_metrics() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = dashboard["panels"]
    assert panels
    assert len({panel["id"] for panel in panels}) == len(panels)
    datasource_uids = {ds["uid"] for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    for panel in _panels():
        assert panel.get("title"), f"panel {panel['id']} has no title"
        assert panel.get("description"), f"panel {panel['title']!r} does not say what it shows"
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in datasource_uids, (panel["title"], target)
            assert re.search(r"\bfraud_\w+", target["expr"]), (panel["title"], target)
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]

    expressions = {expr for _, _, expr in _dashboard_targets()}
    assert "sum(rate(fraud_transactions_total[1m])) by (decision)" in expressions
    assert (
        "histogram_quantile(0.99, sum(rate(fraud_decision_latency_seconds_bucket[1m])) by (le))"
        in expressions
    )


def test_dashboard_has_the_panels_of_the_issue_in_titled_rows() -> None:
    titles = [panel["title"] for panel in _panels()]
    assert len(set(titles)) == len(titles), "panel titles must be unique (alerts name them)"
    assert set(titles) >= REQUIRED_PANELS, REQUIRED_PANELS - set(titles)
    rows = [panel for panel in _dashboard()["panels"] if panel["type"] == "row"]
    assert rows
    assert all(row["title"] for row in rows)

    latency = {target["legendFormat"] for target in _panel("Decision latency")["targets"]}
    assert latency == {"p50", "p95", "p99"}
    decisions = {target["legendFormat"] for target in _panel("Decisions per second")["targets"]}
    assert {"total", "{{decision}}"} <= decisions
    versions = _panel("Model versions")["targets"][0]
    assert "fraud_model_info" in versions["expr"]
    assert re.search(r"by \(role, version\)", versions["expr"])


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_sums_counts_and_maxes_drift_across_processes() -> None:
    for title, ref_id, expr in _dashboard_targets():
        if re.search(r"\b(rate|increase)\(", expr):
            assert re.search(r"\bsum\b", expr), (title, ref_id, "counts are per process")
        if _MAX_GAUGES.search(expr):
            assert re.search(r"\bmax\b", expr), (title, ref_id, "drift: the worst process")
        if "histogram_quantile" in expr:
            assert re.search(r"\bby \((\w+, )*le\b|\bby \(le\)", expr), (title, ref_id)


@pytest.mark.parametrize("title", sorted(ALERT_THRESHOLDS))
def test_dashboard_threshold_lines_are_the_alert_thresholds(title: str) -> None:
    alertname, threshold = ALERT_THRESHOLDS[title]
    defaults = _panel(title)["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", title
    assert [step["value"] for step in defaults["thresholds"]["steps"]] == [None, threshold]
    alert = next(
        rule
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") == alertname
    )
    assert re.search(rf"> {threshold}\b", " ".join(alert["expr"].split())), alert["expr"]


# --- (4) promtool ---------------------------------------------------------------------------

# Skips only off CI: where the CI variable is set, a missing promtool fails the tests.
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None and "CI" not in os.environ,
    reason="promtool not installed (apt-get install --no-install-recommends prometheus)",
)


def _promtool(*args: str | Path) -> None:
    assert shutil.which("promtool") is not None, "promtool is required in CI"
    result = subprocess.run(
        ["promtool", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_checks_rules_and_config() -> None:
    _promtool("check", "rules", ALERTS.relative_to(ROOT))
    _promtool("check", "config", PROMETHEUS_CONFIG.relative_to(ROOT))


@needs_promtool
def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no offline "check this expression"; recording rules get the same parser.
    rules = [
        {"record": f"fraudstream:dashboard:{i}", "expr": expr}
        for i, (_, _, expr) in enumerate(_dashboard_targets())
    ]
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", rules_file)


def _target_expr(title: str, legend: str) -> str:
    targets = _panel(title)["targets"]
    return str(next(target["expr"] for target in targets if target["legendFormat"] == legend))


@needs_promtool
def test_dashboard_shares_sum_over_processes(tmp_path: Path) -> None:
    # Two scorer processes, per second: 9100 approves 90, dead-letters 1 (invalid_json),
    # degrades 2 (redis_timeout); 9101 blocks 10, dead-letters 1 (schema), degrades 1
    # (no_model). The shares divide by the totals of both processes.
    per_minute = {
        'fraud_transactions_total{decision="APPROVE", instance="scorer:9100"}': 90,
        'fraud_transactions_total{decision="BLOCK", instance="scorer:9101"}': 10,
        'fraud_dlq_messages_total{reason="invalid_json", instance="scorer:9100"}': 1,
        'fraud_dlq_messages_total{reason="schema", instance="scorer:9101"}': 1,
        'fraud_degraded_decisions_total{cause="redis_timeout", instance="scorer:9100"}': 2,
        'fraud_degraded_decisions_total{cause="no_model", instance="scorer:9101"}': 1,
    }
    expected = {
        ("Decision mix", "{{decision}}"): {
            '{decision="APPROVE"}': 90 / 100,
            '{decision="BLOCK"}': 10 / 100,
        },
        ("DLQ share", "all reasons"): {"{}": 2 / (2 + 100)},
        ("DLQ share", "{{reason}}"): {
            '{reason="invalid_json"}': 1 / (2 + 100),
            '{reason="schema"}': 1 / (2 + 100),
        },
        ("Degraded share", "all causes"): {"{}": 3 / 100},
        ("Degraded share", "{{cause}}"): {
            '{cause="redis_timeout"}': 2 / 100,
            '{cause="no_model"}': 1 / 100,
        },
    }
    tests = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series, "values": f"0+{rate * 60}x20"}
                    for series, rate in per_minute.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": _target_expr(title, legend),
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in samples.items()
                        ],
                    }
                    for (title, legend), samples in expected.items()
                ],
            }
        ],
    }
    tests_file = tmp_path / "dashboard_test.yml"
    tests_file.write_text(yaml.safe_dump(tests))
    _promtool("test", "rules", tests_file)


@needs_promtool
def test_no_decisions_alert_fires_only_without_decisions(tmp_path: Path) -> None:
    rule = next(
        rule
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "FraudNoDecisions"
    )
    expected = {
        "exp_labels": rule.get("labels", {}),
        "exp_annotations": rule.get("annotations", {}),
    }
    series = 'fraud_transactions_total{decision="APPROVE"}'

    def case(input_series: list[dict[str, str]], exp_alerts: list[Any]) -> dict[str, Any]:
        return {
            "interval": "15s",
            "input_series": input_series,
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "FraudNoDecisions", "exp_alerts": exp_alerts}
            ],
        }

    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "15s",
        "tests": [
            case([{"series": series, "values": "0+10x60"}], []),  # decisions flowing
            case([{"series": series, "values": "100+0x60"}], [expected]),  # traffic stopped
            # The scorer never exported the counter at all: still no decisions.
            case([{"series": 'up{job="scorer"}', "values": "0x60"}], [expected]),
        ],
    }
    tests_file = tmp_path / "alerts_test.yml"
    tests_file.write_text(yaml.safe_dump(tests))
    _promtool("test", "rules", tests_file)
