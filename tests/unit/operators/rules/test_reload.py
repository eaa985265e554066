"""Hot reload: edits are picked up, bad edits keep the previous rules and are reported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from operators.exceptions import RuleError
from operators.rules import ReloadingRules
from tests.doubles import FakeClock
from tests.unit.operators.rules._support import SMALL, rule


class RulesFile:
    """A rules file whose every write gets a distinct mtime, so no test depends on timing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns = 1_700_000_000_000_000_000

    def write(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")
        self._mtime_ns += 1_000_000_000
        os.utime(self.path, ns=(self._mtime_ns, self._mtime_ns))

    def write_rules(self, *specs: dict[str, Any]) -> None:
        self.write(yaml.safe_dump({"version": 1, "rules": list(specs)}))


@pytest.fixture
def rules_file(tmp_path: Path) -> RulesFile:
    file = RulesFile(tmp_path / "rules.yaml")
    file.write_rules(rule("first", "a > 1"))
    return file


def _ids(reloading: ReloadingRules) -> list[str]:
    return [r.id for r in reloading.get()]


def test_new_rule_is_picked_up(rules_file: RulesFile) -> None:
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=0)
    assert _ids(reloading) == ["first"]
    rules_file.write_rules(rule("first", "a > 1"), rule("second", "b > 2", "BLOCK"))
    assert _ids(reloading) == ["first", "second"]
    assert reloading.reloads == 1
    assert reloading.last_error is None


def test_bad_edit_keeps_previous_rules_then_fix_reloads(rules_file: RulesFile) -> None:
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=0)
    before = reloading.get()

    rules_file.write_rules(rule("first", "a > 1"), rule("broken", "__import__('os')"))
    with capture_logs() as logs:
        assert reloading.get() is before
    assert reloading.failed_reloads == 1
    assert reloading.last_error is not None
    assert "rule 'broken'" in reloading.last_error
    assert "function calls" in reloading.last_error
    failures = [log for log in logs if log["event"] == "rules_reload_failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "warning"
    assert failures[0]["error"] == reloading.last_error

    # Polling again without a new edit neither reloads nor counts the failure twice.
    assert reloading.get() is before
    assert reloading.failed_reloads == 1

    rules_file.write_rules(rule("first", "a > 1"), rule("fixed", "a > 5", "TAG"))
    assert _ids(reloading) == ["first", "fixed"]
    assert reloading.last_error is None
    assert reloading.reloads == 1
    assert reloading.failed_reloads == 1


def test_invalid_yaml_and_deleted_file_keep_previous_rules(rules_file: RulesFile) -> None:
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=0)
    rules_file.write("rules: [unclosed")
    assert _ids(reloading) == ["first"]
    assert "not valid YAML" in (reloading.last_error or "")

    rules_file.path.unlink()
    assert _ids(reloading) == ["first"]
    assert "cannot read the rules file" in (reloading.last_error or "")
    assert reloading.failed_reloads == 2

    rules_file.write_rules(rule("back", "c > 0"))
    assert _ids(reloading) == ["back"]


def test_reverting_to_the_live_content_clears_the_error(rules_file: RulesFile) -> None:
    good = rules_file.path.read_text()
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=0)
    rules_file.write("rules: 5")
    reloading.get()
    assert reloading.last_error is not None
    rules_file.write(good)
    assert reloading.check_now() is False  # same content as the live rules: nothing to do
    assert reloading.last_error is None
    assert reloading.reloads == 0


def test_file_is_checked_at_most_once_per_interval(rules_file: RulesFile) -> None:
    clock = FakeClock()
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=500, clock=clock)
    rules_file.write_rules(rule("second", "a > 2"))
    clock.now += 0.499
    assert _ids(reloading) == ["first"]  # not due yet
    clock.now += 0.001
    assert _ids(reloading) == ["second"]


def test_check_now_ignores_the_interval(rules_file: RulesFile) -> None:
    reloading = ReloadingRules(rules_file.path, SMALL, check_interval_ms=60_000)
    rules_file.write_rules(rule("second", "a > 2"))
    assert reloading.check_now() is True
    assert [r.id for r in reloading.rules] == ["second"]
    assert reloading.check_now() is False


def test_a_bad_file_at_start_up_is_refused(tmp_path: Path) -> None:
    file = RulesFile(tmp_path / "rules.yaml")
    file.write_rules(rule("broken", "a >"))
    with pytest.raises(RuleError, match="rule 'broken'"):
        ReloadingRules(file.path, SMALL)


def test_negative_interval_is_refused(rules_file: RulesFile) -> None:
    with pytest.raises(RuleError, match="check_interval_ms"):
        ReloadingRules(rules_file.path, SMALL, check_interval_ms=-1)
