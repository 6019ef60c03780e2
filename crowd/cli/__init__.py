"""The ``crowd`` command: one click group, one module per family of subcommands."""

from __future__ import annotations

from typing import Any

import click

from crowd import __version__
from crowd.embedded import EmbeddedError


class _Crowd(click.Group):
    """The command group; an embedded server that cannot start is one line, not a traceback
    (exit status 2 when none is installed, 1 when one failed)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbeddedError as exc:
            click.echo(f"crowd: error: {exc}", err=True)
            ctx.exit(exc.exit_status)


@click.group(cls=_Crowd, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crowd")
def main() -> None:
    """crowd: crowdsourced labels you can trust.

    Serve the HTTP API, run aggregation workers, manage the database and tokens,
    or aggregate a CSV of answers offline.
    """


def _register() -> None:
    from crowd.cli import admin, aggregate, demo, serve

    for module in (serve, admin, aggregate, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
