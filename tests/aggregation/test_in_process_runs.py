"""What cuts a small project's job cost (benchmarks/job_cost.py): its run goes in the worker's
own process, and what a worker asks or opens once is kept between runs only while it cannot
change. Real RQ workers, PostgreSQL and Redis. (A worker killed during an in-process run is
retried: tests/service/test_aggregation_faults.py, whose projects are small.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg2
from redis import Redis
from rq import Queue
from rq.job import Job

from crowd.background import scheduling
from crowd.config import LARGE_RUN_QUEUE, RUN_QUEUE, Settings
from crowd.store import answer_state
from crowd.store.db import Database
from workers.bootstrap import make_worker


def _pid_of_job(redis: Redis, queue: str, settings: Settings) -> int:
    """Queue a job that returns its process id on ``queue``, run a burst worker made with
    ``settings`` in this process, and return the job's process id."""
    job = Queue(queue, connection=redis).enqueue("os.getpid", result_ttl=600)
    make_worker(settings).work(burst=True)
    pid = Job.fetch(job.id, connection=redis).return_value()
    assert isinstance(pid, int), pid
    return pid


def test_small_runs_go_in_the_workers_process_and_other_jobs_in_a_work_horse(
    settings: Settings, clean: None
) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    assert _pid_of_job(redis, RUN_QUEUE, settings) == os.getpid()
    assert _pid_of_job(redis, LARGE_RUN_QUEUE, settings) != os.getpid()
    forking = replace(settings, fork_small_runs=True)  # CROWD_FORK_SMALL_RUNS=1
    assert _pid_of_job(redis, RUN_QUEUE, forking) != os.getpid()


def test_a_stop_command_during_an_in_process_run_leaves_the_worker_alive(
    settings: Settings, clean: None
) -> None:
    """RQ's stop-job command kills the work-horse; with the run in the worker's own process
    there is none, and RQ's kill would signal the worker's own process group. In a process
    of its own session (so a regression kills nothing else): the worker stays alive."""
    assert settings.redis_url and settings.database_url
    script = (
        "import signal, sys\n"
        "from crowd.config import Settings\n"
        "from workers.bootstrap import make_worker\n"
        "worker = make_worker(Settings.from_env())\n"
        "worker._stopped_job_id = 'crowd-run-1'\n"
        "worker.kill_horse()\n"
        "print('alive', worker._stopped_job_id)\n"
    )
    env = {
        **os.environ,
        "CROWD_DATABASE_URL": settings.database_url,
        "CROWD_REDIS_URL": settings.redis_url,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "alive None", done


def _lock_holders(database: Database, project_id: int) -> list[int]:
    """Backend pids holding the project's run lock (in this database)."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (scheduling.LOCK_NAMESPACE, project_id),
        )
        return [row[0] for row in cur.fetchall()]


def test_the_run_lock_connection_is_kept_between_runs_and_replaced_when_the_server_ends_it(
    settings: Settings, database: Database, clean: None
) -> None:
    url = settings.database_url
    assert url
    with scheduling.project_lock(url, 7):
        (first,) = _lock_holders(database, 7)
    assert _lock_holders(database, 7) == []  # released at the block's end
    with scheduling.project_lock(url, 8):
        assert _lock_holders(database, 8) == [first]  # the same session, no new connection
    with database.transaction() as cur:  # the server ends it (a restart, an idle timeout)
        cur.execute("SELECT pg_terminate_backend(%s)", (first,))
    with scheduling.project_lock(url, 7):
        (second,) = _lock_holders(database, 7)
    assert second != first


def test_a_lock_block_that_raises_releases_the_lock(
    settings: Settings, database: Database, clean: None
) -> None:
    url = settings.database_url
    assert url
    try:
        with scheduling.project_lock(url, 9):
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert _lock_holders(database, 9) == []


def test_the_database_folder_is_asked_once_per_pooled_session(database: Database) -> None:
    """The second ask in a session answers from what the first one found, even where the
    server would now refuse (rolled back: nothing here stays)."""
    with database.transaction() as cur:
        cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        (oid,) = cur.fetchone() or (None,)
    try:
        with database.transaction() as cur:
            full = answer_state.database_folder(cur)
            assert full.endswith(f"-{oid}") and not full.startswith("db-x-")
            role = f"crowd_refused_{uuid.uuid4().hex[:8]}"
            cur.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
            cur.execute(f"CREATE ROLE {role}")
            cur.execute(f"SET LOCAL ROLE {role}")
            assert answer_state.database_folder(cur) == full  # not asked again
            raise _RollBack
    except _RollBack:
        pass
    # A connection outside a pool (no session memory) asks every time, as before.
    assert database.url
    conn = psycopg2.connect(database.url)
    try:
        with conn.cursor() as cur:
            assert answer_state.database_folder(cur) == full
    finally:
        conn.close()


class _RollBack(Exception):
    """Raised to roll a test's transaction back."""
