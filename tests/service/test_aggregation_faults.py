"""Faults in aggregation, with real `crowd worker` processes: a killed run publishes nothing
and is retried, and the retry publishes what a clean run would; a failing run is recorded
with its error."""

from __future__ import annotations

import subprocess
import time

import psycopg2

from crowd.config import Settings
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks, runs
from tests.conftest import auth
from tests.service.servers import crowd_worker, kill_worker


def _worker(settings: Settings, *args: str) -> subprocess.Popen[str]:
    assert settings.database_url and settings.redis_url
    return crowd_worker(settings.database_url, settings.redis_url, *args)


def _wait_for(check, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_worker_killed_while_publishing_leaves_nothing_and_the_run_is_retried(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Slow (about 10 s): a real worker is SIGKILLed while publishing, and the retry comes from
    another worker's maintenance sweep."""
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(10)])
    for name in ("w0", "w1"):
        worker = make_worker(requester, name)
        for _ in range(10):
            answer_next(client, worker, pid, lambda t: "a")
    (queued,) = runs(client, requester, pid)

    _kill_worker_while_publishing(settings, database)

    # Nothing of the killed run is visible.
    with database.transaction() as cur:
        cur.execute("SELECT count(*) FROM task_results")
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT status, last_run_id FROM aggregation_runs, projects WHERE projects.id = %s"
            " AND aggregation_runs.id = %s",
            (pid, queued["id"]),
        )
        assert cur.fetchone() == ("running", None)
    results = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json
    assert all(r["run_id"] is None for r in results["results"])

    # A worker starting up notices the dead run, records it failed and runs a retry.
    _wait_for(lambda: _lock_released(database, pid))
    drain(settings)
    history = runs(client, requester, pid)
    assert [(r["status"], r["trigger"]) for r in history] == [
        ("failed", "answers"),
        ("succeeded", "retry"),
    ]
    assert "stopped before it finished" in history[0]["error"]
    assert history[1]["answers"] == 20
    results = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json
    assert {r["run_id"] for r in results["results"]} == {history[1]["id"]}


def _lock_released(database: Database, project_id: int) -> bool:
    """The killed worker's session (and so its run lock) is gone on the server side."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (project_id,),
        )
        return cur.fetchone()[0] == 0


def test_a_failing_run_is_recorded_with_its_error_and_shown_by_the_api(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Slow (about 10 s): a real RQ worker runs the failing job, with RQ's retry and failure
    bookkeeping, in its own process (a small project's run), and goes on to the next run."""
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": "t0"}])
    with database.transaction() as cur:  # a method this version does not know
        cur.execute("UPDATE projects SET method = 'from-the-future' WHERE id = %s", (pid,))
    worker = make_worker(requester)
    answer_next(client, worker, pid, lambda t: "a")
    time.sleep(0.2)  # the failing run is queued first (the stale marks go every 50 ms)
    healthy = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, healthy, [{"external_id": "t0"}])
    answer_next(client, worker, healthy, lambda t: "a")

    proc = _worker(settings, "--burst")
    out, _ = proc.communicate(timeout=120)
    (run,) = runs(client, requester, pid)
    assert run["status"] == "failed" and run["finished_at"], out
    assert "from-the-future" in run["error"]
    (next_run,) = runs(client, requester, healthy)
    assert next_run["status"] == "succeeded", out
    assert next_run["created_at"] > run["created_at"]
    # the project is not stuck: a new request queues a new run
    again = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert again.status_code == 202 and again.json["run"]["status"] == "queued"


def _choose(worker: int, external_id: str) -> str:
    """Task ``t<i>`` is truly "abc"[i % 3]. w0 is always right, w1 says "c" on t4 and t10,
    w2 always says "b": every task has a clear majority, the workers clearly differ."""
    i = int(external_id[1:])
    if worker == 2:
        return "b"
    if worker == 1 and i in (4, 10):
        return "c"
    return "abc"[i % 3]


def _answer_all(client, pid: int, workers: list[str]) -> None:  # type: ignore[no-untyped-def]
    for w, worker in enumerate(workers):
        for _ in range(12):
            answer_next(client, worker, pid, lambda t, w=w: _choose(w, t))


def _published(client, token: str, pid: int) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    got = client.get(f"/api/v1/projects/{pid}/results?posteriors=true", headers=auth(token)).json
    labels = {
        r["external_id"]: (r["label"], r["confidence"], r["posteriors"]) for r in got["results"]
    }
    workers = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(token)).json
    estimates = {w["id"]: (w["accuracy"], w["confusion"]) for w in workers["workers"]}
    return labels, estimates


def test_results_after_a_killed_run_is_retried_equal_a_clean_runs(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    """Slow (about 15 s): two projects are aggregated by real workers, one of them SIGKILLed
    mid-run and retried by the sweep."""
    spec = {"labels": ["a", "b", "c"], "overlap": 3, "gold_rate": 0.0, "method": "ds"}
    tasks = [{"external_id": f"t{i}"} for i in range(12)]
    workers = [make_worker(requester, f"w{i}") for i in range(3)]
    killed = make_project(requester, **spec)["id"]
    post_tasks(client, requester, killed, tasks)
    _answer_all(client, killed, workers)
    runs(client, requester, killed)  # its run is queued

    _kill_worker_while_publishing(settings, database)

    # The same answers in a second project, aggregated by a run nobody disturbs.
    clean = make_project(requester, **spec)["id"]
    post_tasks(client, requester, clean, tasks)
    _answer_all(client, clean, workers)
    _wait_for(lambda: _lock_released(database, killed))
    drain(settings)

    history = runs(client, requester, killed)
    assert [(r["status"], r["trigger"]) for r in history] == [
        ("failed", "answers"),
        ("succeeded", "retry"),
    ]
    assert [r["status"] for r in runs(client, requester, clean)] == ["succeeded"]
    after_retry, clean_run = (
        _published(client, requester, killed),
        _published(client, requester, clean),
    )
    assert after_retry == clean_run
    assert len(after_retry[0]) == 12 and len(after_retry[1]) == 3  # type: ignore[arg-type]


def _kill_worker_while_publishing(settings: Settings, database: Database) -> None:
    """Start a worker and kill -9 it (and its work-horse) inside the run's publish
    transaction: a lock held here makes that transaction wait, so the kill lands in it."""
    assert settings.database_url
    blocker = psycopg2.connect(settings.database_url)
    proc = None
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE task_results IN EXCLUSIVE MODE")
        proc = _worker(settings)
        _wait_for(lambda: _waiting_to_publish(database))
        kill_worker(proc)
    finally:
        blocker.rollback()
        blocker.close()
        if proc is not None and proc.poll() is None:
            kill_worker(proc)


def _waiting_to_publish(database: Database) -> bool:
    """A run's publish transaction waits for a lock (in this database: the server may be
    shared with other test sessions)."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
            " AND query LIKE '%%INSERT INTO task_results%%'"
        )
        return bool(cur.fetchone()[0])
