"""Kept answer copies of deleted projects and of replaced databases (issue 14): they are never
read, and the workers delete them (crowd.store.answer_state.sweep, at a worker's start and
every SWEEP_EVERY seconds).

Everything runs for real: answers over the API, runs and sweeps by real RQ workers on real
Redis, a database copied (``CREATE DATABASE ... TEMPLATE``) and renamed as a restore under
the same name would leave it, copies on disk in a temporary folder. What one PostgreSQL
server cannot produce (another cluster's copies, a database gone back in time) is written by
hand: folders and a meta file."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg2
from flask.testing import FlaskClient
from psycopg2.extensions import make_dsn, parse_dsn

from crowd.config import Settings
from crowd.store import accounts, answer_state, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database
from tests.aggregation.test_incremental import LABELS, answer, drain, loads, new_project
from tests.aggregation.test_live import post_tasks
from tests.conftest import app_for, auth
from workers import bootstrap


def copies(root: Path) -> dict[str, set[str]]:
    """Database folder -> the projects' folders (state keys) in it that hold a copy."""
    found: dict[str, set[str]] = {}
    for meta in root.rglob("meta.json"):
        found.setdefault(meta.parent.parent.name, set()).add(meta.parent.name)
    return found


def state_key(database: Database, pid: int) -> str:
    with database.transaction() as cur:
        cur.execute("SELECT state_key::text FROM projects WHERE id = %s", (pid,))
        (key,) = cur.fetchone() or (None,)
    return str(key)


def test_a_deleted_projects_copy_goes_at_worker_start_and_the_others_stay(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    kept, deleted = (new_project(client, make_project, requester, 6) for _ in range(2))
    worker = make_worker(requester, "w3")
    for pid in (kept, deleted):
        for _ in range(2):
            answer(client, worker, pid, "w3")
    drain(settings, tmp_path)
    keys = {state_key(database, pid) for pid in (kept, deleted)}
    ((ours, held),) = copies(tmp_path).items()
    assert held == keys
    gone = state_key(database, deleted)
    with database.transaction() as cur:
        cur.execute("DELETE FROM projects WHERE id = %s", (deleted,))
    answer(client, worker, kept, "w3")
    drain(settings, tmp_path)  # a worker starting sweeps first
    assert copies(tmp_path) == {ours: keys - {gone}}
    assert loads(client, requester, kept) == ["full: no copy kept", "incremental"]


def test_a_running_worker_sweeps_again_every_sweep_every_seconds(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    pid = new_project(client, make_project, requester, 3)
    answer(client, make_worker(requester, "w1"), pid, "w1")
    drain(settings, tmp_path)
    worker = bootstrap.make_worker(replace(settings, state_dir=tmp_path))
    worker.run_maintenance_tasks()  # its first round sweeps
    assert worker.last_swept is not None
    with database.transaction() as cur:
        cur.execute("DELETE FROM projects WHERE id = %s", (pid,))
    worker.run_maintenance_tasks()  # 15 s later: no sweep yet
    assert copies(tmp_path)
    worker.last_swept -= bootstrap.SWEEP_EVERY  # ten minutes later
    worker.run_maintenance_tasks()
    assert copies(tmp_path) == {}


def test_old_layout_leftovers_and_other_clusters_old_copies_are_swept(
    settings, database: Database, clean: None, tmp_path
) -> None:
    """Copies a run would never read: the layout before database folders, a sweep's
    leftovers, and another cluster's copies older than the full reload (a fresh one of a live
    database sharing the directory stays)."""
    old_layout = tmp_path / str(uuid.uuid4())
    leftover = tmp_path / ".deleting-0123"
    elsewhere = tmp_path / "db-42-00000001-16384"
    stale, fresh = (elsewhere / str(uuid.uuid4()) for _ in range(2))
    not_ours = tmp_path / "notes"
    for folder in (old_layout, leftover, stale, fresh, not_ours):
        folder.mkdir(parents=True)
    built = {stale: time.time() - 7200, fresh: time.time()}
    for folder, at in built.items():
        (folder / "meta.json").write_text(json.dumps({"built_at": at}))
    with database.transaction() as cur:
        deleted = answer_state.sweep(cur, tmp_path, full_reload_seconds=3600)
    assert set(deleted) == {old_layout, leftover, stale}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([elsewhere.name, "notes"])
    assert [p.name for p in elsewhere.iterdir()] == [fresh.name]


def _admin(settings: Settings) -> psycopg2.extensions.connection:
    assert settings.database_url
    admin = psycopg2.connect(make_dsn(**{**parse_dsn(settings.database_url), "dbname": "postgres"}))
    admin.autocommit = True
    return admin


def _url(settings: Settings, name: str) -> str:
    assert settings.database_url
    return str(make_dsn(**{**parse_dsn(settings.database_url), "dbname": name}))


def test_a_database_restored_under_its_name_never_uses_the_old_copy(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    """A copy of a database (its projects with the same state keys and epochs) is another
    database: its runs start from PostgreSQL, and while both live neither's sweep deletes the
    other's copies. Once the original is dropped and the copy renamed to its name (a restore
    under the same name), a worker's sweep deletes the dropped database's copies."""
    name = f"crowd_sweep_{uuid.uuid4().hex[:8]}"
    clone = f"{name}_clone"
    admin = _admin(settings)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        source = replace(settings, database_url=_url(settings, name))
        db = Database(_url(settings, name))
        migrate.upgrade(db)
        with db.transaction() as cur:
            token = accounts.create(cur, Role.REQUESTER, "req")[1]
        db.close()
        with app_for(source) as app:
            client: FlaskClient = app.test_client()
            r = client.post(
                "/api/v1/projects",
                json={"name": "p", "labels": LABELS, "overlap": 3, "gold_rate": 0.0},
                headers=auth(token),
            )
            pid = int(r.json["id"])  # type: ignore[index]
            post_tasks(client, token, pid, [{"external_id": f"t{i}"} for i in range(6)])
            r = client.post("/api/v1/workers", json={"name": "w2"}, headers=auth(token))
            worker = str(r.json["token"])  # type: ignore[index]
            for _ in range(3):
                answer(client, worker, pid, "w2")
            drain(source, tmp_path)
            assert loads(client, token, pid) == ["full: no copy kept"]
        (original,) = copies(tmp_path)

        with admin.cursor() as cur:  # the restore: a copy of every row, state keys included
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{name}"')
        restored = replace(settings, database_url=_url(settings, clone))
        with app_for(restored) as app:
            client = app.test_client()
            answer(client, worker, pid, "w2")
            drain(restored, tmp_path)
            assert loads(client, token, pid) == ["full: no copy kept", "full: no copy kept"]
        assert len(copies(tmp_path)) == 2 and original in copies(tmp_path)

        with admin.cursor() as cur:  # the original goes; the restore takes its name
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s)",
                (name, clone),
            )
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            cur.execute(f'ALTER DATABASE "{clone}" RENAME TO "{name}"')
        with app_for(source) as app:
            client = app.test_client()
            answer(client, worker, pid, "w2")
            drain(source, tmp_path)  # its start sweeps the dropped database's folder
            assert loads(client, token, pid)[-1] == "incremental"
        assert original not in copies(tmp_path) and len(copies(tmp_path)) == 1
    finally:
        with admin.cursor() as cur:
            for db_name in (name, clone):
                cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()


def test_a_copy_from_before_the_database_went_back_in_time_is_not_used(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """A copy whose snapshot saw transaction ids the database has not handed out (it was
    restored to an earlier point, on a server that does not tell its timeline) is read
    whole again."""
    pid = new_project(client, make_project, requester, 3)
    worker = make_worker(requester, "w4")
    answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    (meta_file,) = tmp_path.rglob("meta.json")
    meta = json.loads(meta_file.read_text())
    xmin, xmax, running = meta["snapshot"].split(":")
    meta["snapshot"] = f"{xmin}:{int(xmax) + 10**9}:{running}"
    meta_file.write_text(json.dumps(meta))
    answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    assert loads(client, requester, pid) == ["full: no copy kept", "full: database replaced"]


def test_a_server_that_refuses_its_identity_costs_the_transaction_nothing(
    database: Database, settings: Settings
) -> None:
    """pg_control_system() and the WAL functions refused (as a hosted PostgreSQL may): the
    database's folder is named by its oid, and the caller's transaction goes on. Everything
    here is rolled back."""
    assert settings.database_url
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            full = answer_state.database_folder(cur)
            cur.execute("SELECT system_identifier FROM pg_control_system()")
            (system,) = cur.fetchone() or (None,)
            cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            (oid,) = cur.fetchone() or (None,)
            assert full.startswith(f"db-{system}-") and full.endswith(f"-{oid}")
            role = f"crowd_refused_{uuid.uuid4().hex[:8]}"
            cur.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
            cur.execute("REVOKE EXECUTE ON FUNCTION pg_walfile_name(pg_lsn) FROM PUBLIC")
            cur.execute(f"CREATE ROLE {role}")
            cur.execute(f"SET LOCAL ROLE {role}")
            assert answer_state.database_folder(cur) == f"db-x-x-{oid}"
            cur.execute("SELECT 1")  # the transaction is still usable
            assert cur.fetchone() == (1,)
    finally:
        conn.rollback()
        conn.close()
