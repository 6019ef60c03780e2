"""Runs queued by an older crowd survive an upgrade: the job functions now take the project
as well as the run (so every statement names its project, docs/SCALING.md), and a job queued
before the upgrade carries the run alone. Its run must still end published, not stay queued."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis
from rq import Queue

from crowd.background import scheduling
from crowd.config import RUN_QUEUE
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks, results, runs


def test_a_run_queued_by_the_previous_version_is_retried_and_published(
    client, requester, make_worker, make_project, settings, database: Database, monkeypatch
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": "t0"}, {"external_id": "t1"}])
    worker = make_worker(requester)
    answer_next(client, worker, pid, lambda t: "a")
    answer_next(client, worker, pid, lambda t: "b")
    scheduling.flush_all()
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    (run,) = runs(client, requester, pid)
    assert run["status"] == "queued"
    # The job as the previous version queued it: the same id, the run's id alone.
    queue = Queue(RUN_QUEUE, connection=redis)
    queue.remove(scheduling.job_id(run["id"]))
    queue.enqueue(
        scheduling.AGGREGATE_JOB, run["id"], job_id=scheduling.job_id(run["id"]), result_ttl=600
    )
    # Judge queued runs lost at once rather than after 20 s (the forked worker inherits it).
    monkeypatch.setattr(scheduling, "LOST_AFTER", timedelta(0))

    drain(settings)  # the new worker cannot run the old job: it fails, the run stays queued
    drain(settings)  # the next worker's reap finds the run's job will never run: retried

    history = runs(client, requester, pid)
    assert [(r["status"], r["trigger"]) for r in history] == [
        ("failed", "answers"),
        ("succeeded", "retry"),
    ], history
    assert history[0]["error"] == "its queued job was lost; run retried"
    assert {e: r["label"] for e, r in results(client, requester, pid).items()} == {
        "t0": "a",
        "t1": "b",
    }
