"""Aggregation scheduling through outages that leave the ``queued`` flag behind: a stale mark
made while PostgreSQL is away, and a run that ended while Redis was away."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis import Redis

from crowd.api import create_app
from crowd.background import scheduling
from crowd.errors import Unavailable
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks, runs


def test_a_mark_made_while_postgres_is_down_does_not_block_later_runs(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    unreachable = Database("postgresql://postgres@127.0.0.1:1/postgres")  # nothing listens
    with pytest.raises(Unavailable):
        scheduling.mark_stale(unreachable, redis, pid)

    run = scheduling.mark_stale(database, redis, pid)  # PostgreSQL is back

    assert run is not None and run.status == "queued"


def test_a_queued_flag_orphaned_by_a_redis_outage_is_taken_over_by_the_catch_up(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": "t0"}, {"external_id": "t1"}])
    worker = make_worker(requester)
    answer_next(client, worker, pid, lambda t: "a")
    drain(settings)
    # A second answer whose mark is lost, and the flag of a run that ended while Redis was
    # down, kept by Redis: held, with no run queued or running in PostgreSQL.
    cut_off = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0")).test_client()
    answer_next(cut_off, worker, pid, lambda t: "b")
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    queued = f"crowd:agg:{pid}:queued"

    redis.set(queued, "1", ex=scheduling.QUEUED_TTL)  # just taken: a run is on its way
    scheduling.reap(database, redis)
    assert len(runs(client, requester, pid)) == 1  # left alone

    redis.set(queued, "1", ex=scheduling.QUEUED_TTL - 120)  # taken two minutes ago
    drain(settings)  # the worker's maintenance reaps

    history = runs(client, requester, pid)
    assert [(r["status"], r["trigger"]) for r in history] == [
        ("succeeded", "answers"),
        ("succeeded", "catch-up"),
    ]
    assert history[1]["answers"] == 2
