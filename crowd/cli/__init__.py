"""The ``crowd`` command: one click group, one module per family of subcommands."""

from __future__ import annotations

import click

from crowd import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
