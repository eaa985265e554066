"""``make audit``: pip-audit of requirements.lock, with reasoned waivers, honest about gaps.

pip-audit asks a vulnerability service about each pinned version. When the service cannot
be reached (a network that allows only pypi.org's project pages, say), pip-audit skips the
package, reports "could not be audited" and still exits 0: a run that looked at nothing
would pass silently. This wrapper:

* runs pip-audit on ``requirements.lock`` with every waiver of ``.pip-audit-waivers``
  passed as ``--ignore-vuln`` (each waiver must give its reason);
* for each package pip-audit skipped, falls back on PyPI's project page
  (``/pypi/NAME/json``): its ``vulnerabilities`` list the advisories affecting the latest
  release, so it is a real audit of pins that *are* the latest release, and nothing else;
* fails on any unwaived vulnerability found either way;
* prints, loudly, how many packages nobody could audit, and fails on that only with
  ``--strict`` (or ``FRAUD_AUDIT_STRICT=1``), so that CI on a restricted network passes
  while saying exactly what it could not check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AuditError",
    "Finding",
    "Report",
    "Waiver",
    "canonical",
    "latest_release_findings",
    "main",
    "parse_lock",
    "parse_pip_audit",
    "parse_waivers",
]

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "requirements.lock"
WAIVERS_FILE = ROOT / ".pip-audit-waivers"
PYPI_PROJECT_URL = "https://pypi.org/pypi/{name}/json"
_WAIVER = re.compile(r"^(?P<id>[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9-:._]+)\s+(?P<reason>\S.*)$")


class AuditError(Exception):
    """The audit itself could not run: a malformed waiver or lock file, pip-audit failed."""


@dataclass(frozen=True)
class Waiver:
    """A vulnerability id (or alias) accepted on purpose, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class Finding:
    """One vulnerability of one pinned package."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()
    source: str = "pip-audit"

    def waived_by(self, waivers: Iterable[Waiver]) -> Waiver | None:
        """The waiver naming this vulnerability's id or one of its aliases, if any."""
        names = {self.id, *self.aliases}
        return next((waiver for waiver in waivers if waiver.id in names), None)


@dataclass
class Report:
    """What was audited, what was found, what could not be checked."""

    findings: list[Finding] = field(default_factory=list)
    audited: set[str] = field(default_factory=set)
    unaudited: dict[str, str] = field(default_factory=dict)


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``PyYAML`` and ``pyyaml``, ``pip_api`` and ``pip-api`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_waivers(text: str) -> list[Waiver]:
    """``ID reason...`` per line; ``#`` lines and blank lines are ignored.

    A waiver without a reason, or the same id twice, is an :class:`AuditError`: a waiver
    is a decision someone must be able to read and revisit.
    """
    waivers: list[Waiver] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _WAIVER.match(line)
        if match is None:
            raise AuditError(
                f"waivers line {number}: {line!r}: expected 'VULN-ID reason' "
                "(e.g. 'GHSA-xxxx-xxxx-xxxx not reachable: we never parse untrusted XML')"
            )
        if any(waiver.id == match["id"] for waiver in waivers):
            raise AuditError(f"waivers line {number}: {match['id']} is waived twice")
        waivers.append(Waiver(match["id"], match["reason"].strip()))
    return waivers


def parse_lock(text: str) -> dict[str, str]:
    """``name==version`` lines of a pip-freeze style lock, by canonical name."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or ";" in version:
            raise AuditError(f"lock line {number}: {line!r} is not 'name==version'")
        pins[canonical(name.strip())] = version.strip()
    return pins


def parse_pip_audit(output: str) -> Report:
    """pip-audit's ``--format json``: findings, packages audited, packages it skipped."""
    try:
        data = json.loads(output)
        dependencies = data["dependencies"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"pip-audit printed no JSON report ({exc}): {output[:300]!r}") from exc
    report = Report()
    for dependency in dependencies:
        name = canonical(dependency["name"])
        if "skip_reason" in dependency:
            report.unaudited[name] = dependency["skip_reason"]
            continue
        report.audited.add(name)
        report.findings += [
            Finding(
                name,
                dependency["version"],
                vuln["id"],
                tuple(vuln.get("aliases", ())),
                tuple(vuln.get("fix_versions", ())),
            )
            for vuln in dependency.get("vulns", ())
        ]
    return report


def latest_release_findings(
    name: str, version: str, project: Mapping[str, Any]
) -> list[Finding] | None:
    """Findings for ``name==version`` from PyPI's project JSON; None if it cannot tell.

    The project page lists the vulnerabilities of the latest release only, so it answers
    for a pin that is the latest release and for no other. Withdrawn advisories are not
    findings.
    """
    if project.get("info", {}).get("version") != version:
        return None
    return [
        Finding(
            name,
            version,
            vuln["id"],
            tuple(vuln.get("aliases") or ()),
            tuple(vuln.get("fixed_in") or ()),
            source="pypi-latest",
        )
        for vuln in project.get("vulnerabilities") or ()
        if not vuln.get("withdrawn")
    ]


def _fetch_project(name: str) -> Mapping[str, Any]:
    url = PYPI_PROJECT_URL.format(name=name)
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - fixed https URL
        data: Mapping[str, Any] = json.loads(response.read())
    return data


def fill_from_pypi(
    report: Report,
    pins: Mapping[str, str],
    fetch: Callable[[str], Mapping[str, Any]] = _fetch_project,
) -> None:
    """Audit what pip-audit skipped from the project pages, where they can tell."""

    def one(name: str) -> tuple[str, list[Finding] | None, str]:
        try:
            project = fetch(name)
        except Exception as exc:  # any network or JSON failure leaves it unaudited
            return name, None, f"{report.unaudited[name]}; PyPI project page: {exc}"
        found = latest_release_findings(name, pins[name], project)
        latest = project.get("info", {}).get("version")
        return name, found, f"pinned {pins[name]}, latest {latest}: no data for older releases"

    skipped = sorted(name for name in report.unaudited if name in pins)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name, found, reason in pool.map(one, skipped):
            if found is None:
                report.unaudited[name] = reason
            else:
                del report.unaudited[name]
                report.audited.add(name)
                report.findings += found


def run_pip_audit(lock: Path, waivers: Sequence[Waiver]) -> str:
    """pip-audit's JSON report of ``lock`` (exit 1 just means it found something)."""
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps",
        "--disable-pip", "--progress-spinner", "off", "--format", "json",
    ]  # fmt: skip
    for waiver in waivers:
        command += ["--ignore-vuln", waiver.id]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode not in (0, 1):
        raise AuditError(f"pip-audit exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def render(report: Report, waivers: Sequence[Waiver], total: int) -> tuple[list[str], int]:
    """The lines to print and the number of unwaived findings."""
    lines: list[str] = []
    unwaived = [f for f in report.findings if f.waived_by(waivers) is None]
    waived = [(f, w) for f in report.findings if (w := f.waived_by(waivers)) is not None]
    for finding in unwaived:
        fixes = ", ".join(finding.fix_versions) or "none yet"
        lines.append(
            f"VULNERABLE {finding.package}=={finding.version}: {finding.id} "
            f"(aliases {', '.join(finding.aliases) or '-'}; fixed in {fixes}; "
            f"from {finding.source})"
        )
    for finding, waiver in waived:
        lines.append(f"waived {finding.package}=={finding.version} {finding.id}: {waiver.reason}")
    lines.append(
        f"audit: {len(report.audited)}/{total} pinned packages audited, "
        f"{len(unwaived)} unwaived and {len(waived)} waived vulnerabilities"
    )
    if report.unaudited:
        bar = "!" * 78
        lines += [
            bar,
            f"!! {len(report.unaudited)} of {total} pinned packages could NOT be audited:",
            "!! no vulnerability service answered for these versions (OSV unreachable,",
            "!! PyPI's per-release JSON missing). They are NOT known to be safe. Run",
            "!! `make audit` where api.osv.dev or pypi.org/pypi/NAME/VERSION/json answers,",
            "!! or set FRAUD_AUDIT_STRICT=1 to make this a failure.",
            *(f"!!   {name}: {reason}" for name, reason in sorted(report.unaudited.items())),
            bar,
        ]
    return lines, len(unwaived)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit; 0 clean, 1 vulnerable (or unaudited with --strict), 2 broken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lock", type=Path, default=LOCK_FILE)
    parser.add_argument("--waivers", type=Path, default=WAIVERS_FILE)
    parser.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("FRAUD_AUDIT_STRICT", "") not in ("", "0"),
        help="fail when a package could not be audited (default: FRAUD_AUDIT_STRICT)",
    )
    parser.add_argument(
        "--no-pypi-fallback", action="store_true", help="trust pip-audit's services only"
    )
    args = parser.parse_args(argv)
    try:
        waivers = parse_waivers(args.waivers.read_text()) if args.waivers.exists() else []
        pins = parse_lock(args.lock.read_text())
        report = parse_pip_audit(run_pip_audit(args.lock, waivers))
        if not args.no_pypi_fallback:
            fill_from_pypi(report, pins)
    except AuditError as exc:
        print(f"audit: cannot audit: {exc}", file=sys.stderr)
        return 2
    lines, unwaived = render(report, waivers, len(pins))
    print("\n".join(lines))
    if unwaived:
        return 1
    if report.unaudited and args.strict:
        print("audit: failing (strict): some packages could not be audited", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
