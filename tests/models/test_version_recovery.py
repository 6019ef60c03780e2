"""Model versions that nothing would finish are recovered by the workers' sweep, as aggregation
runs are: a queued version whose job vanished with Redis is queued again and trains; a version
whose worker is killed (SIGKILL, a real `crowd worker` process) mid-training is recorded as
failed and retried, and the retry trains; a slow training is left alone."""

from __future__ import annotations

import psycopg2
from flask.testing import FlaskClient
from redis import Redis

from crowd.background import scheduling, training
from crowd.config import Settings
from crowd.store import models
from crowd.store.db import Database
from tests.aggregation.test_live import drain, post_tasks
from tests.conftest import auth
from tests.models.test_models import _answer, _project, _tasks, _versions
from tests.service.servers import crowd_worker, kill_worker, wait_for


def _trained_project(
    client: FlaskClient, requester: str, make_worker, make_project, settings
) -> int:  # type: ignore[no-untyped-def]
    """A project with a model and 12 aggregated tasks of 30, no version yet."""
    pid = _project(client, make_project, requester, retrain_every=1000)
    post_tasks(client, requester, pid, _tasks(30, seed=11))
    _answer(client, make_worker(requester), pid, 12)
    drain(settings)
    assert _versions(client, requester, pid) == []
    return pid


def _ask_for_version(client: FlaskClient, requester: str, pid: int) -> int:
    r = client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester))
    assert r.status_code == 202 and r.json["model"]["status"] == "queued"  # type: ignore[index]
    return int(r.json["model"]["id"])  # type: ignore[index]


def _predicted_by(database: Database, pid: int) -> set[int | None]:
    with database.transaction() as cur:
        cur.execute("SELECT DISTINCT model_id FROM tasks WHERE project_id = %s", (pid,))
        return {row[0] for row in cur.fetchall()}


def test_a_queued_version_whose_job_vanished_with_redis_is_queued_again_and_trains(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = _trained_project(client, requester, make_worker, make_project, settings)
    version_id = _ask_for_version(client, requester, pid)
    assert settings.redis_url
    Redis.from_url(settings.redis_url).flushdb()  # a Redis restart without persistence

    drain(settings)  # just queued: its job may still be on its way, so it is left alone
    (version,) = _versions(client, requester, pid)
    assert version["status"] == "queued"

    with database.transaction() as cur:
        cur.execute(
            "UPDATE model_versions SET created_at = now() - interval '5 minutes' WHERE id = %s",
            (version_id,),
        )
    drain(settings)  # the worker's sweep queues its job again; the worker trains it

    (version,) = _versions(client, requester, pid)
    assert version["id"] == version_id and version["trigger"] == "api"
    assert version["status"] == "succeeded" and version["error"] is None
    assert version["predicted_tasks"] == 30
    assert _predicted_by(database, pid) == {version_id}
    # the project is not blocked: the next request queues a new version at once
    assert _ask_for_version(client, requester, pid) > version_id


def test_a_training_whose_worker_is_killed_is_failed_and_retried_and_the_retry_trains(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Slow (about 12 s): a real worker is SIGKILLed mid-training, and the lost job is found
    only by the next maintenance sweep of another worker."""
    pid = _trained_project(client, requester, make_worker, make_project, settings)
    killed_id = _ask_for_version(client, requester, pid)

    _kill_worker_while_predicting(settings, database)

    (killed,) = _versions(client, requester, pid)
    assert killed["status"] == "running"  # nothing recorded its end
    wait_for(lambda: _training_lock_free(database, pid), 60, "the killed session's lock to go")
    drain(settings)  # a worker starting up sweeps: fails it, queues a retry, trains the retry

    retry, failed = _versions(client, requester, pid)
    assert failed["id"] == killed_id and failed["status"] == "failed"
    assert "stopped before it finished" in failed["error"]
    assert "a new version retries it" in failed["error"]
    assert retry["trigger"] == "retry" and retry["status"] == "succeeded", retry["error"]
    assert retry["predicted_tasks"] == 30
    assert _predicted_by(database, pid) == {retry["id"]}
    assert _ask_for_version(client, requester, pid) > retry["id"]  # nothing left open


def test_a_dead_retry_is_not_retried_again_and_a_live_training_is_left_alone(
    client, requester, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester)
    assert settings.redis_url and database.url
    redis = Redis.from_url(settings.redis_url)
    with database.transaction() as cur:
        version = models.create(cur, pid, training.RETRY, None, 0)
        assert version is not None and models.start(cur, version.project_id, version.id)

    # Its training holds the lock: slow, not dead.
    with scheduling.project_lock(database.url, pid, training.LOCK_NAMESPACE):
        assert training.reap(database, redis) == []
    # The lock is gone with its session: dead. A retry that died is not retried again (the
    # training itself may be what kills its worker, e.g. out of memory).
    assert training.reap(database, redis) == [version.id]

    (failed,) = _versions(client, requester, pid)
    assert failed["status"] == "failed" and "not retried" in failed["error"]
    assert f"POST /api/v1/projects/{pid}/models" in failed["error"]


def _kill_worker_while_predicting(settings: Settings, database: Database) -> None:
    """Start a `crowd worker` and kill -9 it (and its work-horse) while the training writes
    its predictions: a lock held here on the tasks table makes that write wait, so the kill
    lands after the version is marked running and before its end is recorded."""
    assert settings.database_url and settings.redis_url
    blocker = psycopg2.connect(settings.database_url)
    proc = None
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")
        proc = crowd_worker(settings.database_url, settings.redis_url)
        wait_for(lambda: _waiting_to_write_predictions(database), 60, "the training to predict")
        kill_worker(proc)
    finally:
        blocker.rollback()
        blocker.close()
        if proc is not None and proc.poll() is None:
            kill_worker(proc)


def _waiting_to_write_predictions(database: Database) -> bool:
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%%SET model_id%%'"
        )
        return bool(cur.fetchone()[0])


def _training_lock_free(database: Database, project_id: int) -> bool:
    """The killed worker's session, and with it the training's lock, is gone on the server."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
            " AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (training.LOCK_NAMESPACE, project_id),
        )
        return cur.fetchone()[0] == 0
