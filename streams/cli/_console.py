"""``fraudstream console``: setting up the analyst review console.

The console itself runs inside ``fraudstream feedback``; this group makes what its
settings need, so that no password is ever written down in clear.
"""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli._common import console, fail

__all__ = ["console_app"]

console_app = typer.Typer(
    help="The analyst review console (served by `fraudstream feedback`).",
    no_args_is_help=True,
)


@console_app.command("hash-password")
def hash_password(
    analyst: Annotated[str, typer.Argument(help="The analyst's sign-in name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for (hidden, twice) when not given.",
        ),
    ],
) -> None:
    """Print the argon2id hash of a password, ready for FRAUD_CONSOLE_ANALYSTS.

    FRAUD_CONSOLE_ANALYSTS is a JSON object of analyst name -> hash, e.g.
    FRAUD_CONSOLE_ANALYSTS='{"alice": "$argon2id$...", "bob": "$argon2id$..."}'.
    """
    import orjson

    from streams.console import hash_password as argon2_hash
    from streams.settings import ANALYST_NAME

    if not ANALYST_NAME.fullmatch(analyst):
        raise fail(f"analyst name {analyst!r}: use 1-64 letters, digits and . _ @ -")
    if len(password) < 8:
        raise fail("use a password of at least 8 characters")
    entry = orjson.dumps({analyst: argon2_hash(password)}).decode()
    console.print(f"FRAUD_CONSOLE_ANALYSTS='{entry}'", highlight=False, soft_wrap=True)
