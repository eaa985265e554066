"""State directories are private (0700) however they came to exist."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from models._fs import private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_new_directory_and_its_missing_parents_are_created_0700(tmp_path: Path):
    path = private_dir(tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b"
    assert _mode(path) == 0o700


def test_a_pre_existing_0755_directory_is_narrowed_to_0700(tmp_path: Path):
    path = tmp_path / "state"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    private_dir(path)
    assert _mode(path) == 0o700


@pytest.mark.usefixtures("umask_zero")
def test_umask_zero_does_not_widen_it(tmp_path: Path):
    assert _mode(private_dir(tmp_path / "wide-open-umask")) == 0o700


def test_a_restrictive_umask_does_not_lock_the_owner_out(tmp_path: Path):
    old = os.umask(0o777)
    try:
        path = private_dir(tmp_path / "closed-umask")
    finally:
        os.umask(old)
    assert _mode(path) == 0o700
