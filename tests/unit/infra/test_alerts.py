"""The Prometheus alert rules (infra/prometheus/alerts.yml) and their promtool unit tests.

`promtool test rules` proves what each alert does on synthetic series; the checks here
keep that proof complete: an alert added without a firing and a quiet test case, without
a two-process case, or without an on-call description fails. promtool is the Debian
package `prometheus`; without it these skip locally and fail in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "fraudstream.json"

SEVERITIES = {"critical", "warning"}
# Raw metrics whose per-process values must be combined with max, not summed.
DRIFT_GAUGES = (
    "fraud_prediction_drift_psi",
    "fraud_feature_drift_psi",
    "fraud_feature_null_ratio",
    "fraud_feature_reference_null_ratio",
)

# The same rule as test_compose.needs_promtool: a missing promtool only skips off CI.
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None and "CI" not in os.environ,
    reason="promtool not installed (apt-get install --no-install-recommends prometheus)",
)


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), path
    return cast("dict[str, Any]", loaded)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _test_groups() -> list[dict[str, Any]]:
    return cast("list[dict[str, Any]]", _load_yaml(ALERT_TESTS)["tests"])


def _cases(alertname: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(test group, alert_rule_test) of every check of ``alertname``."""
    return [
        (group, case)
        for group in _test_groups()
        for case in group.get("alert_rule_test", [])
        if case["alertname"] == alertname
    ]


def _panel_titles() -> set[str]:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    return {panel["title"] for panel in dashboard["panels"] if panel["type"] != "row"}


ALERT_NAMES = sorted(_alerts())


def test_the_issue_alerts_exist() -> None:
    assert {
        "FraudNoDecisions",
        "FraudDecisionLatencyHigh",
        "FraudThroughputDrop",
        "FraudPredictionDrift",
        "FraudFeatureDrift",
        "FraudFeatureNullRateHigh",
        "FraudDLQShareHigh",
        "FraudDegradedShareHigh",
        "FraudConsumerLagGrowing",
    } <= set(ALERT_NAMES)


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    assert shutil.which("promtool") is not None, "promtool is required in CI"
    result = subprocess.run(
        ["promtool", "test", "rules", str(ALERT_TESTS.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_load_the_repo_rules() -> None:
    rule_files = _load_yaml(ALERT_TESTS)["rule_files"]
    assert [(ALERT_TESTS.parent / path).resolve() for path in rule_files] == [ALERTS]


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_quiet_case(alertname: str) -> None:
    cases = _cases(alertname)
    firing = [case for _, case in cases if case.get("exp_alerts")]
    quiet = [case for _, case in cases if not case.get("exp_alerts")]
    assert firing, f"{alertname}: no case in {ALERT_TESTS.name} where it fires"
    assert quiet, f"{alertname}: no case in {ALERT_TESTS.name} where it must stay silent"
    severity = _alerts()[alertname]["labels"]["severity"]
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"] == severity, (alertname, case)


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_is_tested_with_two_scorer_processes(alertname: str) -> None:
    # Counts are per process; a test with one instance cannot tell sum from max or avg.
    def instances(group: dict[str, Any]) -> set[str]:
        return {
            match[1]
            for series in group["input_series"]
            if (match := re.search(r'instance="(scorer:\d+)"', series["series"]))
        }

    assert any(len(instances(group)) >= 2 for group, _ in _cases(alertname)), alertname


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_tells_on_call_what_to_do(alertname: str) -> None:
    rule = _alerts()[alertname]
    assert rule["labels"]["severity"] in SEVERITIES
    assert re.fullmatch(r"\d+[smh]", str(rule["for"])), "an alert needs a for: duration"
    annotations = rule["annotations"]
    assert annotations["summary"]
    description = annotations["description"]
    assert len(description) > 200, "say what it means, where to look, the likely causes"
    assert "fraudstream metrics tail" in description
    # Panels are named in double quotes; each must exist on the dashboard.
    panels = re.findall(r'"([^"]+)"', description)
    assert panels, f"{alertname}: name the dashboard panel to look at first"
    assert set(panels) <= _panel_titles(), set(panels) - _panel_titles()


def test_counts_are_summed_and_drift_is_maxed_across_processes() -> None:
    for rule in _rules():
        name = rule.get("alert") or rule["record"]
        expr = " ".join(str(rule["expr"]).split())
        if re.search(r"\b(rate|increase)\(", expr):
            assert re.search(r"\bsum\b", expr), f"{name}: per-process counts must be summed"
        for gauge in DRIFT_GAUGES:
            if re.search(rf"\b{gauge}\b", expr):
                assert re.search(r"\bmax\b", expr), f"{name}: {gauge} must be max'ed"


def test_recording_rules_come_before_their_use_in_the_same_group() -> None:
    # Rules of a group run in order; groups run concurrently. Defined earlier in the same
    # group, a recording rule is read by the alert at the same instant, not a cycle late.
    for group in _load_yaml(ALERTS)["groups"]:
        defined: set[str] = set()
        for rule in group["rules"]:
            used = set(re.findall(r"\bfraud:[\w:]+", str(rule["expr"])))
            name = rule.get("alert") or rule["record"]
            assert used <= defined, f"{name} uses {used - defined} before the group defines it"
            if "record" in rule:
                assert re.fullmatch(r"fraud:\w+:\w+", rule["record"]), rule["record"]
                defined.add(rule["record"])
