"""Numbered, append-only SQL migrations (``migrations/NNNN_name.sql``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg2

from crowd.store.db import Database

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Serialises concurrent `crowd db upgrade` / `crowd serve` starts against one database.
_ADVISORY_LOCK = 0x63726F7764  # "crowd"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("crowd.store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def upgrade(db: Database, until: int | None = None) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction; return their names.
    With ``until``, only those numbered up to it (a database as an older release left it).

    Uses one dedicated connection holding an advisory lock, so two processes starting at once
    (say `crowd serve` and `crowd worker`) apply each migration exactly once.
    """
    applied: list[str] = []
    conn = psycopg2.connect(db.url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK,))
            cur.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       name       text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            conn.commit()
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for migration in available():
                if migration.version in done or (until is not None and migration.version > until):
                    continue
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                conn.commit()
                applied.append(migration.name)
            cur.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK,))
            conn.commit()
    finally:
        conn.close()
    return applied
