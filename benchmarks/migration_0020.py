"""Migration 0020 (keys by project_id) on a big project: how long it locks the tables, as it
is and with its unique indexes built beforehand.

    python benchmarks/migration_0020.py [--answers 10000000] [--per-task 5] [--workers 1000]

Against the machine's PostgreSQL, in a fresh database ``crowd_bench_<hex>`` migrated to 0019
(dropped at the end unless ``--keep-db``, with its copy): one project of ``--answers``
answered assignments on ``--answers / --per-task`` tasks, each task with a published
``task_results`` row, built in SQL (``INSERT ... SELECT``); then a copy of that database
(``CREATE DATABASE ... TEMPLATE``). Then:

1. **As it is**: ``crowd.store.migrate.upgrade`` applies 0020 to the first database. The whole
   migration is one transaction holding the eight tables it changes: its time is the time
   fetches, answers and runs wait.
2. **Indexes built beforehand** (the route 0020's comment gives for big databases): the four
   ``CREATE UNIQUE INDEX CONCURRENTLY`` of that comment on the copy (timed; writes could go on
   meanwhile), then ``upgrade`` (timed: what is left under the lock).

Prints both locked times, their ratio, and the sizes of assignments' unique indexes before
(rebuilt, so as packed as the new ones) and after. No other system's figure fits beside a
migration's: the peer is the migration as it is. The server's settings are its own (the
default ``maintenance_work_mem`` sorts the index builds); the load average is printed at the
start and the end, as the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import bench_database, loadavg

from crowd.store import migrate
from crowd.store.db import Database

# The statements of 0020's comment, in its order.
PREBUILD = (
    "CREATE UNIQUE INDEX CONCURRENTLY tasks_pkey_0020 ON tasks (id, project_id)",
    "CREATE UNIQUE INDEX CONCURRENTLY assignments_pkey_0020 ON assignments (id, project_id)",
    "CREATE UNIQUE INDEX CONCURRENTLY assignments_once_0020"
    " ON assignments (task_id, worker_id, project_id)",
    "CREATE UNIQUE INDEX CONCURRENTLY task_results_pkey_0020 ON task_results (task_id, project_id)",
)
_SIZES = (
    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indrelid = 'assignments'::regclass AND i.indisunique ORDER BY 1"
)


def fill(url: str, answers: int, per_task: int, workers: int) -> None:
    """One project of ``answers`` answers, ``per_task`` by distinct workers on each task."""
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            "INSERT INTO accounts (role, name, token_hash) VALUES ('requester', 'r', sha256('r'))"
            " RETURNING id"
        )
        (owner,) = cur.fetchone()
        cur.execute(
            "INSERT INTO accounts (role, name, token_hash)"
            " SELECT 'worker', 'w' || g, sha256(('w' || g)::bytea)"
            " FROM generate_series(1, %s) g RETURNING id",
            (workers,),
        )
        first = min(w for (w,) in cur.fetchall())
        cur.execute(
            "INSERT INTO projects (owner_id, name, labels, overlap, lease_seconds)"
            " VALUES (%s, 'big', '{a,b}', %s, 60) RETURNING id",
            (owner, per_task),
        )
        (project,) = cur.fetchone()
        cur.execute(
            "INSERT INTO tasks (project_id, external_id, data, target, taken, answers)"
            " SELECT %s, 't' || g, '{}', %s, %s, %s FROM generate_series(1, %s) g",
            (project, per_task, per_task, per_task, answers // per_task),
        )
        # Worker (7 id + 131 k) mod workers: distinct for the k of one task (131 is prime).
        cur.execute(
            "INSERT INTO assignments (project_id, task_id, worker_id, status, label,"
            " expires_at, answered_at)"
            " SELECT %s, t.id, %s + ((t.id * 7 + k * 131) %% %s), 'answered',"
            " ((t.id + k) %% 2)::smallint, now(), now()"
            " FROM tasks t, generate_series(0, %s) k",
            (project, first, workers, per_task - 1),
        )
        cur.execute(
            "INSERT INTO task_results (task_id, project_id, run_id, label, confidence, decision,"
            " answers, posteriors) SELECT id, project_id, 1, 0, 0.9, 0.9, %s, '{0.9,0.1}'"
            " FROM tasks",
            (per_task,),
        )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        cur.execute("REINDEX TABLE assignments")  # packed as a new build is, for the sizes
    conn.close()


def sizes(url: str) -> dict[str, int]:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(_SIZES)
        found = {name: int(size) for name, size in cur.fetchall()}
    conn.close()
    return found


def timed_upgrade(url: str) -> float:
    db = Database(url, max_connections=1)
    try:
        start = time.perf_counter()
        applied = migrate.upgrade(db)
        took = time.perf_counter() - start
    finally:
        db.close()
    assert applied == ["0020_keys_by_project.sql"], applied
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--per-task", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    assert args.per_task <= args.workers
    print(f"load average at start: {loadavg()}")
    with bench_database(args.postgres, args.keep_db) as url:
        db = Database(url, max_connections=1)
        migrate.upgrade(db, until=19)
        db.close()
        start = time.perf_counter()
        fill(url, args.answers, args.per_task, args.workers)
        print(f"{args.answers:,} answers on {args.answers // args.per_task:,} tasks built in"
              f" {time.perf_counter() - start:.0f} s")  # fmt: skip
        before = sizes(url)
        name = parse_dsn(url)["dbname"]
        admin = psycopg2.connect(args.postgres)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}_copy" TEMPLATE "{name}"')
        copy = make_dsn(**{**parse_dsn(url), "dbname": f"{name}_copy"})
        try:
            plain = timed_upgrade(url)
            conn = psycopg2.connect(copy)
            conn.autocommit = True
            start = time.perf_counter()
            with conn.cursor() as cur:
                for statement in PREBUILD:
                    cur.execute(statement)
            conn.close()
            prebuild = time.perf_counter() - start
            prebuilt = timed_upgrade(copy)
            after = sizes(url)
        finally:
            with admin.cursor() as cur:
                if args.keep_db:
                    print(f"kept database {name}_copy")
                else:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}_copy" WITH (FORCE)')
            admin.close()
    print(f"0020 as it is: tables locked {plain:.1f} s")
    print(f"0020 with its indexes built beforehand: CREATE INDEX CONCURRENTLY {prebuild:.1f} s"
          f" (writes go on), then tables locked {prebuilt:.1f} s")  # fmt: skip
    print(f"locked time, built beforehand / as it is: {prebuilt / plain:.2f}")
    mib = 1 << 20
    print("assignments' unique indexes, MiB: before "
          + ", ".join(f"{k} {v / mib:.0f}" for k, v in before.items())
          + "; after " + ", ".join(f"{k} {v / mib:.0f}" for k, v in after.items()))  # fmt: skip
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
