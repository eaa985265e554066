"""How the bench starts its comparison systems, and when the Quix environment is (re)built.

No pip and no network here: the commands that would build the environment are recorded
by a stand-in for ``subprocess.run``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.bench import peers
from streams.bench.peers import (
    QUIX_APP,
    QUIX_REQUIREMENTS,
    STAMP_NAME,
    ensure_quix_python,
    peer_command,
    quix_venv_dir,
    requirements_digest,
)
from streams.exceptions import InfraError
from streams.settings import Settings


class FakeRun:
    """Records commands; ``python -m venv`` leaves a ``bin/python`` as the real one does."""

    def __init__(self, *, pip_fails: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.pip_fails = pip_fails

    def __call__(self, args: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if args[1:3] == ["-m", "venv"]:
            python = Path(args[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            python.write_text("")
        if self.pip_fails and "pip" in args:
            lines = "\n".join(f"line {i}" for i in range(100))
            return subprocess.CompletedProcess(
                args, 1, stdout="", stderr=f"{lines}\nNo matching dist"
            )
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("quixstreams==3.28.1\n")
    return path


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    run = FakeRun()
    monkeypatch.setattr(peers.subprocess, "run", run)
    return run


def test_the_passthrough_runs_as_a_module_of_this_interpreter():
    argv, env = peer_command("passthrough", Settings(), print)
    assert argv == [sys.executable, "-m", "streams.bench.passthrough"]
    assert env == {}


def test_the_quix_peer_runs_its_app_with_its_own_python_and_the_repository_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    built: list[Path] = []

    def fake_ensure(state_dir: Path, _on_progress: Any) -> Path:
        built.append(state_dir)
        return state_dir / "venvs" / "quix" / "bin" / "python"

    monkeypatch.setattr(peers, "ensure_quix_python", fake_ensure)
    argv, env = peer_command("quix", Settings(state_dir=tmp_path), print)

    assert built == [tmp_path]
    assert argv == [str(tmp_path / "venvs" / "quix" / "bin" / "python"), str(QUIX_APP)]
    assert QUIX_APP.name == "app.py" and QUIX_APP.is_file()
    # the app imports fraudstream's modules from the source tree
    assert env == {"PYTHONPATH": str(QUIX_APP.parents[2])}
    assert (Path(env["PYTHONPATH"]) / "operators" / "engine.py").is_file()


def test_an_unknown_system_is_refused_by_name():
    with pytest.raises(InfraError, match=r"'flink'.*passthrough, quix"):
        peer_command("flink", Settings(), print)


def test_a_missing_environment_is_created_with_pip_then_stamped(
    tmp_path: Path, requirements: Path, fake_run: FakeRun
):
    progress: list[str] = []
    python = ensure_quix_python(tmp_path, progress.append, requirements=requirements)

    venv = quix_venv_dir(tmp_path).absolute()
    assert python == venv / "bin" / "python"
    venv_call, pip_call = fake_run.calls
    assert venv_call[1:] == ["-m", "venv", "--clear", str(venv)]
    assert pip_call[:4] == [str(python), "-m", "pip", "install"]
    assert pip_call[-2:] == ["-r", str(requirements)]
    assert (venv / STAMP_NAME).read_text().strip() == requirements_digest(requirements)
    assert progress and "Quix Streams environment" in progress[0]


def test_a_stamped_environment_is_used_as_it_is(
    tmp_path: Path, requirements: Path, fake_run: FakeRun
):
    ensure_quix_python(tmp_path, print, requirements=requirements)
    fake_run.calls.clear()
    progress: list[str] = []

    python = ensure_quix_python(tmp_path, progress.append, requirements=requirements)

    assert python.exists()
    assert fake_run.calls == []
    assert progress == []


def test_changed_requirements_rebuild_the_environment(
    tmp_path: Path, requirements: Path, fake_run: FakeRun
):
    ensure_quix_python(tmp_path, print, requirements=requirements)
    requirements.write_text("quixstreams==3.28.1\nnumpy==2.4.6\n")
    fake_run.calls.clear()

    ensure_quix_python(tmp_path, print, requirements=requirements)

    assert [call[1:3] for call in fake_run.calls] == [["-m", "venv"], ["-m", "pip"]]
    stamp = (quix_venv_dir(tmp_path).absolute() / STAMP_NAME).read_text().strip()
    assert stamp == requirements_digest(requirements)


def test_an_environment_without_its_python_is_rebuilt_even_if_stamped(
    tmp_path: Path, requirements: Path, fake_run: FakeRun
):
    python = ensure_quix_python(tmp_path, print, requirements=requirements)
    python.unlink()
    fake_run.calls.clear()

    ensure_quix_python(tmp_path, print, requirements=requirements)

    assert len(fake_run.calls) == 2


def test_a_failed_pip_install_says_so_with_pips_last_lines_and_leaves_no_stamp(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(peers.subprocess, "run", FakeRun(pip_fails=True))

    with pytest.raises(InfraError, match="pip install") as failure:
        ensure_quix_python(tmp_path, print, requirements=requirements)

    message = str(failure.value)
    assert "No matching dist" in message
    assert "line 99" in message and "line 10\n" not in message  # the tail, not everything
    assert not (quix_venv_dir(tmp_path).absolute() / STAMP_NAME).exists()


def test_a_missing_requirements_file_is_a_clear_error(tmp_path: Path, fake_run: FakeRun):
    with pytest.raises(InfraError, match="source checkout"):
        ensure_quix_python(tmp_path, print, requirements=tmp_path / "nope.txt")
    assert fake_run.calls == []


def test_the_quix_requirements_pin_every_package_exactly():
    lines = [
        line.strip()
        for line in QUIX_REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    assert pins["quixstreams"] == "3.28.1"
    # what the app and the fraudstream modules it imports need at run time
    needed = {"numpy", "onnxruntime", "orjson", "pandas", "pyyaml", "redis", "structlog"}
    assert needed <= {name.lower().replace("_", "-") for name in pins}
