"""``crowd db upgrade`` and ``crowd token create``: setting a deployment up."""

from __future__ import annotations

import click

from crowd.config import Settings
from crowd.embedded import with_servers
from crowd.store import accounts, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database


def _database() -> tuple[Database, object]:
    settings, servers = with_servers(Settings.from_env())
    assert settings.database_url
    return Database(settings.database_url, max_connections=1), servers


@click.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (numbered, append-only SQL files)."""
    database, servers = _database()
    try:
        applied = migrate.upgrade(database)
        click.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")
    finally:
        database.close()
        if servers is not None:
            servers.stop()  # type: ignore[attr-defined]


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
    database, servers = _database()
    try:
        migrate.upgrade(database)
        with database.transaction() as cur:
            _, secret = accounts.create(cur, Role(role), name)
        click.echo(secret)
    finally:
        database.close()
        if servers is not None:
            servers.stop()  # type: ignore[attr-defined]


COMMANDS = [db, token]
