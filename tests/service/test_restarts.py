"""Restarting PostgreSQL or Redis under load, with real processes: gunicorn (`crowd serve`),
an RQ worker (`crowd worker`) and servers of the test's own, which it stops and starts again.
No acknowledged answer is lost, the API answers 503 with Retry-After while PostgreSQL is away
and recovers by itself, and aggregation catches up once Redis is back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
import requests
from redis import Redis
from rq import Worker

from crowd.background import scheduling
from tests.service.load import Load, check_stored, setup_project
from tests.service.servers import Crowd, OwnPostgres, OwnRedis, wait_for


@pytest.fixture()
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    yield pg
    pg.close()


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path, appendonly=True)
    redis.start()
    yield redis
    redis.kill()


def _latest_run(database_url: str, pid: int) -> tuple[str, str, int | None] | None:
    """(status, trigger, answers read) of the project's newest run."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT status, trigger, answers_total FROM aggregation_runs"
                " WHERE project_id = %s ORDER BY id DESC LIMIT 1",
                (pid,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return None if row is None else (row[0], row[1], row[2])


def _runs(database_url: str, pid: int) -> list[tuple[object, ...]]:
    """The project's last runs, newest first, for a failure message."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, status, trigger, answers_total, error FROM aggregation_runs"
                " WHERE project_id = %s ORDER BY id DESC LIMIT 8",
                (pid,),
            )
            return list(cur.fetchall())
    finally:
        conn.close()


def _succeeded(database_url: str, pid: int) -> bool:
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM aggregation_runs WHERE project_id = %s"
                " AND status = 'succeeded'",
                (pid,),
            )
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def _caught_up(database_url: str, pid: int, stored: int) -> bool:
    run = _latest_run(database_url, pid)
    return run is not None and run[0] == "succeeded" and run[2] == stored


def test_postgres_restart_under_load_gives_503_with_retry_after_and_recovers_by_itself(
    own_postgres: OwnPostgres, servers: tuple[str, str], tmp_path: Path
) -> None:
    """Slow (about 20 s): a PostgreSQL server of the test's own is stopped and started again
    under load, and the service must recover by itself."""
    url = own_postgres.create_database(f"crowd_faults_{uuid.uuid4().hex[:8]}")
    crowd = Crowd(url, servers[1], tmp_path)
    requester = crowd.token()  # also migrates
    try:
        crowd.serve()
        worker = crowd.worker()
        pid, tokens = setup_project(crowd.base, requester, 400, 8, lease_seconds=30)
        serve_pids = sorted(p.pid for p in _gunicorn(crowd))
        load = Load(crowd.base, pid, tokens).start()
        wait_for(lambda: load.answered_since(0) >= 40, 60, "answers before the restart")

        own_postgres.stop()
        wait_for(lambda: load.statuses[503] >= 5, 30, "503s while PostgreSQL is down")
        time.sleep(2)  # a few seconds down, under load
        health = requests.get(crowd.base + "/healthz", timeout=10)
        assert health.status_code == 503 and health.headers["Retry-After"]
        own_postgres.start()

        before = load.answered_since(0)
        wait_for(lambda: load.answered_since(before) >= 40, 60, "answers after the restart")
        load.stop()
        assert sorted(p.pid for p in _gunicorn(crowd)) == serve_pids, "gunicorn was restarted"
        assert set(load.statuses) <= {200, 201, 204, 409, 503}, load.statuses
        assert load.missing_retry_after == 0
        stored = check_stored(url, pid, load.acked)
        assert stored >= len(load.acked) > 80

        # The same RQ worker process survived and aggregates every stored answer.
        wait_for(lambda: _caught_up(url, pid, stored), 90, "a run covering every answer")
        assert worker.poll() is None, crowd.log("worker")
    finally:
        crowd.stop()


def _gunicorn(crowd: Crowd) -> list[psutil.Process]:
    return psutil.Process(crowd.procs["serve"].pid).children(recursive=True)


def test_redis_restart_under_load_loses_no_answer_and_aggregation_catches_up(
    own_redis: OwnRedis, settings, clean: None, tmp_path: Path
) -> None:
    """Slow (up to a minute): a Redis server of the test's own is restarted under load, and the
    test waits for the worker to come back and every answer to be aggregated."""
    url = settings.database_url
    crowd = Crowd(url, own_redis.url, tmp_path)
    requester = crowd.token()
    try:
        crowd.serve()
        worker = crowd.worker()
        pid, tokens = setup_project(crowd.base, requester, 600, 8, lease_seconds=30)
        # The worker imports numpy, scipy and scikit-learn before it registers: under a slow
        # start the load could otherwise finish the project before the first run.
        with Redis.from_url(own_redis.url) as r:
            wait_for(lambda: Worker.count(connection=r) > 0, 60, "the worker to register")
        load = Load(crowd.base, pid, tokens).start()
        wait_for(lambda: load.answered_since(0) >= 40, 60, "answers before the restart")
        wait_for(lambda: _succeeded(url, pid), 60, "a first aggregation run")

        own_redis.kill()
        before = load.answered_since(0)
        wait_for(lambda: load.answered_since(before) >= 40, 60, "answers while Redis is down")
        load.stop()
        time.sleep(1)  # the API's pending stale marks fail against the dead Redis
        own_redis.start()

        # PostgreSQL holds the answers: they were accepted all along (a 503 would have to
        # carry Retry-After)
        assert set(load.statuses) <= {200, 201, 204, 409, 503}, load.statuses
        assert load.missing_retry_after == 0
        stored = check_stored(url, pid, load.acked)
        # No answer comes after the restart: only the workers' catch-up can aggregate them.
        try:
            wait_for(lambda: _caught_up(url, pid, stored), 90, "a run covering every answer")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nstored {stored}; runs: {_runs(url, pid)}\n{crowd.log('worker')[-3000:]}"
            ) from None
        assert worker.poll() is None, crowd.log("worker")
    finally:
        crowd.stop()


def test_redis_dying_while_a_run_is_in_progress_leaves_the_worker_running_and_caught_up(
    own_redis: OwnRedis, settings, clean: None, tmp_path: Path
) -> None:
    """Slow (about 30 s): Redis dies while a run is held in progress, and the worker must
    restart itself and catch up once Redis is back."""
    url = settings.database_url
    crowd = Crowd(url, own_redis.url, tmp_path)
    requester = crowd.token()
    blocker = psycopg2.connect(url)
    blocker.autocommit = True
    try:
        crowd.serve()
        worker = crowd.worker()
        pid, tokens = setup_project(crowd.base, requester, 40, 3, lease_seconds=30)
        # Hold the project's run lock: the next run's work-horse waits for it, mid-run.
        with blocker.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (scheduling.LOCK_NAMESPACE, pid))
        load = Load(crowd.base, pid, tokens).start()
        wait_for(lambda: load.answered_since(0) >= 30, 60, "answers")
        load.stop()
        wait_for(lambda: _waiting_for_run_lock(url), 60, "a run waiting for its lock")

        own_redis.kill()
        with blocker.cursor() as cur:  # the run goes on, and ends, without Redis
            cur.execute("SELECT pg_advisory_unlock_all()")
        time.sleep(3)
        own_redis.start()

        stored = check_stored(url, pid, load.acked)
        wait_for(lambda: _caught_up(url, pid, stored), 90, "a run covering every answer")
        assert worker.poll() is None, crowd.log("worker")
    finally:
        blocker.close()
        crowd.stop()


def _waiting_for_run_lock(database_url: str) -> bool:
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%%pg_advisory_lock%%'"
            )
            return bool(cur.fetchone()[0])
    finally:
        conn.close()
