"""``crowd db upgrade`` and ``crowd token create``: setting a deployment up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from crowd.config import Settings
from crowd.embedded import servers_for
from crowd.store import accounts, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database


@contextmanager
def _database() -> Iterator[Database]:
    """The configured database (or the embedded one), released when the block ends."""
    with servers_for(Settings.from_env(), redis=False) as (settings, _started):
        assert settings.database_url
        database = Database(settings.database_url, max_connections=1)
        try:
            yield database
        finally:
            database.close()


@click.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (numbered, append-only SQL files)."""
    with _database() as database:
        applied = migrate.upgrade(database)
    click.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["admin", "requester"]),
    required=True,
    help="admin sees every project; requester sees its own.",
)
@click.option("--name", default="", help="A name to recognise the token's owner by.")
def token_create(role: str, name: str) -> None:
    """Create an account and print its token (only the token, on stdout)."""
    with _database() as database:
        migrate.upgrade(database)
        with database.transaction() as cur:
            _, secret = accounts.create(cur, Role(role), name)
    click.echo(secret)


COMMANDS = [db, token]
