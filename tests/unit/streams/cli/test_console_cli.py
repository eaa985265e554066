"""``fraudstream console hash-password``: the one way an analyst account is written down."""

from __future__ import annotations

import re

import orjson
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from streams.cli import app
from streams.console import Analysts
from streams.settings import Settings


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "400"})
    return result.exit_code, result.output


def _entry(output: str) -> dict[str, str]:
    match = re.search(r"FRAUD_CONSOLE_ANALYSTS='(\{.*\})'", output)
    assert match, output
    entry: dict[str, str] = orjson.loads(match.group(1))
    return entry


def test_the_printed_setting_lets_the_analyst_sign_in_and_holds_no_password() -> None:
    code, output = run("console", "hash-password", "alice", "--password", "s3cret-enough")
    assert code == 0, output
    entry = _entry(output)
    assert "s3cret-enough" not in output
    settings = Settings(console_analysts=entry)  # the value validates as a setting
    analysts = Analysts(settings.console_analysts)
    assert analysts.verify("alice", "s3cret-enough")
    assert not analysts.verify("alice", "s3cret-enougH")


def test_the_password_is_asked_twice_and_hidden() -> None:
    code, output = run("console", "hash-password", "bob", stdin="pass-word-1\npass-word-1\n")
    assert code == 0, output
    assert "pass-word-1" not in output
    assert Analysts(Settings(console_analysts=_entry(output)).console_analysts).verify(
        "bob", "pass-word-1"
    )


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [("bob", "short", "at least 8"), ("no spaces", "long-enough-1", "analyst name")],
)
def test_bad_names_and_short_passwords_are_refused(name: str, password: str, message: str) -> None:
    code, output = run("console", "hash-password", name, "--password", password)
    assert code == 1
    assert message in output


def test_a_plain_password_in_the_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(console_analysts={"alice": "hunter2-plain"})
    assert "argon2 hash" in str(caught.value)
    assert "hunter2-plain" not in str(caught.value)
