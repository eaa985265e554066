"""The comparison systems of ``fraudstream bench``: how to start each one as a process.

- ``passthrough`` (:mod:`streams.bench.passthrough`): the limit, consume then produce with
  no processing, in this interpreter.
- ``quix``: ``benchmarks/quix_peer/app.py``, the same features, rules and ONNX scoring as
  the scorer, written on Quix Streams. Quix Streams pins confluent-kafka, pydantic and
  pydantic-settings below the versions fraudstream uses, so it runs in a virtual
  environment of its own, ``<state_dir>/venvs/quix``, created on first use from
  ``benchmarks/quix_peer/requirements.txt`` and re-created when that file changes. The app
  imports fraudstream's own modules from the source tree (``PYTHONPATH``), so both systems
  run the very same operator code.

The bench starts the command with the run's ``FRAUD_TOPIC_*`` variables added to the
environment, exactly as it starts the scorer.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from streams.exceptions import InfraError
from streams.infra._process import exclusive
from streams.settings import Settings

__all__ = [
    "PEERS",
    "QUIX_APP",
    "QUIX_REQUIREMENTS",
    "ensure_quix_python",
    "peer_command",
    "quix_venv_dir",
    "requirements_digest",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIX_APP = REPO_ROOT / "benchmarks" / "quix_peer" / "app.py"
QUIX_REQUIREMENTS = REPO_ROOT / "benchmarks" / "quix_peer" / "requirements.txt"
PEERS = ("passthrough", "quix")
#: Written last, after a successful install: its content is the requirements' digest.
STAMP_NAME = "fraudstream-requirements.sha256"
_PYTHON_VERSION = (3, 11)
_VENV_TIMEOUT_S = 120.0
_PIP_TIMEOUT_S = 900.0
_TAIL_LINES = 25


def quix_venv_dir(state_dir: Path) -> Path:
    """Where the Quix Streams environment lives."""
    return state_dir / "venvs" / "quix"


def requirements_digest(requirements: Path) -> str:
    """What the stamp records: the sha256 of the requirements file's bytes."""
    try:
        return hashlib.sha256(requirements.read_bytes()).hexdigest()
    except OSError as exc:
        raise InfraError(
            f"cannot read {requirements} ({exc}); the Quix peer runs from a source checkout"
        ) from exc


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _is_current(venv: Path, digest: str) -> bool:
    """True when the environment was fully installed from requirements with ``digest``."""
    try:
        stamp = (venv / STAMP_NAME).read_text().strip()
    except OSError:
        return False
    return stamp == digest and _venv_python(venv).exists()


def _base_python() -> str:
    """A Python 3.11 to build the environment from: this one, else ``python3.11``."""
    if sys.version_info[:2] == _PYTHON_VERSION:
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise InfraError("the Quix peer needs Python 3.11 (python3.11 is not on PATH)")
    return found


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


def _run(args: list[str], what: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise InfraError(f"{what} did not finish within {timeout_s:.0f}s") from None
    except OSError as exc:
        raise InfraError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        raise InfraError(
            f"{what} failed (exit {done.returncode}):\n{_tail(done.stderr + done.stdout)}"
        )


def ensure_quix_python(
    state_dir: Path,
    on_progress: Callable[[str], None],
    *,
    requirements: Path = QUIX_REQUIREMENTS,
) -> Path:
    """The Python of the Quix Streams environment, created or updated if needed.

    Idempotent: an environment whose stamp matches the requirements' digest is used as it
    is (no pip, no network). Otherwise it is re-created from scratch and pip installs the
    pinned requirements; the stamp is written only once that succeeded, so an interrupted
    install is redone next time. Raises :class:`InfraError` with pip's last lines.
    """
    venv = quix_venv_dir(state_dir).absolute()
    digest = requirements_digest(requirements)
    python = _venv_python(venv)
    if _is_current(venv, digest):
        return python
    with exclusive(venv.with_name(f"{venv.name}.lock")):
        if _is_current(venv, digest):  # another process installed it while we waited
            return python
        on_progress(f"creating the Quix Streams environment in {venv} (pip, about a minute)")
        (venv / STAMP_NAME).unlink(missing_ok=True)
        _run(
            [_base_python(), "-m", "venv", "--clear", str(venv)],
            "python -m venv",
            _VENV_TIMEOUT_S,
        )
        _run(
            [
                str(python), "-m", "pip", "install", "--disable-pip-version-check",
                "--no-input", "--quiet", "-r", str(requirements),
            ],
            f"pip install -r {requirements}",
            _PIP_TIMEOUT_S,
        )  # fmt: skip
        (venv / STAMP_NAME).write_text(digest + "\n")
    on_progress("the Quix Streams environment is ready")
    return python


def peer_command(
    system: str, settings: Settings, on_progress: Callable[[str], None]
) -> tuple[list[str], dict[str, str]]:
    """Arguments and extra environment that start ``system`` (one of :data:`PEERS`).

    For ``quix`` this may create its environment first (see :func:`ensure_quix_python`).
    """
    if system == "passthrough":
        return [sys.executable, "-m", "streams.bench.passthrough"], {}
    if system == "quix":
        python = ensure_quix_python(settings.state_dir, on_progress)
        return [str(python), str(QUIX_APP)], {"PYTHONPATH": str(REPO_ROOT)}
    raise InfraError(f"unknown comparison system {system!r}; expected one of {', '.join(PEERS)}")
