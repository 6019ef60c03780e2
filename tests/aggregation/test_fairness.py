"""Fair scheduling: runs of large projects have a queue of their own, which workers take only
when no smaller project's run is waiting (crowd.config.run_queue)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue

from crowd import config
from crowd.api import create_app
from crowd.background.scheduling import job_id
from crowd.config import LARGE_RUN_QUEUE, RUN_QUEUE, Settings
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks
from tests.conftest import auth


def _answered_without_runs(
    settings: Settings, client: FlaskClient, requester: str, worker: str, pid: int, n: int
) -> None:
    """Answer ``n`` tasks of ``pid`` through an API whose Redis is unreachable: the answers are
    stored, and no run is queued for them until one is asked for."""
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(n)])
    cut_off = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0")).test_client()
    for _ in range(n):
        answer_next(cut_off, worker, pid, lambda t: "a")


def _ask_for_run(client: FlaskClient, requester: str, pid: int) -> int:
    r = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert r.status_code in (200, 201, 202), r.json
    run_id: int = r.json["run"]["id"]  # type: ignore[index]
    return run_id


def test_a_small_projects_run_is_not_queued_behind_a_large_ones(
    client: FlaskClient,
    requester: str,
    make_worker,
    make_project,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config, "LARGE_PROJECT_ANSWERS", 5)  # "large" from 5 answers on
    large = make_project(requester, name="large", labels=["a", "b"], overlap=1, gold_rate=0.0)
    small = make_project(requester, name="small", labels=["a", "b"], overlap=1, gold_rate=0.0)
    worker = make_worker(requester)
    _answered_without_runs(settings, client, requester, worker, large["id"], 6)
    _answered_without_runs(settings, client, requester, worker, small["id"], 2)

    # The large project asks first ...
    large_run = _ask_for_run(client, requester, large["id"])
    small_run = _ask_for_run(client, requester, small["id"])
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    assert Queue(LARGE_RUN_QUEUE, connection=redis).job_ids == [job_id(large_run)]
    assert Queue(RUN_QUEUE, connection=redis).job_ids == [job_id(small_run)]

    drain(settings)  # one worker, both queues

    # ... and the small one's run still starts first, then the large one's
    with database.transaction() as cur:
        cur.execute(
            "SELECT id, status FROM aggregation_runs WHERE id IN %s ORDER BY started_at",
            ((large_run, small_run),),
        )
        assert cur.fetchall() == [(small_run, "succeeded"), (large_run, "succeeded")]


def test_the_size_class_follows_the_stored_answers() -> None:
    assert config.run_queue(0) == RUN_QUEUE
    assert config.run_queue(config.LARGE_PROJECT_ANSWERS - 1) == RUN_QUEUE
    assert config.run_queue(config.LARGE_PROJECT_ANSWERS) == LARGE_RUN_QUEUE
