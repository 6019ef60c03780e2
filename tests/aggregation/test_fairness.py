"""Fair scheduling: runs of large projects have a queue of their own (crowd.config.run_queue),
which a worker takes after the small projects' queue, but after at most
``Settings.fair_skips`` small runs while a large one waits (workers/fair.py); and a worker
started without large runs keeps going on small projects while a large run is queued. All
with real RQ workers and real aggregation runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue

from crowd import config
from crowd.api import create_app
from crowd.background.scheduling import flush_all, job_id
from crowd.config import LARGE_RUN_QUEUE, RUN_QUEUE, Settings
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks
from tests.conftest import auth
from workers.bootstrap import make_worker as rq_worker


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


def _started_in_order(database: Database, run_ids: list[int]) -> list[int]:
    """``run_ids`` in the order their runs started; every one of them succeeded."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT id, status FROM aggregation_runs WHERE id IN %s ORDER BY started_at",
            (tuple(run_ids),),
        )
        rows = cur.fetchall()
    assert [status for _, status in rows] == ["succeeded"] * len(run_ids), rows
    return [id_ for id_, _ in rows]


def _projects_with_answers(
    client: FlaskClient,
    settings: Settings,
    make_project,
    requester: str,
    worker: str,
    name: str,
    count: int,
    answers: int,
) -> list[int]:
    pids = []
    for i in range(count):
        project = make_project(
            requester, name=f"{name}{i}", labels=["a", "b"], overlap=1, gold_rate=0.0
        )
        _answered_without_runs(settings, client, requester, worker, project["id"], answers)
        pids.append(project["id"])
    return pids


@pytest.mark.parametrize("fair_skips", [0, 2])
def test_the_large_class_is_not_starved_under_a_steady_stream_of_small_runs(
    fair_skips: int,
    client: FlaskClient,
    requester: str,
    make_worker,
    make_project,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seven small projects' runs wait with the large project's, queued first: the small
    queue is busy for the large run's whole wait. With RQ's fixed order (fair_skips 0) the
    large run goes last; with the fair order it goes after exactly ``fair_skips`` small runs,
    and the other small runs keep their turn in the order they were queued."""
    monkeypatch.setattr(config, "LARGE_PROJECT_ANSWERS", 5)
    worker = make_worker(requester)
    (large,) = _projects_with_answers(client, settings, make_project, requester, worker, "L", 1, 6)
    small = _projects_with_answers(client, settings, make_project, requester, worker, "s", 7, 1)

    large_run = _ask_for_run(client, requester, large)
    small_runs = [_ask_for_run(client, requester, pid) for pid in small]
    flush_all()
    rq_worker(replace(settings, fair_skips=fair_skips)).work(burst=True)

    order = _started_in_order(database, [large_run, *small_runs])
    if fair_skips == 0:
        assert order == [*small_runs, large_run]
    else:
        assert order == [*small_runs[:fair_skips], large_run, *small_runs[fair_skips:]]


def test_small_runs_keep_going_while_a_large_run_is_queued(
    client: FlaskClient,
    requester: str,
    make_worker,
    make_project,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker started without large runs (``crowd worker --no-large-runs``) runs every small
    project's run and leaves the large one queued, for the other workers; one of those then
    runs it."""
    monkeypatch.setattr(config, "LARGE_PROJECT_ANSWERS", 5)
    worker = make_worker(requester)
    (large,) = _projects_with_answers(client, settings, make_project, requester, worker, "L", 1, 6)
    small = _projects_with_answers(client, settings, make_project, requester, worker, "s", 5, 1)
    large_run = _ask_for_run(client, requester, large)
    small_runs = [_ask_for_run(client, requester, pid) for pid in small]
    flush_all()

    small_only = rq_worker(replace(settings, fair_skips=1), large_runs=False)
    assert LARGE_RUN_QUEUE not in small_only.queue_names()
    small_only.work(burst=True)

    assert sorted(_started_in_order(database, small_runs)) == sorted(small_runs)
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    assert Queue(LARGE_RUN_QUEUE, connection=redis).job_ids == [job_id(large_run)]
    with database.transaction() as cur:
        cur.execute("SELECT status FROM aggregation_runs WHERE id = %s", (large_run,))
        assert cur.fetchone() == ("queued",)

    drain(settings)  # a worker with every queue
    assert _started_in_order(database, [large_run]) == [large_run]


def test_with_one_class_waiting_the_fair_order_is_rqs_default(
    client: FlaskClient,
    requester: str,
    make_worker,
    make_project,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs of one size class only: the fair worker takes them in the order RQ's fixed-order
    worker does (first queued, first run), for small and for large projects."""
    monkeypatch.setattr(config, "LARGE_PROJECT_ANSWERS", 5)
    worker = make_worker(requester)
    for name, answers in (("s", 1), ("L", 6)):
        pids = _projects_with_answers(
            client, settings, make_project, requester, worker, name, 4, answers
        )
        shuffled = [pids[2], pids[0], pids[3], pids[1]]
        for fair_skips in (0, 1):  # RQ's fixed order, then the fair one with its tightest bound
            runs = [_ask_for_run(client, requester, pid) for pid in shuffled]
            flush_all()
            rq_worker(replace(settings, fair_skips=fair_skips)).work(burst=True)
            assert _started_in_order(database, runs) == runs
