"""The schema lets the projects be spread over several PostgreSQL nodes (docs/SCALING.md,
"Spreading projects over several PostgreSQL nodes").

A partitioning extension such as Citus distributes a table by one column and needs, for each
distributed table, that column in every primary key and unique index, and on both sides of
every foreign key between two distributed tables. These tests read the catalog of a database
migrated to the newest migration, so a migration that adds a table or key breaking the rule
fails here, not on a user's cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

from crowd.store import accounts, migrate, projects, tasks
from crowd.store.accounts import Role
from crowd.store.db import Cursor, Database
from crowd.store.tasks import NewTask

# Tables distributed by a column other than project_id, and why.
DISTRIBUTED_BY_OTHER = {
    # The project row itself: its id is every other table's project_id, so it is distributed
    # by id and colocated with them.
    "projects": "id",
    # An Idempotency-Key belongs to the account that sent it, not to a project (POST /projects
    # stores one too): distributed by account_id, in a colocation group of its own.
    "idempotency_keys": "account_id",
}
# Tables not distributed at all, and why.
NOT_DISTRIBUTED = {
    # Tokens and roles: read by every request and referenced from projects, assignments and
    # project_workers on every node; few rows, rarely written. A Citus reference table (a copy
    # on every node).
    "accounts": "reference",
    # The migration runner's ledger (crowd.store.migrate): one row per migration, read by the
    # runner on the coordinator only.
    "schema_migrations": "local",
}
# The group colocated with projects: every table whose rows belong to one project.
PROJECT_GROUP = "projects"


def _project(cur: Cursor, owner: int, name: str, n_tasks: int) -> int:
    """A categorical project with ``n_tasks`` tasks; its id."""
    project = projects.create(
        cur, owner, ["x", "y"], {"name": name, "overlap": 1, "lease_seconds": 60}
    )
    tasks.insert_batch(cur, project.id, 1, [NewTask(f"t{i}", {}, None) for i in range(n_tasks)])
    return project.id


def _tables(cur: Cursor) -> set[str]:
    cur.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'p')"
    )
    return {name for (name,) in cur.fetchall()}


def _distribution(cur: Cursor) -> dict[str, str]:
    """Each distributed table's distribution column: project_id unless named above."""
    tables = _tables(cur)
    return {
        t: DISTRIBUTED_BY_OTHER.get(t, "project_id") for t in tables if t not in NOT_DISTRIBUTED
    }


def _group(table: str) -> str:
    """Tables in one colocation group have their rows of one project (or account) on one node."""
    return "idempotency_keys" if table == "idempotency_keys" else PROJECT_GROUP


def test_every_table_is_per_project_or_named_with_its_reason(database: Database) -> None:
    with database.transaction() as cur:
        tables = _tables(cur)
        cur.execute(
            "SELECT c.relname, a.attnotnull, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
            " AND a.attname = 'project_id' AND NOT a.attisdropped"
        )
        project_id = {t: (notnull, kind) for t, notnull, kind in cur.fetchall()}
        cur.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'projects'::regclass AND attname = 'id'"
        )
        (id_type,) = cur.fetchone()
        cur.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = 'projects'::regclass AND confdeltype = 'c'"
            " AND conkey = ARRAY[(SELECT attnum FROM pg_attribute"
            "                     WHERE attrelid = conrelid AND attname = 'project_id')]"
        )
        to_projects = {t for (t,) in cur.fetchall()}
    named = set(DISTRIBUTED_BY_OTHER) | set(NOT_DISTRIBUTED)
    assert named <= tables, f"named tables that no longer exist: {sorted(named - tables)}"
    lacking = sorted(tables - named - set(project_id))
    assert not lacking, f"tables with no project_id and no stated reason: {lacking}"
    # Colocated tables are distributed by columns of one type; a row always has a project,
    # and goes when its project goes.
    assert {t: v for t, v in project_id.items() if v != (True, id_type)} == {}
    assert sorted(set(project_id) - to_projects) == []
    # The per-project tables are many; a catalog query that found none would pass vacuously.
    assert {"tasks", "assignments", "task_results", "webhook_deliveries"} <= set(project_id)


def test_every_primary_key_and_unique_index_includes_the_distribution_column(
    database: Database,
) -> None:
    with database.transaction() as cur:
        distribution = _distribution(cur)
        cur.execute(
            "SELECT c.relname, i.indexrelid::regclass::text,"
            " array(SELECT a.attname FROM unnest(i.indkey) k"
            "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND i.indisunique"
        )
        unique = cur.fetchall()
    checked = [(t, index, cols) for t, index, cols in unique if t in distribution]
    missing = [(t, index, cols) for t, index, cols in checked if distribution[t] not in cols]
    assert missing == []
    # Unique indexes of all kinds were read: primary keys, UNIQUE constraints, partial ones.
    names = {index for _, index, _ in checked}
    assert {
        "tasks_pkey",
        "assignments_task_id_worker_id_project_id_key",
        "model_versions_open",
        "idempotency_keys_pkey",
    } <= names


def test_every_foreign_key_between_distributed_tables_joins_their_distribution_columns(
    database: Database,
) -> None:
    with database.transaction() as cur:
        distribution = _distribution(cur)
        cur.execute(
            "SELECT conname, conrelid::regclass::text, confrelid::regclass::text,"
            " array(SELECT a.attname FROM unnest(conkey) WITH ORDINALITY k(n, i)"
            "       JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.i),"
            " array(SELECT a.attname FROM unnest(confkey) WITH ORDINALITY k(n, i)"
            "       JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.n"
            "       ORDER BY k.i)"
            " FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
        )
        keys = cur.fetchall()
    wrong = []
    for name, child, parent, columns, referenced in keys:
        if parent in NOT_DISTRIBUTED:
            # A reference table is on every node: any table may reference it.
            if NOT_DISTRIBUTED[parent] != "reference":
                wrong.append((name, "references a table kept on the coordinator"))
            continue
        if child in NOT_DISTRIBUTED:
            wrong.append((name, "a reference table cannot reference a distributed one"))
        elif _group(child) != _group(parent):
            wrong.append((name, "joins two colocation groups"))
        elif (distribution[child], distribution[parent]) not in zip(
            columns, referenced, strict=True
        ):
            wrong.append((name, f"{columns} -> {referenced} skips the distribution columns"))
    assert wrong == []
    # The composite keys are there: a task's children name it with its project.
    pairs = {
        (child, parent): (columns, referenced) for _, child, parent, columns, referenced in keys
    }
    assert pairs["assignments", "tasks"] == (["project_id", "task_id"], ["project_id", "id"])
    assert pairs["webhook_deliveries", "webhooks"] == (
        ["project_id", "webhook_id"],
        ["project_id", "id"],
    )


def test_a_row_naming_another_projects_task_is_refused(database: Database, clean: None) -> None:
    """The composite foreign keys hold a row to its task's project: an assignment filed under
    another project than its task's (which would put it on another node) is refused."""
    with database.transaction() as cur:
        owner, _ = accounts.create(cur, Role.REQUESTER, "req")
        worker, _ = accounts.create(cur, Role.WORKER, "w")
        first = _project(cur, owner.id, "a", 1)
        second = _project(cur, owner.id, "b", 0)
        cur.execute("SELECT id FROM tasks WHERE project_id = %s", (first,))
        (task,) = cur.fetchone()
    with pytest.raises(psycopg2.errors.ForeignKeyViolation), database.transaction() as cur:
        cur.execute(
            "INSERT INTO assignments (project_id, task_id, worker_id, status, expires_at)"
            " VALUES (%s, %s, %s, 'reserved', now())",
            (second, task, worker.id),
        )


@pytest.fixture()
def database_at_0019(database_url: str) -> Iterator[Database]:
    """A new database migrated as release 0019 left it, dropped afterwards."""
    name = f"crowd_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    db = Database(make_dsn(**{**parse_dsn(database_url), "dbname": name}), max_connections=2)
    try:
        migrate.upgrade(db, until=19)
        yield db
    finally:
        db.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_0020_keeps_the_rows_and_uses_unique_indexes_built_beforehand(
    database_at_0019: Database,
) -> None:
    """Upgrading a database with projects in it keeps every row and id, and an index the
    operator built beforehand with CREATE INDEX CONCURRENTLY under the name the migration's
    comment gives becomes the new key: the migration does not build it again under its lock.
    One built on other columns is refused by name, and the database stays at 0019."""
    db = database_at_0019
    with db.transaction() as cur:
        owner, _ = accounts.create(cur, Role.REQUESTER, "req")
        worker, _ = accounts.create(cur, Role.WORKER, "w")
        _project(cur, owner.id, "a", 3)
        cur.execute(
            "INSERT INTO assignments (project_id, task_id, worker_id, status, label,"
            " expires_at, answered_at)"
            " SELECT project_id, id, %s, 'answered', 0, now(), now() FROM tasks",
            (worker.id,),
        )
        cur.execute("SELECT id, task_id FROM assignments ORDER BY id")
        before = cur.fetchall()
    conn = psycopg2.connect(db.url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE UNIQUE INDEX CONCURRENTLY tasks_pkey_0020 ON tasks (id)")
    with pytest.raises(psycopg2.errors.RaiseException, match="tasks_pkey is PRIMARY KEY \\(id\\)"):
        migrate.upgrade(db)
    with conn.cursor() as cur:
        cur.execute("SELECT max(version) FROM schema_migrations")
        assert cur.fetchone()[0] == 19
        cur.execute("DROP INDEX tasks_pkey_0020")
        cur.execute("CREATE UNIQUE INDEX CONCURRENTLY tasks_pkey_0020 ON tasks (id, project_id)")
        cur.execute("SELECT 'tasks_pkey_0020'::regclass::oid")
        (built,) = cur.fetchone()
    conn.close()

    assert migrate.upgrade(db) == [m.name for m in migrate.available() if m.version > 19]
    with db.transaction() as cur:
        cur.execute("SELECT conindid FROM pg_constraint WHERE conname = 'tasks_pkey'")
        assert cur.fetchone()[0] == built
        cur.execute("SELECT id, task_id FROM assignments ORDER BY id")
        assert cur.fetchall() == before
        cur.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%%_0020'")
        assert cur.fetchone()[0] == 0
