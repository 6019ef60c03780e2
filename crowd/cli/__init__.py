"""The ``crowd`` command: one click group, one module per family of subcommands."""

from __future__ import annotations

import importlib
from typing import Any

import click

from crowd import __version__
from crowd.embedded import EmbeddedError

#: Each subcommand and the module that defines it. A module is imported only when one of its
#: commands runs (or ``--help`` lists them all), so ``crowd serve`` does not pay for the
#: numerics that ``crowd aggregate`` needs.
_MODULES = {
    "serve": "serve",
    "worker": "serve",
    "db": "admin",
    "token": "admin",
    "aggregate": "aggregate",
    "evaluate": "aggregate",
    "demo": "demo",
}


class _Crowd(click.Group):
    """The command group; an embedded server that cannot start is one line, not a traceback
    (exit status 2 when none is installed, 1 when one failed)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _MODULES:
            return None
        module = importlib.import_module(f"crowd.cli.{_MODULES[cmd_name]}")
        commands: list[click.Command] = module.COMMANDS
        return next(c for c in commands if c.name == cmd_name)

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
