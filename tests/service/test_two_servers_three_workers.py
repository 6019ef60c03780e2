"""Two API servers and three aggregation workers on one PostgreSQL and one Redis, as a
horizontally scaled deployment runs: they share the load and no promise breaks (issue 14).

Each `crowd serve --no-worker` has its own port and data directory, each `crowd worker` its
own data directory and its own ``CROWD_STATE_DIR`` (the answers it keeps between runs, as a
worker on a host of its own would), so a project's runs move between workers whose kept
copies differ, and every run must still publish what a full read of PostgreSQL gives.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import psycopg2
import requests
from redis import Redis
from rq import Worker
from rq.job import Job

from crowd.background.aggregation import fit
from crowd.background.scheduling import job_id
from crowd.config import Settings
from crowd.em.live import CONFIDENCE_TOL, RunResult
from crowd.store import projects, snapshot
from crowd.store.db import Database
from tests.service.load import Load, check_stored, setup_project
from tests.service.servers import CROWD, free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _service import Services, service_env, spawn, start_services, wait_healthy

PROJECTS, TASKS, WORKERS, OVERLAP = 4, 30, 6, 3
#: How close a recomputation must come to what a run published (same function, same
#: answers; only the order of the answers differs, and so the rounding of sums).
EXACT = 1e-9
#: Confusion matrices are stored rounded to 6 significant digits: half a unit in the last.
STORED_6_DIGITS = 5e-6


def _runs(database_url: str, pid: int) -> list[tuple[int, str, float, float, int, str]]:
    """``(id, status, started, finished, answers_total, load)`` of the project's runs, by
    start."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, status, extract(epoch FROM started_at), extract(epoch FROM"
                " finished_at), answers_total, load FROM aggregation_runs WHERE project_id = %s"
                " ORDER BY started_at NULLS LAST, id",
                (pid,),
            )
            return list(cur.fetchall())
    finally:
        conn.close()


def _settled(database_url: str, pid: int) -> bool:
    """Every run of the project has ended, all succeeded, and one read every answer."""
    done = _runs(database_url, pid)
    return (
        bool(done)
        and all(r[1] in ("succeeded", "failed") for r in done)
        and any(r[1] == "succeeded" and r[4] == TASKS * OVERLAP for r in done)
    )


Rows = dict[int, tuple[int, int, int]]


def _stored(database: Database, pid: int, snapshot: str | None = None) -> Rows:
    """The project's answered rows: id -> (task, worker, label); with ``snapshot`` (a
    ``pg_snapshot``), those answered by a transaction that snapshot sees."""
    visible = " AND pg_visible_in_snapshot(answered_xid, %s::pg_snapshot)" if snapshot else ""
    with database.transaction() as cur:
        cur.execute(
            "SELECT id, task_id, worker_id, label FROM assignments"
            f" WHERE project_id = %s AND status = 'answered'{visible}",
            (pid, snapshot) if snapshot else (pid,),
        )
        return {row[0]: (row[1], row[2], row[3]) for row in cur.fetchall()}


def _kept_copies(state_dir: Path) -> dict[int, tuple[str, Rows]]:
    """The answers a worker keeps, per project: the snapshot the copy says it holds (its
    meta file's), and its rows (as many as the meta file says are valid)."""
    copies: dict[int, tuple[str, Rows]] = {}
    for meta_file in state_dir.rglob("meta.json"):
        meta = json.loads(meta_file.read_text())
        rows = int(meta["rows"])
        table = np.column_stack(
            [
                np.fromfile(meta_file.parent / name, dtype="<i8", count=rows)
                for name in ("id", "task", "worker", "label")
            ]
        )
        kept = {i: (t, w, label) for i, t, w, label in table.tolist()}
        copies[int(meta["project_id"])] = (str(meta["snapshot"]), kept)
    return copies


def _full_read(database: Database, pid: int) -> tuple[snapshot.Snapshot, projects.Project, int]:
    """The input of the project's next run read whole from PostgreSQL (no kept copy), the
    project, and the run whose estimates that input warm-starts from."""
    with database.transaction() as cur:
        project = projects.get(cur, pid)
    assert project is not None
    with database.transaction() as cur:
        snap = snapshot.load(
            cur, pid, len(project.labels), exclude_banned=project.exclude_banned, state_dir=None
        )
        cur.execute("SELECT last_run_id FROM projects WHERE id = %s", (pid,))
        (last_run_id,) = cur.fetchone() or (None,)
    assert snap.load == "full: no state directory" and last_run_id is not None
    return snap, project, int(last_run_id)


def _assert_published(database: Database, pid: int, run_id: int, expected: RunResult) -> None:
    """What run ``run_id`` published equals ``expected`` within :data:`EXACT`: its class
    priors, every counted worker's confusion matrix and accuracy, and the task results it
    wrote (confusion matrices as stored: to 6 significant digits). A task result the run did
    not rewrite is one that moved by at most the
    publisher's ``CONFIDENCE_TOL`` (crowd.em.live.changed_rows), so it is compared within
    that; labels and answer counts are compared exactly everywhere."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT status, priors, warm_start, answers FROM aggregation_runs WHERE id = %s",
            (run_id,),
        )
        status, priors, warm_start, answers = cur.fetchone() or (None,) * 4
        cur.execute(
            "SELECT worker_id, run_id, answers, accuracy, confusion FROM project_workers"
            " WHERE project_id = %s",
            (pid,),
        )
        workers = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(
            "SELECT task_id, run_id, label, answers, confidence, decision FROM task_results"
            " WHERE project_id = %s",
            (pid,),
        )
        results = {row[0]: row[1:] for row in cur.fetchall()}
    assert status == "succeeded"
    assert (warm_start, answers) == (expected.warm_start, int(expected.task_answers.sum()))
    np.testing.assert_allclose(priors, expected.priors, rtol=0, atol=EXACT)
    for i, worker in enumerate(expected.worker_ids.tolist()):
        written_by, n, accuracy, confusion = workers[worker]
        assert (written_by, n) == (run_id, int(expected.worker_answers[i])), worker
        assert abs(accuracy - expected.accuracy[i]) <= EXACT, worker
        np.testing.assert_allclose(  # stored to 6 significant digits (columns.pg_array)
            np.reshape(confusion, expected.confusion[i].shape),
            expected.confusion[i], rtol=STORED_6_DIGITS, atol=EXACT,
        )  # fmt: skip
    assert set(results) == set(expected.task_ids.tolist())
    for i, task in enumerate(expected.task_ids.tolist()):
        written_by, label, n, confidence, decision = results[task]
        assert (label, n) == (int(expected.labels[i]), int(expected.task_answers[i])), task
        tol = EXACT if written_by == run_id else CONFIDENCE_TOL
        assert abs(confidence - expected.confidence[i]) <= tol, (task, written_by, run_id)
        assert abs(decision - expected.decision[i]) <= tol, (task, written_by, run_id)


def _requested_run(services: Services, pid: int) -> int:
    """Ask the API for a run of the project; its id."""
    r = requests.post(
        f"{services.base}/api/v1/projects/{pid}/aggregations",
        headers={"Authorization": f"Bearer {services.requester}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 202, r.text
    run = r.json()["run"]
    assert run is not None, "a run was still queued or running"
    return int(run["id"])


def test_two_servers_and_three_workers_share_the_load_and_keep_every_promise(
    settings: Settings, clean: None, database: Database, tmp_path: Path
) -> None:
    """Slow (15-30 s): two `crowd serve` and three `crowd worker` processes start, and 24
    simulated workers answer 4 projects through both servers until every task is full.

    Then: every acknowledged answer is stored once, no task has more answers than its
    overlap, a project's runs never overlap, the runs were spread over at least two workers
    and some read incrementally, each worker's kept copy of a project is exactly the answers
    of the PostgreSQL snapshot it records, and a run asked for at the end publishes what the
    job's own fit gives on a full read of PostgreSQL, within 1e-9."""
    assert settings.database_url and settings.redis_url
    db_url = settings.database_url
    env = service_env(db_url, settings.redis_url, tmp_path)
    # Everything starts at once (a worker takes seconds to import its numeric stack)
    state_dirs = [tmp_path / f"worker{i}" / "state" for i in range(3)]
    procs = [
        spawn(
            [CROWD, "worker"],
            {
                **env,
                "CROWD_DATA_DIR": str(state_dir.parent / "data"),
                "CROWD_STATE_DIR": str(state_dir),
            },
            tmp_path / f"worker{i}.log",
        )
        for i, state_dir in enumerate(state_dirs)
    ]
    other_port = free_port()
    other = f"http://127.0.0.1:{other_port}"
    second = spawn(
        [CROWD, "serve", "--no-worker", "--port", str(other_port)],
        {**env, "CROWD_DATA_DIR": str(tmp_path / "serve2" / "data")}, tmp_path / "serve2.log",
    )  # fmt: skip
    procs.append(second)
    redis = Redis.from_url(settings.redis_url)
    loads: list[tuple[int, Load]] = []
    try:
        services = start_services(
            CROWD, db_url, settings.redis_url, free_port(), tmp_path, workers=0
        )
        procs.append(services.serve)
        wait_healthy(second, other)
        # The answers start once the three workers listen, so runs come while answers arrive
        wait_for(lambda: len(Worker.all(connection=redis)) == 3, 60, "three workers to start")
        for _ in range(PROJECTS):
            pid, tokens = setup_project(
                services.base, services.requester, TASKS, WORKERS, overlap=OVERLAP
            )
            half = WORKERS // 2  # each project's workers split over the two servers
            loads += [
                (pid, Load(services.base, pid, tokens[:half]).start()),
                (pid, Load(other, pid, tokens[half:]).start()),
            ]
        pids = sorted({pid for pid, _ in loads})
        wanted = PROJECTS * TASKS * OVERLAP
        wait_for(lambda: sum(len(load.acked) for _, load in loads) >= wanted, 90,
                 "every task to get its answers")  # fmt: skip
        for _, load in loads:
            load.stop()
        served = [load.statuses[201] + load.statuses[200] for _, load in loads]
        assert all(n > 0 for n in served), served  # both servers took answers

        for pid in pids:
            # Every acknowledged answer stored once, counters agree, no task past its overlap
            acked = {
                aid: label for p, load in loads if p == pid for aid, label in load.acked.items()
            }
            assert check_stored(db_url, pid, acked) == TASKS * OVERLAP
            per_task = np.bincount([t for t, _, _ in _stored(database, pid).values()])
            assert per_task.max() <= OVERLAP

            # The runs catch up with every answer, one at a time per project
            wait_for(lambda pid=pid: _settled(db_url, pid), 60,
                     f"project {pid}'s runs to read every answer")  # fmt: skip
            done = _runs(db_url, pid)
            assert all(r[1] == "succeeded" for r in done), done
            for earlier, later in itertools.pairwise(done):
                assert earlier[3] <= later[2], f"two runs of project {pid} overlapped: {done}"

        # ... spread over the workers, which kept answers between runs

        def ran_by(run_id: int) -> str:
            name = Job.fetch(job_id(run_id), connection=redis).worker_name
            assert name, run_id
            return name

        all_runs = [run for pid in pids for run in _runs(db_url, pid)]
        assert len({ran_by(run[0]) for run in all_runs}) >= 2, all_runs
        assert any(run[5] == "incremental" for run in all_runs), all_runs

        # Every worker's copy of a project is exactly the answers PostgreSQL had in the
        # snapshot the copy records (the invariant incremental runs rest on)
        for state_dir in state_dirs:
            for pid, (seen_in, kept) in _kept_copies(state_dir).items():
                assert kept == _stored(database, pid, seen_in), (state_dir, pid)

        # A run asked for now publishes what the job's fit gives on a full read, read just
        # before it (a late follow-up run in between, which would warm-start it from other
        # estimates, makes the project try again)
        asked: dict[int, tuple[snapshot.Snapshot, projects.Project, int]] = {}
        pending = pids
        for _attempt in range(3):
            reads = {pid: _full_read(database, pid) for pid in pending}
            requested = {pid: _requested_run(services, pid) for pid in pending}
            for pid, run_id in requested.items():
                wait_for(lambda pid=pid, run_id=run_id: any(
                    r[0] == run_id and r[1] == "succeeded" for r in _runs(db_url, pid)
                ), 60, f"run {run_id} to succeed")  # fmt: skip
                if max(r[0] for r in _runs(db_url, pid) if r[0] < run_id) == reads[pid][2]:
                    asked[pid] = (reads[pid][0], reads[pid][1], run_id)
            pending = [pid for pid in pending if pid not in asked]
        assert not pending, f"projects {pending} kept queuing runs after their answers"
        worker_pids = [proc.proc.pid for proc in procs[:3]]
        for pid, (snap, project, run_id) in asked.items():
            expected, _ = fit(snap, project)
            _assert_published(database, pid, run_id, expected)
            # ... and the worker that ran it now keeps exactly PostgreSQL's answers
            name = ran_by(run_id)
            worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, redis)
            assert worker is not None and worker.pid in worker_pids, name
            kept_by_it = _kept_copies(state_dirs[worker_pids.index(worker.pid)])
            assert kept_by_it[pid][1] == _stored(database, pid)
    finally:
        for _, load in loads:
            load.stop()  # again after a success: a no-op
        for proc in procs:
            proc.stop()
