"""Freshness: from an answer's 201 to the first results poll that reflects it, at 1M answers.

    .venv/bin/python benchmarks/freshness.py [--type categorical|multilabel|numeric|pairwise]
                                             [--tasks 200000 --answers-per-task 5 --workers 1000
                                              --labels 4 --items 5000 --rate 30 --clients 4
                                              --seconds 60 --poll-interval 0.2 --rq-workers 1]
                                             [--since-from response|probe] [--breakdown-runs 3]
                                             [--keep-db]

What happens, in one run and against the machine's PostgreSQL and Redis (under 2 minutes on an
otherwise idle 2-core machine with the defaults, up to 4 when other work shares it):

1. A fresh database ``bench_fresh_<hex>`` is created (dropped at the end; ``--keep-db`` keeps
   it) and Redis db ``--redis`` (default 13) is flushed, before and after. ``crowd token create
   --role requester`` makes the requester token, then ``crowd serve --no-worker`` starts the API
   with its default gunicorn shape.
2. Over HTTP: one project of ``--type`` (default categorical; docs/TYPES.md), overlap
   ``--answers-per-task``: categorical and multilabel with ``--labels`` labels, numeric on
   the scale 0-100, pairwise comparing two of ``--items`` items drawn at random per task;
   ``--tasks`` tasks in batches of 10,000, and ``--workers`` worker accounts.
3. Bulk load, straight into PostgreSQL (COPY): ``--answers-per-task`` answers per task from
   distinct workers (each worker has an accuracy drawn from U(0.55, 0.95); what an answer
   is then, per type: benchmarks/_open_loop.draw_answers), as ``answered`` assignment rows,
   with ``tasks.answers`` = ``tasks.taken`` = that count (= ``target``). 200,000 x 5 = 1M
   answers by default.
4. ``--rq-workers`` ``crowd worker`` processes start (default 1: runs of one project never
   overlap, and on 2 cores the API, PostgreSQL and the client share the rest); one run is asked
   for (POST /aggregations) and waited for, so the measurement starts warm (the next run has
   the previous run's estimates to start from). Then PATCH overlap + 1 gives every task one
   open slot.
5. Measured for ``--seconds`` (all HTTP through crowd.client, the measured clients with one
   attempt per request: no retries): ``--clients`` threads, each a worker (its own token), submit
   answers open-loop at ``--rate`` answers/s in total (fetch, then answer: two requests; a
   random answer of the project's type) and record each 201's time. One poller thread sweeps GET /results?since_run=S (all pages, 1000
   rows each) every ``--poll-interval`` seconds. An answer is reflected when a polled row of
   its task has ``aggregated_answers`` >= the task's answer count with it; its latency is the
   time the page holding that row arrived minus the 201's time. After the window, up to
   ``--drain`` more seconds for the last answers to show; any still unseen are reported (and
   make the exit status 1). S for the next sweep: ``--since-from response`` (default) takes
   ``last_run_id`` from the previous sweep's first page, as the API docs say to; ``probe``
   reads it with a request of its own before the sweep. (Before GET /results read
   last_run_id and the rows from one snapshot, ``response`` lost runs: that is how this
   benchmark found the bug.)
6. Where the time goes (PostgreSQL and RQ clocks, same machine). Per run: started_at ->
   finished_at is load + fit + publish (finished_at is the clock time of the publish
   transaction's last statement), finished_at -> the RQ job's end is the commit and the
   follow-up's queueing. Per answer: 201 -> start of
   the first run started after it; that run; its end -> seen by the poller. CPU used during
   the window is split into this benchmark's processes, the PostgreSQL server (all databases)
   and everything else: freshness is about 2 run durations, and a run is CPU-bound, so other
   work on the machine shows up directly in the figures. Every sweep, run and answer is
   written to ``sweeps.json`` in the log directory.
7. ``--breakdown-runs`` times (after the servers stop): one run executed in this process on the
   benchmark's database, as crowd.background.aggregation.aggregate does it, with crowd.store.snapshot.load,
   crowd.em.live.fit_run and the job's publish step (crowd.background.aggregation.publish: the changed rows,
   then crowd.store.runs.publish) timed apart; each run is recorded and published for real.
   A typed project's run: crowd.store.typed.load, crowd.background.aggregation.fit_typed_run
   and .publish_typed.

Goal (issue text): p95 freshness <= 5 s at 1M answers on this machine. Issue 14: p95 <= 3 s
at 10M answers (``--tasks 2000000``), and p95 at 10M <= 1.5 x p95 at 1M. Issue 16: at 1M
answers each typed project's freshness within 1.5x of the categorical figure (run each
``--type`` back to back on the same machine and compare).

The workers keep the project's answers between runs in ``CROWD_STATE_DIR`` (set to
``<logs>/state`` for the run; crowd/store/answer_state.py), so the warm-up run reads them all
and the runs in the window only the new ones; each run's load mode and load / fit seconds are
read back from ``aggregation_runs`` and reported, and the breakdown also times a load that
reads every answer, for comparison. Peak RSS of the largest child process (a worker's
work-horse or the API) is reported at the end.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg2
import redis as redis_lib

from crowd.client import ApiError, ConnectionFailed, RequesterClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _open_loop import ONE_ATTEMPT, SCALE, Tally, distinct_workers, load_drawn, submit
from _service import bench_database, crowd_bin, loadavg, machine_cpu, start_services

GOAL_P95 = 5.0  # seconds
TYPES = ("categorical", "multilabel", "numeric", "pairwise")
LABEL_NAMES = ("cat", "dog", "bird", "fish", "frog", "owl", "cow", "pig", "bee", "ant")


# --------------------------------------------------------------------------------------------
# Processes and the database (same conventions as api_load.py).


def _tree_cpu(roots: Sequence[int]) -> float:
    """CPU seconds of these processes and their descendants, exited children included."""
    total = 0.0
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            t = root.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
    return total


def _pg_cpu(url: str) -> float:
    """CPU seconds of the whole PostgreSQL server (every database), exited backends included."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            postmaster = psutil.Process(int(row[0]) if row else 0).ppid()
    finally:
        conn.close()
    return _tree_cpu([postmaster])


def _crowd_source() -> str:
    """Where ``crowd`` is imported from (with its git commit, when it is a checkout)."""
    import crowd

    where = Path(crowd.__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if head.returncode != 0:
        return str(where)
    return (
        f"{where} @ {head.stdout.strip()}{' + uncommitted changes' if dirty.stdout.strip() else ''}"
    )


# --------------------------------------------------------------------------------------------
# Setup.


def setup_over_http(
    base: str, requester: str, kind: str, n_tasks: int, overlap: int, labels: Sequence[str],
    n_workers: int, n_items: int, seed: int,
) -> tuple[int, list[str]]:  # fmt: skip
    """Project of type ``kind``, tasks (pairwise: two of ``n_items`` items each, drawn with
    ``seed``) and worker accounts; returns (project id, worker tokens)."""
    settings: dict[str, Any] = {"overlap": overlap, "lease_seconds": 600}
    if kind != "categorical":
        settings["type"] = kind
    if kind == "numeric":
        settings["scale"] = SCALE
    with RequesterClient(base, requester, timeout=120) as req:
        named = labels if kind in ("categorical", "multilabel") else None
        project = req.create_project("freshness", named, **settings)
        project_id = int(project["id"])
        rng = np.random.default_rng(seed)

        def task(i: int) -> dict[str, Any]:
            if kind != "pairwise":
                return {"external_id": f"t{i}", "data": {"n": i}}
            a, b = rng.choice(n_items, 2, replace=False)
            return {"external_id": f"t{i}", "left": {"id": f"i{a}"}, "right": {"id": f"i{b}"}}

        req.post_tasks(project_id, (task(i) for i in range(n_tasks)), chunk_size=10_000)
        tokens = [req.create_worker(f"w{i}").token for i in range(n_workers)]
    return project_id, tokens


def bulk_answers(
    url: str, project_id: int, kind: str, per_task: int, n_labels: int, n_items: int, seed: int
) -> tuple[int, int]:
    """COPY ``per_task`` answers of type ``kind`` per task from distinct workers; returns
    (answers, workers)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, data -> 'left' ->> 'id', data -> 'right' ->> 'id' FROM tasks"
                " WHERE project_id = %s ORDER BY id",
                (project_id,),
            )
            tasks = cur.fetchall()
            task_ids = np.array([r[0] for r in tasks], dtype=np.int64)
            cur.execute(
                "SELECT a.id FROM accounts a JOIN projects p ON a.created_by = p.owner_id"
                " WHERE p.id = %s AND a.role = 'worker' ORDER BY a.id",
                (project_id,),
            )
            worker_ids = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        n_t, n_w = task_ids.size, worker_ids.size
        if n_w < per_task:
            raise SystemExit(f"error: {per_task} answers per task need at least that many workers")
        rng = np.random.default_rng(seed)
        drawn_for = distinct_workers(rng, n_t, n_w, per_task)
        better_left = None
        if kind == "pairwise":
            score = rng.normal(0, 1, n_items)
            better_left = np.array([score[int(r[1][1:])] > score[int(r[2][1:])] for r in tasks])
        load_drawn(
            conn, project_id, kind, rng, task_ids, worker_ids, drawn_for,
            n_labels=n_labels, per_task=per_task, better_left=better_left,
        )  # fmt: skip
    finally:
        conn.close()
    return drawn_for[1].size, n_w


# --------------------------------------------------------------------------------------------
# Measurement.


@dataclass
class Submitted:
    task_id: int
    expect: int  # the task's answer count including this answer
    acked: float  # time.time() of the 201
    seen: float | None = None


@dataclass
class Shared(Tally):
    submitted: list[Submitted] = field(default_factory=list)
    pending: dict[int, list[Submitted]] = field(default_factory=dict)  # task id -> unseen
    counts: dict[int, int] = field(default_factory=dict)  # task id -> answers known to us
    base: int = 0
    # (started, seconds, since_run, last_run_id of the first page, pages, rows, answers seen)
    sweeps: list[tuple[float, float, int, int | None, int, int, int]] = field(default_factory=list)
    stop_submit: threading.Event = field(default_factory=threading.Event)
    stop_poll: threading.Event = field(default_factory=threading.Event)

    def acked(self, _project_id: int, task_id: int, at: float) -> None:
        """An answer's 201 (called under ``lock``): the poller looks for it from now on."""
        n = self.counts.get(task_id, self.base) + 1
        self.counts[task_id] = n
        item = Submitted(task_id, n, at)
        self.submitted.append(item)
        self.pending.setdefault(task_id, []).append(item)


def random_answer(
    kind: str, label_names: Sequence[str], rng: np.random.Generator
) -> dict[str, Any]:
    """A random answer of a ``kind`` project, as crowd.client.WorkerClient.answer's keyword."""
    if kind == "multilabel":
        return {"labels": [name for name in label_names if rng.random() < 0.3]}
    if kind == "numeric":
        return {"value": round(float(rng.uniform(SCALE["min"], SCALE["max"])), 3)}
    if kind == "pairwise":
        return {"winner": ("left", "right")[int(rng.integers(2))]}
    return {"label": label_names[int(rng.integers(len(label_names)))]}


def submitter(
    base: str, project_id: int, token: str, kind: str, label_names: Sequence[str],
    schedule: list[float], shared: Shared, seed: int,
) -> None:  # fmt: skip
    """Open loop: one fetch + answer of the project at each scheduled time."""
    rng = np.random.default_rng(seed)
    submit(
        base,
        token,
        ((due, project_id) for due in schedule),
        lambda: random_answer(kind, label_names, rng),
        shared,
        shared.acked,
        shared.stop_submit,
    )


#: A since_run no run reaches: the page has no rows, only the current last_run_id.
NO_RUN = 10**17


def poller(
    base: str, project_id: int, requester: str, since: int, interval: float, shared: Shared,
    since_from: str,
) -> None:  # fmt: skip
    """Sweep GET /results?since_run=S page by page; mark answers whose task shows them.

    ``since_from="probe"``: before each sweep, one request with since_run=NO_RUN reads
    ``last_run_id``; the next sweep starts from it. Every run up to it committed before this
    sweep's pages were read, so none of its rows is missed; rows of later runs that one sweep
    sees only in part are read again by the next. ``since_from="response"``: the next sweep
    starts from the ``last_run_id`` of this sweep's first page, as the API docs say (the
    API reads it and the page in one snapshot).
    """
    req = RequesterClient(base, requester, timeout=60, retry=ONE_ATTEMPT)
    while not shared.stop_poll.is_set():
        began = time.monotonic()
        started = time.time()
        next_since: int | None = None
        pages = rows = matched = 0
        try:
            if since_from == "probe":
                next_since = req.poll_results(project_id, NO_RUN, page_size=1).last_run_id
            for page in req.result_pages(project_id, since_run=since, page_size=1000):
                arrived = time.time()
                pages += 1
                if since_from == "response" and pages == 1:
                    next_since = page.last_run_id
                rows += len(page.results)
                with shared.lock:
                    for row in page.results:
                        task_id = int(row["task_id"])
                        waiting = shared.pending.get(task_id)
                        if not waiting:
                            continue
                        used = int(row["aggregated_answers"] or 0)
                        still = []
                        for item in waiting:
                            if used >= item.expect:
                                item.seen = arrived
                                matched += 1
                            else:
                                still.append(item)
                        if still:
                            shared.pending[task_id] = still
                        else:
                            del shared.pending[task_id]
        except ApiError as exc:
            shared.error(f"poll {exc.status}")
            next_since = None
        except ConnectionFailed as exc:
            shared.error(f"poll {type(exc.__cause__).__name__}")
            next_since = None
        shared.sweeps.append(
            (started, time.monotonic() - began, since, next_since, pages, rows, matched)
        )
        if next_since is not None:
            since = next_since
        rest = interval - (time.monotonic() - began)
        if rest > 0:
            shared.stop_poll.wait(rest)


def wait_run(req: RequesterClient, project_id: int, run_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in itertools.islice(req.runs(project_id), 100):
            if run["id"] == run_id and run["status"] in ("succeeded", "failed"):
                return dict(run)
        time.sleep(0.25)
    raise SystemExit(f"error: run {run_id} did not finish within {timeout:.0f} s")


def all_runs(req: RequesterClient, project_id: int) -> list[dict[str, Any]]:
    return sorted(req.runs(project_id, page_size=1000), key=lambda run: run["id"])


def job_ends(rdb: redis_lib.Redis, run_ids: list[int]) -> dict[int, float]:
    """When each run's RQ job ended (kept by RQ for result_ttl = 600 s), as epoch seconds."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    out = {}
    for run_id in run_ids:
        try:
            job = Job.fetch(f"crowd-run-{run_id}", connection=rdb)
        except NoSuchJobError:
            continue
        if job.ended_at is not None:
            at = job.ended_at
            out[run_id] = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    return out


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


# --------------------------------------------------------------------------------------------
# One run in this process, phase by phase.


def breakdown(url: str, redis_url: str, project_id: int, repeats: int) -> list[dict[str, Any]]:
    """Run ``repeats`` aggregation runs here, as crowd.background.aggregation.aggregate does,
    timing each phase: crowd.background.aggregation.load (the kept copy in CROWD_STATE_DIR,
    the same one the benchmark's workers kept, plus the answers it lacks), .fit, and the
    job's publish step (crowd.background.aggregation.publish: picks the changed rows, then
    crowd.store.runs.publish). Also times, apart, the one part of the load that still reads
    a whole table's worth: the published results (COPY of task_results)."""
    from crowd.background import aggregation, connections
    from crowd.config import Settings
    from crowd.store import projects, runs, snapshot
    from crowd.store.db import Database

    connections.configure(replace(Settings.from_env(), database_url=url, redis_url=redis_url))
    db = Database(url, max_connections=2)
    out: list[dict[str, Any]] = []
    try:
        for _ in range(repeats):
            with db.transaction() as cur:
                run = runs.create(cur, project_id, "api")
                runs.start(cur, run.project_id, run.id)
                project = projects.get(cur, project_id)
            assert project is not None
            if project.type != "categorical":
                out.append(_typed_breakdown(db, run.id, project))
                continue
            t0 = time.perf_counter()
            snap = aggregation.load(db, project)
            t1 = time.perf_counter()
            result, cold_answers = aggregation.fit(snap, project)
            t2 = time.perf_counter()
            aggregation.publish(db, run.id, project, result, snap, cold_answers, (t1 - t0, t2 - t1))
            t3 = time.perf_counter()
            with db.transaction() as cur:
                cur.execute("SELECT count(*) FROM task_results WHERE run_id = %s", (run.id,))
                row = cur.fetchone()
                p0 = time.perf_counter()
                snapshot.read_published(cur, project_id)
                published_read = time.perf_counter() - p0
            f0 = time.perf_counter()  # the same load without the kept copy: all answers
            with db.transaction() as cur:
                snapshot.load(
                    cur, project_id, len(project.labels), exclude_banned=project.exclude_banned
                )
            full_load = time.perf_counter() - f0
            out.append(
                {"load": t1 - t0, "fit": t2 - t1, "publish": t3 - t2, "total": t3 - t0,
                 "answers": float(snap.n_answers), "iterations": float(result.n_iter),
                 "changed": float(row[0] if row else 0), "mode": snap.load,
                 "read": float(snap.read), "published_read": published_read,
                 "full_load": full_load}
            )  # fmt: skip
    finally:
        db.close()
    return out


def _typed_breakdown(db: Any, run_id: int, project: Any) -> dict[str, Any]:
    """One typed run, phase by phase (crowd.background.aggregation._typed_run's steps)."""
    from crowd.background import aggregation
    from crowd.store import typed

    t0 = time.perf_counter()
    with db.transaction() as cur:
        answers, total, published, previous = typed.load(cur, project)
    t1 = time.perf_counter()
    result, cold_answers = aggregation.fit_typed_run(project, answers, previous)
    t2 = time.perf_counter()
    aggregation.publish_typed(
        db, run_id, project, result, published, total, cold_answers, (t1 - t0, t2 - t1)
    )
    t3 = time.perf_counter()
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM task_results WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
    return {"load": t1 - t0, "fit": t2 - t1, "publish": t3 - t2, "total": t3 - t0,
            "answers": float(answers.answer_ids.size), "iterations": float(result.n_iter),
            "changed": float(row[0] if row else 0),
            "mode": "full, warm-started" if result.warm_start else "full, cold",
            "read": float(answers.answer_ids.size), "published_read": float("nan"),
            "full_load": t1 - t0}  # fmt: skip


def live_phases(url: str, run_ids: list[int]) -> list[tuple[str, float, float, float]]:
    """(load mode, load s, fit s, the rest s: publish and commit up to finished_at) of each
    run, as the workers recorded them."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT load, load_seconds, fit_seconds,"
                " extract(epoch FROM finished_at - started_at) - load_seconds - fit_seconds"
                " FROM aggregation_runs WHERE id = ANY(%s) AND load_seconds IS NOT NULL",
                (run_ids,),
            )
            return [(r[0], float(r[1]), float(r[2]), float(r[3])) for r in cur.fetchall()]
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--type", choices=TYPES, default="categorical", help="the project's type")
    p.add_argument("--items", type=int, default=5000, help="pairwise: items compared")
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--answers-per-task", type=int, default=5, help="bulk-loaded answers per task")
    p.add_argument("--workers", type=int, default=1000, help="worker accounts")
    p.add_argument("--labels", type=int, default=4, choices=range(2, len(LABEL_NAMES) + 1))
    p.add_argument("--rate", type=float, default=30.0, help="answers/s submitted, in total")
    p.add_argument("--clients", type=int, default=4, help="submitting threads (workers)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window")
    p.add_argument("--drain", type=float, default=30.0, help="max seconds to wait after it")
    p.add_argument("--poll-interval", type=float, default=0.2, help="seconds between sweeps")
    p.add_argument(
        "--since-from", choices=("probe", "response"), default="response",
        help="where the poller takes its next since_run: a probe request before each sweep"
        " [default], or the first page's last_run_id (shows the race in GET /results)",
    )  # fmt: skip
    p.add_argument("--rq-workers", type=int, default=1, help="`crowd worker` processes")
    p.add_argument("--breakdown-runs", type=int, default=3, help="in-process timed runs (0: none)")
    p.add_argument("--port", type=int, default=8785)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    if args.clients > args.workers:
        raise SystemExit("error: --clients must be at most --workers")

    crowd_cmd = crowd_bin(args.crowd)
    host = "127.0.0.1"
    base = f"http://{host}:{args.port}"
    labels = LABEL_NAMES[: args.labels]
    logs = Path(tempfile.mkdtemp(prefix="crowd_freshness_"))
    # The workers' kept copies of the project's answers (and this process's, for the
    # breakdown: the same folder, as a restarted worker on the same host would use).
    os.environ["CROWD_STATE_DIR"] = str(logs / "state")
    rdb = redis_lib.Redis.from_url(args.redis)
    rdb.flushdb()
    began = time.monotonic()
    with (
        bench_database(args.postgres, args.keep_db, "bench_fresh") as url,
        contextlib.ExitStack() as up,
    ):
        up.callback(rdb.flushdb)
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, workers=0, host=host)
        up.callback(services.stop)
        requester = services.requester
        shape = {
            "categorical": f"{args.labels} labels",
            "multilabel": f"{args.labels} labels",
            "numeric": "scale 0-100",
            "pairwise": f"{args.items} items",
        }[args.type]
        print(
            f"freshness: crowd serve --no-worker (default gunicorn shape) + {args.rq_workers}"
            f" crowd worker; a {args.type} project, {args.tasks} tasks x"
            f" {args.answers_per_task} answers, {args.workers} workers, {shape}; {args.clients} clients at {args.rate:g} answers/s"
            f" for {args.seconds:g} s, poll every {args.poll_interval:g} s; {os.cpu_count()}"
            f" cores; load average {loadavg()}; crowd from {_crowd_source()}",
            flush=True,
        )
        t = time.monotonic()
        project_id, tokens = setup_over_http(
            base, requester, args.type, args.tasks, args.answers_per_task, labels, args.workers,
            args.items, args.seed,
        )  # fmt: skip
        t_http = time.monotonic() - t
        t = time.monotonic()
        n_answers, n_workers = bulk_answers(
            url, project_id, args.type, args.answers_per_task, args.labels, args.items, args.seed
        )
        t_bulk = time.monotonic() - t
        print(
            f"setup: {args.tasks} tasks + {n_workers} workers over HTTP in {t_http:.0f} s;"
            f" {n_answers} answers bulk-loaded in {t_bulk:.0f} s",
            flush=True,
        )

        services.add_workers(args.rq_workers)
        rq = services.workers
        req = RequesterClient(base, requester, timeout=60)
        first = req.request_run(project_id)
        if first is None:
            raise SystemExit("error: a run was already queued on a fresh project")
        warm = wait_run(req, project_id, int(first["id"]), timeout=1200)
        if warm["status"] != "succeeded":
            raise SystemExit(f"error: the first run failed: {warm['error']}\n{rq[0].tail()}")
        cold_seconds = _ts(warm["finished_at"]) - _ts(warm["started_at"])  # type: ignore[operator]
        req.update_project(project_id, overlap=args.answers_per_task + 1)
        since = int(req.poll_results(project_id, NO_RUN, page_size=1).last_run_id or 0)
        print(
            f"warm-up run {first['id']}: {warm['answers']} answers, {warm['iterations']}"
            f" iterations, {cold_seconds:.2f} s (started -> finished); overlap now"
            f" {args.answers_per_task + 1}",
            flush=True,
        )

        # The measured window.
        shared = Shared(base=args.answers_per_task)
        n_slots = int(args.seconds * args.rate)
        t0 = time.monotonic() + 0.5
        due = [t0 + i / args.rate for i in range(n_slots)]
        subs = [
            threading.Thread(
                target=submitter,
                args=(
                    base,
                    project_id,
                    tokens[c],
                    args.type,
                    labels,
                    due[c :: args.clients],
                    shared,
                    args.seed + c,
                ),
                daemon=True,
            )
            for c in range(args.clients)
        ]
        poll = threading.Thread(
            target=poller,
            args=(base, project_id, requester, since, args.poll_interval, shared, args.since_from),
            daemon=True,
        )
        window_start = time.time()
        ours = [os.getpid(), services.serve.proc.pid, *(w.proc.pid for w in rq)]
        cpu_before = (_tree_cpu(ours), _pg_cpu(url), machine_cpu())
        poll.start()
        for th in subs:
            th.start()
        for th in subs:
            th.join(args.seconds + 60)
        shared.stop_submit.set()
        window_end = time.time()
        cpu_after = (_tree_cpu(ours), _pg_cpu(url), machine_cpu())
        drain_end = time.monotonic() + args.drain
        while time.monotonic() < drain_end:
            with shared.lock:
                if not shared.pending:
                    break
            time.sleep(0.1)
        shared.stop_poll.set()
        poll.join(60)
        runs_all = all_runs(req, project_id)
        job_end = job_ends(rdb, [int(run["id"]) for run in runs_all])
        phases_live = live_phases(url, [int(r["id"]) for r in runs_all if r["id"] != first["id"]])
        services.stop()
        phases = (
            breakdown(url, args.redis, project_id, args.breakdown_runs)
            if args.breakdown_runs
            else []
        )

    # ----------------------------------------------------------------------------------------
    # Report.
    subs_all = shared.submitted
    seen = [x for x in subs_all if x.seen is not None]
    lat = [x.seen - x.acked for x in seen]  # type: ignore[operator]
    unseen = len(subs_all) - len(seen)
    window = [
        run for run in runs_all
        if run["id"] != first["id"] and run["status"] == "succeeded"
        and (_ts(run["started_at"]) or 0) >= window_start - 1
    ]  # fmt: skip
    failed = [r for r in runs_all if r["status"] == "failed"]
    # A run: started_at (marked running) -> finished_at (end of the publish transaction's
    # statements) -> the RQ job's end (publish committed, follow-up queued).
    spans = []
    for run in window:
        started, publishing = _ts(run["started_at"]), _ts(run["finished_at"])
        ended = job_end.get(int(run["id"]))
        assert started is not None and publishing is not None
        spans.append((started, publishing, ended if ended is not None else publishing))
    spans.sort()
    in_window = [sp for sp in spans if sp[2] <= window_end]
    period = [b[0] - a[0] for a, b in itertools.pairwise(spans)]
    queueing = [_ts(r["started_at"]) - _ts(r["created_at"]) for r in window]  # type: ignore[operator]
    # Per answer: the first run that started after its 201 includes it (a run marks itself
    # running, then clears `stale`, then reads).
    start_times = [sp[0] for sp in spans]
    wait, run_part, poll_part = [], [], []
    for x in seen:
        i = bisect.bisect_left(start_times, x.acked)
        if i < len(spans) and x.seen is not None and spans[i][2] <= x.seen + 0.05:
            wait.append(spans[i][0] - x.acked)
            run_part.append(spans[i][2] - spans[i][0])
            poll_part.append(x.seen - spans[i][2])
    p50, p95 = _pct(lat, 50), _pct(lat, 95)
    met = p95 <= GOAL_P95
    rate = len(subs_all) / args.seconds
    nan = float("nan")

    def mean(values: Sequence[float]) -> float:
        return statistics.fmean(values) if len(values) else nan

    print()
    print("| metric | value |")
    print("|---|---:|")
    print(f"| answers acknowledged (201) in {args.seconds:g} s | {len(subs_all)} ({rate:.1f}/s) |")
    print(f"| answers seen reflected in a poll | {len(seen)} |")
    print(f"| freshness p50 s | {p50:.2f} |")
    print(f"| freshness p95 s | {p95:.2f} |")
    print(f"| freshness max s | {max(lat) if lat else nan:.2f} |")
    print(f"| freshness mean s | {mean(lat):.2f} |")
    print(f"| goal: p95 <= {GOAL_P95:g} s | {'met' if met else 'NOT met'} |")
    print(f"| goal / p95 | {GOAL_P95 / p95 if p95 else nan:.2f} |")
    print(f"| runs completed in the window (+ drain) | {len(in_window)} ({len(spans)}) |")
    print(
        f"| run duration mean / max s (started -> job end) | "
        f"{mean([e - s for s, _, e in spans]):.2f} / {max((e - s for s, _, e in spans), default=nan):.2f} |"
    )
    print(
        f"|   load + fit + publish: started -> finished_at, mean s | {mean([p - s for s, p, _ in spans]):.2f} |"
    )
    print(
        f"|   commit + queue follow-up: finished_at -> job end, mean s | {mean([e - p for _, p, e in spans]):.2f} |"
    )
    print(f"| run start to next run start, mean s | {mean(period):.2f} |")
    print(f"| run queueing mean s (created -> started) | {mean(queueing):.2f} |")
    if window:
        print(f"| answers per run mean | {mean([r['answers'] for r in window]):.0f} |")
        print(f"| EM iterations per run mean | {mean([r['iterations'] for r in window]):.1f} |")
    if wait:
        print(
            f"| per answer: 201 -> start of the run with it, p50 / p95 s | {_pct(wait, 50):.2f} / {_pct(wait, 95):.2f} |"
        )
        print(
            f"| per answer: that run (start -> job end), p50 / p95 s | {_pct(run_part, 50):.2f} / {_pct(run_part, 95):.2f} |"
        )
        print(
            f"| per answer: job end -> seen by the poller, p50 / p95 s | {_pct(poll_part, 50):.2f} / {_pct(poll_part, 95):.2f} |"
        )
    if shared.sweeps:
        secs = [sw[1] for sw in shared.sweeps]
        rows = [sw[5] for sw in shared.sweeps]
        print(
            f"| poll sweeps / mean s / max s | {len(secs)} / {statistics.fmean(secs):.2f} / {max(secs):.2f} |"
        )
        print(f"| rows per non-empty sweep mean / max | "
              f"{statistics.fmean([n for n in rows if n] or [0]):.0f} / {max(rows)} |")  # fmt: skip
    print(f"| submission start lag p95 s (open loop) | {_pct(shared.late, 95):.3f} |")
    seconds = window_end - window_start
    used = [(b - a) / seconds for a, b in zip(cpu_before, cpu_after, strict=True)]
    print(
        f"| CPU in the window, cores: machine / this benchmark's processes / PostgreSQL (all"
        f" databases) / everything else | {used[2]:.2f} / {used[0]:.2f} / {used[1]:.2f} /"
        f" {max(0.0, used[2] - used[0] - used[1]):.2f} of {os.cpu_count()} |"
    )
    print()
    with (logs / "sweeps.json").open("w") as out:
        json.dump(
            {
                "sweeps": shared.sweeps,
                "runs": runs_all,
                "window": [window_start, window_end],
                "answers": [[x.task_id, x.expect, x.acked, x.seen] for x in subs_all],
            },
            out,
        )
    if phases_live:
        modes = sorted({m for m, *_ in phases_live})
        print(
            f"runs during the window, as the workers recorded them ({len(phases_live)} runs;"
            f" loads: {', '.join(f'{m} x{sum(1 for x in phases_live if x[0] == m)}' for m in modes)}):"
        )
        for i, key in enumerate(("load", "fit", "publish"), start=1):
            values = [x[i] for x in phases_live]
            print(f"  {key:8s} mean {statistics.fmean(values):.2f}  p95 {_pct(values, 95):.2f}")
    print(f"warm-up run (first, full read): load mode {warm.get('load')}")
    if phases:
        print(f"one run in-process on the benchmark database ({len(phases)} runs; median s):")
        for key in ("load", "fit", "publish", "total"):
            print(f"  {key:8s} {statistics.median(ph[key] for ph in phases):.2f}"
                  f"   ({', '.join(f'{ph[key]:.2f}' for ph in phases)})")  # fmt: skip
        if args.type == "categorical":  # a typed run reads every answer: no kept copy
            print(
                f"  of the load, reading the published results: {statistics.median(ph['published_read'] for ph in phases):.2f}"
            )
            print(
                f"  the same load reading all answers (no kept copy): {statistics.median(ph['full_load'] for ph in phases):.2f}"
            )
        print(
            f"  loads {[ph['mode'] for ph in phases]}, answer rows read {[int(ph['read']) for ph in phases]}"
        )
        print(f"  answers {phases[0]['answers']:.0f}, iterations"
              f" {[int(ph['iterations']) for ph in phases]}, result rows rewritten"
              f" {[int(ph['changed']) for ph in phases]}")  # fmt: skip
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(
        f"peak RSS GiB: largest child process (crowd worker work-horses, crowd serve) {kids:.2f};"
        f" this process (client threads + the in-process runs) {own:.2f}"
    )
    if unseen:
        print(f"{unseen} answers not seen reflected within {args.drain:g} s after the window")
    if shared.empty:
        print(f"{shared.empty} fetches found no task (204)")
    for what, n in sorted(shared.errors.items()):
        print(f"error: {what}: {n}")
    if failed:
        print(f"{len(failed)} runs failed; first error: {failed[0]['error']}")
    print(
        f"total {time.monotonic() - began:.0f} s; load average at the end {loadavg()};"
        f" logs in {logs}"
    )
    print(f"goal {'met' if met else 'NOT met'}: p95 {p95:.2f} s vs {GOAL_P95:g} s")
    return 0 if not failed and not unseen and not shared.errors else 1


if __name__ == "__main__":
    sys.exit(main())
