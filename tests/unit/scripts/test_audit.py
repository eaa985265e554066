"""`make audit`'s wrapper: waivers need reasons, gaps are counted, findings fail the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import audit
from scripts.audit import (
    AuditError,
    Finding,
    Report,
    Waiver,
    canonical,
    fill_from_pypi,
    latest_release_findings,
    parse_lock,
    parse_pip_audit,
    parse_waivers,
    render,
)

PIP_AUDIT_JSON = json.dumps(
    {
        "dependencies": [
            {"name": "requests", "version": "2.34.2", "vulns": []},
            {
                "name": "PyYAML",
                "version": "5.3",
                "vulns": [
                    {
                        "id": "PYSEC-2021-142",
                        "fix_versions": ["5.4"],
                        "aliases": ["CVE-2020-14343", "GHSA-8q59-q68h-6hv4"],
                        "description": "...",
                    }
                ],
            },
            {
                "name": "numpy",
                "skip_reason": "Dependency not found on PyPI and could not be audited: "
                "numpy (2.4.6)",
            },
        ],
        "fixes": [],
    }
)


def test_waivers_need_an_id_and_a_reason():
    text = """
    # a comment
    GHSA-8q59-q68h-6hv4  we only yaml.safe_load our own files

    PYSEC-2024-1 not reachable: no untrusted input reaches it (until 2027-01)
    """
    assert parse_waivers(text) == [
        Waiver("GHSA-8q59-q68h-6hv4", "we only yaml.safe_load our own files"),
        Waiver("PYSEC-2024-1", "not reachable: no untrusted input reaches it (until 2027-01)"),
    ]


@pytest.mark.parametrize(
    "text", ["GHSA-8q59-q68h-6hv4", "GHSA-8q59-q68h-6hv4   ", "just words here", "A-1 x\nA-1 y"]
)
def test_a_waiver_without_reason_or_twice_is_an_error(text: str):
    with pytest.raises(AuditError, match="waive"):
        parse_waivers(text)


def test_the_lock_is_read_by_canonical_name():
    assert parse_lock("PyYAML==6.0.3\npip_api==0.0.35\n\n# note\nboolean.py==5.0\n") == {
        "pyyaml": "6.0.3",
        "pip-api": "0.0.35",
        "boolean-py": "5.0",
    }
    assert canonical("Pip_API") == canonical("pip.api") == "pip-api"


@pytest.mark.parametrize("line", ["requests>=2", "requests==", "==1.0", "x==1; python_version<'3'"])
def test_a_lock_line_that_is_not_an_exact_pin_is_an_error(line: str):
    with pytest.raises(AuditError, match="name==version"):
        parse_lock(line)


def test_pip_audit_json_splits_into_findings_audited_and_skipped():
    report = parse_pip_audit(PIP_AUDIT_JSON)
    assert report.audited == {"requests", "pyyaml"}
    assert report.findings == [
        Finding(
            "pyyaml",
            "5.3",
            "PYSEC-2021-142",
            ("CVE-2020-14343", "GHSA-8q59-q68h-6hv4"),
            ("5.4",),
        )
    ]
    assert list(report.unaudited) == ["numpy"]


def test_no_json_from_pip_audit_is_an_error():
    with pytest.raises(AuditError, match="no JSON"):
        parse_pip_audit("Traceback: ...")


def test_a_waiver_matches_the_id_or_any_alias():
    finding = parse_pip_audit(PIP_AUDIT_JSON).findings[0]
    assert finding.waived_by([Waiver("GHSA-8q59-q68h-6hv4", "r")]) == Waiver(
        "GHSA-8q59-q68h-6hv4", "r"
    )
    assert finding.waived_by([Waiver("PYSEC-2021-142", "r")]) is not None
    assert finding.waived_by([Waiver("PYSEC-2000-1", "r")]) is None


def _project(latest: str, vulns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": vulns}


def test_the_project_page_answers_only_for_the_latest_release():
    vuln = {"id": "GHSA-aaaa", "aliases": ["CVE-1"], "fixed_in": ["2.0"], "withdrawn": None}
    withdrawn = {"id": "GHSA-bbbb", "aliases": [], "fixed_in": [], "withdrawn": "2026-01-01"}
    assert latest_release_findings("pkg", "1.0", _project("1.0", [vuln, withdrawn])) == [
        Finding("pkg", "1.0", "GHSA-aaaa", ("CVE-1",), ("2.0",), source="pypi-latest")
    ]
    assert latest_release_findings("pkg", "1.0", _project("1.0", [])) == []
    assert latest_release_findings("pkg", "0.9", _project("1.0", [vuln])) is None


def test_the_fallback_audits_latest_pins_and_keeps_the_rest_unaudited():
    report = Report(
        audited={"requests"},
        unaudited={"fresh": "skipped", "stale": "skipped", "gone": "skipped"},
    )
    pins = {"requests": "2.0", "fresh": "1.0", "stale": "1.0", "gone": "1.0"}
    pages = {
        "fresh": _project("1.0", [{"id": "GHSA-f", "aliases": [], "fixed_in": ["1.1"]}]),
        "stale": _project("3.0", []),
    }

    def fetch(name: str) -> dict[str, Any]:
        if name not in pages:
            raise OSError("404")
        return pages[name]

    fill_from_pypi(report, pins, fetch)
    assert report.audited == {"requests", "fresh"}
    assert [(f.package, f.id) for f in report.findings] == [("fresh", "GHSA-f")]
    assert set(report.unaudited) == {"stale", "gone"}
    assert "latest 3.0" in report.unaudited["stale"]
    assert "404" in report.unaudited["gone"]


def test_the_report_counts_findings_and_shouts_about_gaps():
    report = parse_pip_audit(PIP_AUDIT_JSON)
    lines, unwaived = render(report, [], total=3)
    assert unwaived == 1
    assert any(line.startswith("VULNERABLE pyyaml==5.3: PYSEC-2021-142") for line in lines)
    assert "1 of 3 pinned packages could NOT be audited" in "\n".join(lines)

    lines, unwaived = render(report, [Waiver("CVE-2020-14343", "why")], total=3)
    assert unwaived == 0
    assert "waived pyyaml==5.3 PYSEC-2021-142: why" in lines


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    lock, waivers = tmp_path / "requirements.lock", tmp_path / "waivers"
    lock.write_text("requests==2.34.2\npyyaml==5.3\nnumpy==2.4.6\n")
    waivers.write_text("")
    return lock, waivers


def _run(monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path], output: str, *args: str) -> int:
    monkeypatch.setattr(audit, "run_pip_audit", lambda lock, waivers: output)
    lock, waivers = files
    return audit.main(["--lock", str(lock), "--waivers", str(waivers), "--no-pypi-fallback", *args])


def test_an_unwaived_finding_fails_and_a_waived_one_passes(
    monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
):
    assert _run(monkeypatch, files, PIP_AUDIT_JSON) == 1
    files[1].write_text("PYSEC-2021-142 test: pinned on purpose\n")
    assert _run(monkeypatch, files, PIP_AUDIT_JSON) == 0


def test_unaudited_packages_fail_only_when_strict(
    monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
):
    files[1].write_text("PYSEC-2021-142 test: pinned on purpose\n")
    monkeypatch.delenv("FRAUD_AUDIT_STRICT", raising=False)
    assert _run(monkeypatch, files, PIP_AUDIT_JSON) == 0
    assert "1 of 3 pinned packages could NOT be audited" in capsys.readouterr().out
    assert _run(monkeypatch, files, PIP_AUDIT_JSON, "--strict") == 1
    monkeypatch.setenv("FRAUD_AUDIT_STRICT", "1")
    assert _run(monkeypatch, files, PIP_AUDIT_JSON) == 1


def test_a_broken_waiver_file_stops_the_audit(
    monkeypatch: pytest.MonkeyPatch, files: tuple[Path, Path]
):
    files[1].write_text("GHSA-no-reason\n")
    assert _run(monkeypatch, files, PIP_AUDIT_JSON) == 2


def test_the_repository_waivers_file_is_valid():
    assert all(waiver.reason for waiver in parse_waivers(audit.WAIVERS_FILE.read_text()))
