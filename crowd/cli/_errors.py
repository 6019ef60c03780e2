"""How every ``crowd`` command reports an error the user can fix."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    """One ``crowd: error: ...`` line on stderr, then exit status 2."""
    click.echo(f"crowd: error: {message}", err=True)
    sys.exit(2)
