"""Aggregation recovers from losing Redis state: answers stored while Redis was unreachable,
and queued runs whose jobs vanished, are aggregated by the next worker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from crowd.api import create_app
from crowd.background import scheduling
from crowd.background.scheduling import flush_all
from crowd.config import Settings
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks, results, runs


def test_answers_accepted_while_redis_is_down_are_aggregated_once_it_is_back(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(6)])
    worker = make_worker(requester)
    # The same API with its Redis unreachable (nothing listens on port 1).
    cut_off = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0")).test_client()
    for _ in range(6):
        answer_next(cut_off, worker, pid, lambda t: "b")  # still 201: PostgreSQL holds them
    assert runs(client, requester, pid) == []

    drain(settings)  # the worker's maintenance sees the project is behind

    (run,) = runs(client, requester, pid)
    assert run["trigger"] == "catch-up" and run["status"] == "succeeded" and run["answers"] == 6
    assert {r["label"] for r in results(client, requester, pid).values()} == {"b"}


def test_a_queued_run_whose_job_vanished_with_redis_is_requeued(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": "t0"}])
    answer_next(client, make_worker(requester), pid, lambda t: "a")
    (lost,) = runs(client, requester, pid)
    assert settings.redis_url
    Redis.from_url(settings.redis_url).flushdb()  # a Redis restart without persistence
    _queued_long_ago(database, lost["id"])

    history = _drained_history(client, requester, pid, settings)
    assert results(client, requester, pid)["t0"]["run_id"] == history[1]["id"]


def test_a_queued_run_whose_job_a_vanished_worker_had_started_is_requeued(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Redis went away just as a worker handed the run's job to its work-horse: RQ's worker
    quit, the job stayed ``started`` (Redis kept it), and the run never began."""
    pid, job = _popped_job(client, requester, make_worker, make_project, settings, database)
    job.worker_name = "a-worker-that-quit"
    job.set_status(JobStatus.STARTED)
    job.save()
    _drained_history(client, requester, pid, settings)


def test_a_queued_run_whose_job_a_vanished_worker_had_popped_is_requeued(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Redis went away just after a worker popped the run's job from its queue (Redis's
    append-only file kept the pop) and before the worker marked it started: the job stays
    ``queued`` in no queue, and no worker will ever take it."""
    pid, job = _popped_job(client, requester, make_worker, make_project, settings, database)
    assert job.get_status() == JobStatus.QUEUED
    _drained_history(client, requester, pid, settings)


def _popped_job(
    client: FlaskClient,
    requester: str,
    make_worker: Any,
    make_project: Any,
    settings: Settings,
    database: Database,
) -> tuple[int, Job]:
    """A project whose one queued run's job has been taken out of its queue, as a worker
    popping it does; the run is made old enough for the workers' sweep. Returns
    ``(project id, job)``."""
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": "t0"}])
    answer_next(client, make_worker(requester), pid, lambda t: "a")
    flush_all()
    (stranded,) = runs(client, requester, pid)
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    job = Job.fetch(scheduling.job_id(stranded["id"]), connection=redis)
    Queue(job.origin, connection=redis).remove(job)
    _queued_long_ago(database, stranded["id"])
    return pid, job


def _queued_long_ago(database: Database, run_id: int) -> None:
    with database.transaction() as cur:
        cur.execute(
            "UPDATE aggregation_runs SET created_at = now() - interval '5 minutes' WHERE id = %s",
            (run_id,),
        )


def _drained_history(
    client: FlaskClient, requester: str, pid: int, settings: Settings
) -> list[dict[str, Any]]:
    """Run a worker; the lost run is recorded failed and its retry succeeds. Returns the runs."""
    drain(settings)
    history = runs(client, requester, pid)
    assert [(r["status"], r["trigger"]) for r in history] == [
        ("failed", "answers"),
        ("succeeded", "retry"),
    ]
    assert "lost" in history[0]["error"]
    return history
