"""Per-job cost of a small project's live run: runs/s per `crowd worker` beside the run itself.

    PYTHONPATH=. .venv/bin/python benchmarks/job_cost.py [--projects 100 --small-min 1000
        --small-max 50000 --rounds 3 --rq-workers 1] [--keep-db]

Issue 14's many-projects goal needs hundreds of small projects' runs a second from 2 workers;
a small project's run (load + fit + publish) takes a few tens of milliseconds, and the rest of
a job's time is per-job cost: RQ's fork and Redis bookkeeping, the job's connections and
statements around the run. This measures, against the machine's PostgreSQL and Redis, on
``--projects`` projects of ``--small-min`` to ``--small-max`` answers (set up as
benchmarks/many_projects.py does, one warm-up run each so every worker has its kept copies):

1. **worker**: one run queued per project, ``--rounds`` times; each round,
   ``--rq-workers`` ``crowd worker`` processes are started, left to go idle, then every
   project's run is queued at once (:func:`crowd.background.scheduling.mark_stale`, as an
   answer does); runs/s = runs / (last ``finished_at`` - first queueing), per worker.
2. **no-op jobs**: the same number of RQ jobs that do nothing (``os.getpid``) through the same
   workers: RQ's own per-job cost (dequeue, fork, its Redis bookkeeping) with none of ours.
3. **job in-process**: :func:`crowd.background.aggregation.aggregate` called directly in this
   process on queued runs (no RQ, no fork, warm connections), with the time of each of its
   parts (see ``PARTS``).
4. **peer, in-process run**: the same runs' load + fit + publish called directly
   (:func:`~crowd.background.aggregation.load`, ``fit``, ``publish``): what a run costs with no
   job around it. The figure to move is (1) / (4) per worker, printed as a ratio.

Also measured in a process with the worker's imports (``workers.bootstrap.preload``): a bare
``fork()`` + ``_exit`` + ``waitpid``, a new PostgreSQL connection's first statement, and a new
Redis connection's first command.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import redis as redis_lib
from rq import Queue, Worker

from crowd.background import aggregation, connections, scheduling
from crowd.client import RequesterClient
from crowd.config import JOB_KEEP, RUN_QUEUE, Settings
from crowd.store import answer_state, projects, runs
from crowd.store.db import Database
from workers.bootstrap import preload

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import (
    Services,
    add_server_args,
    bench_database,
    crowd_bin,
    loadavg,
    spawn,
    start_services,
)
from many_projects import bulk_answers, create_projects, small_sizes, wait_idle

#: The parts of :func:`crowd.background.aggregation.aggregate` timed in-process, as
#: ``(module, attribute)``; nested ones (database_folder in load) are counted in both.
PARTS: tuple[tuple[Any, str], ...] = (
    (runs, "get"),
    (scheduling, "project_lock"),
    (runs, "start"),
    (projects, "get"),
    (scheduling, "begin"),
    (aggregation, "load"),
    (answer_state, "database_folder"),
    (answer_state, "read"),
    (aggregation, "fit"),
    (aggregation, "publish"),
    (runs, "publish"),
    (answer_state, "keep_published"),
    (scheduling, "finish"),
)


def _sum(values: Sequence[float]) -> float:
    return float(np.sum(values)) if len(values) else 0.0


# --------------------------------------------------------------------------------------------
# Through real workers.


def start_idle_workers(services: Services, n: int, redis: redis_lib.Redis, tag: str) -> None:
    """Start ``n`` ``crowd worker`` processes and return once all are registered and idle."""
    for i in range(n):
        log = services.logs / f"worker-{tag}-{i}.log"
        services.workers.append(spawn([services.crowd_cmd, "worker"], services.env, log))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = Worker.all(connection=redis)
        if len(found) == n and all(w.get_state() == "idle" for w in found):
            return
        time.sleep(0.2)
    raise SystemExit(f"error: {n} workers not idle after 120 s; logs in {services.logs}")


def stop_workers(services: Services) -> None:
    for worker in services.workers:
        worker.stop()
    services.workers.clear()


def runs_round(
    services: Services, db: Database, redis: redis_lib.Redis, pids: Sequence[int], n: int
) -> tuple[int, float]:
    """Queue one run per project with ``n`` idle workers; (runs, seconds from the first
    queueing to the last publish)."""
    before = _last_run(db)
    start_idle_workers(services, n, redis, "runs")
    t0 = time.time()
    for pid in pids:  # None: a run was queued already (the workers' catch-up, at warm-up)
        scheduling.mark_stale(db, redis, pid, trigger="bench")
    if not wait_idle(db.url, 600):
        raise SystemExit("error: the runs did not finish in 10 minutes")
    with db.transaction() as cur:
        cur.execute(
            "SELECT count(*), extract(epoch FROM max(finished_at)) FROM aggregation_runs"
            " WHERE id > %s AND status = 'succeeded'",
            (before,),
        )
        done, last = cur.fetchone()  # type: ignore[misc]
    stop_workers(services)
    if done < len(pids):
        raise SystemExit(f"error: {done} of {len(pids)} runs succeeded; see {services.logs}")
    return int(done), float(last) - t0


def noop_round(services: Services, redis: redis_lib.Redis, jobs: int, n: int) -> tuple[int, float]:
    """``jobs`` RQ jobs that do nothing (``os.getpid``), queued at once on crowd's run queue
    with ``n`` idle workers, kept as crowd's jobs are (``JOB_KEEP``); (jobs, seconds until
    the last ended)."""
    start_idle_workers(services, n, redis, "noop")
    queue = Queue(RUN_QUEUE, connection=redis)
    t0 = time.time()
    queued = queue.enqueue_many(
        [Queue.prepare_data("os.getpid", **JOB_KEEP) for _ in range(jobs)]  # type: ignore[arg-type]
    )
    ids = [job.id for job in queued]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if queue.count == 0 and len(queue.started_job_registry) == 0:
            jobs_now = queue.job_class.fetch_many(ids, connection=redis)
            statuses = [j.get_status() if j else None for j in jobs_now]
            if all(s == "finished" or s is None for s in statuses):
                break
        time.sleep(0.02)
    end = time.time()
    stop_workers(services)
    return jobs, end - t0


# --------------------------------------------------------------------------------------------
# In this process.


@contextlib.contextmanager
def timed(parts: Sequence[tuple[Any, str]], into: dict[str, list[float]]) -> Iterator[None]:
    """Wrap each ``module.attribute`` so every call adds its seconds to ``into[name]``
    (context managers: the time of the whole ``with`` block)."""
    saved = []
    for module, name in parts:
        original = getattr(module, name)
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
        if name == "project_lock":

            @contextlib.contextmanager
            def wrapper(*a: Any, _f: Any = original, _l: str = label, **k: Any) -> Iterator[None]:
                began = time.perf_counter()
                with _f(*a, **k):
                    into[_l + " (connect + lock)"].append(time.perf_counter() - began)
                    yield
        else:

            def wrapper(
                *a: Any, _f: Callable[..., Any] = original, _l: str = label, **k: Any
            ) -> Any:
                began = time.perf_counter()
                try:
                    return _f(*a, **k)
                finally:
                    into[_l].append(time.perf_counter() - began)

        functools.update_wrapper(wrapper, original)
        saved.append((module, name, original))
        setattr(module, name, wrapper)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def queue_runs(db: Database, pids: Sequence[int]) -> list[int]:
    """One queued run row per project (no RQ job): what the in-process modes run."""
    with db.transaction() as cur:
        return [runs.create(cur, pid, "bench").id for pid in pids]


def jobs_in_process(db: Database, pids: Sequence[int]) -> tuple[int, float, dict[str, list[float]]]:
    """:func:`aggregation.aggregate` on one queued run per project, in this process, with
    its parts timed; (runs, seconds, part -> seconds per call)."""
    run_ids = queue_runs(db, pids)
    parts: dict[str, list[float]] = defaultdict(list)
    with timed(PARTS, parts):
        t0 = time.perf_counter()
        for run_id, pid in zip(run_ids, pids, strict=True):
            aggregation.aggregate(run_id, pid)
        took = time.perf_counter() - t0
    return len(run_ids), took, parts


def runs_in_process(db: Database, pids: Sequence[int]) -> tuple[int, float]:
    """The peer: load + fit + publish of one run per project called directly (the run rows are
    made and started beforehand, untimed)."""
    run_ids = queue_runs(db, pids)
    with db.transaction() as cur:
        for run_id, pid in zip(run_ids, pids, strict=True):
            runs.start(cur, pid, run_id)
        plan = [(run_id, projects.get(cur, pid)) for run_id, pid in zip(run_ids, pids, strict=True)]
    took = 0.0
    for run_id, project in plan:
        assert project is not None
        t0 = time.perf_counter()
        snap = aggregation.load(db, project)
        result, cold = aggregation.fit(snap, project)
        aggregation.publish(db, run_id, project, result, snap, cold)
        took += time.perf_counter() - t0
    return len(plan), took


def bare_costs(url: str, redis_url: str, times: int = 20) -> dict[str, float]:
    """Mean seconds of a fork + _exit + waitpid (in this process, the worker's imports
    loaded), a new PostgreSQL connection's first statement, a new Redis connection's PING."""
    preload()
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for _ in range(times):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    out["fork + exit + wait"] = (time.perf_counter() - t0) / times
    t0 = time.perf_counter()
    for _ in range(times):
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.close()
    out["PostgreSQL connect + SELECT 1"] = (time.perf_counter() - t0) / times
    t0 = time.perf_counter()
    for _ in range(times):
        client = redis_lib.Redis.from_url(redis_url)
        client.ping()
        client.close()
    out["Redis connect + PING"] = (time.perf_counter() - t0) / times
    return out


def _last_run(db: Database) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM aggregation_runs")
        return int(cur.fetchone()[0])  # type: ignore[index]


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--projects", type=int, default=100)
    p.add_argument("--small-min", type=int, default=1000, help="answers of the smallest")
    p.add_argument("--small-max", type=int, default=50_000, help="answers of the largest")
    p.add_argument("--answers-per-task", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="runs of every project, per mode")
    p.add_argument("--rq-workers", type=int, default=1, help="`crowd worker` processes")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--seed", type=int, default=0)
    add_server_args(p, redis_db=11)
    args = p.parse_args(argv)

    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_jobcost_"))
    os.environ["CROWD_STATE_DIR"] = str(logs / "state")
    rdb = redis_lib.Redis.from_url(args.redis)
    rdb.flushdb()
    sizes = small_sizes(args.projects, args.small_min, args.small_max)
    with (
        bench_database(args.postgres, args.keep_db, "bench_jobcost") as url,
        contextlib.ExitStack() as up,
    ):
        up.callback(rdb.flushdb)
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, workers=0)
        up.callback(services.stop)
        print(
            f"job_cost: {args.projects} projects of {args.small_min}-{args.small_max} answers;"
            f" {args.rq_workers} crowd worker; {os.cpu_count()} cores; load average"
            f" {loadavg()}; logs {logs}",
            flush=True,
        )
        req = RequesterClient(services.base, services.requester, timeout=300)
        for i in range(20):
            req.create_worker(f"bulk{i}")
        made = create_projects(req, sizes, args.answers_per_task)
        pids = [pid for pid, _ in made]
        n = bulk_answers(url, pids, args.answers_per_task, args.seed)
        print(f"setup: {len(pids)} projects, {n} answers", flush=True)

        os.environ.update(CROWD_DATABASE_URL=url, CROWD_REDIS_URL=args.redis)
        connections.configure(Settings.from_env())
        db, redis = connections.services()
        # Warm-up: every project's kept copy and warm start exist, on this host's state dir.
        _, took = runs_round(services, db, redis, pids, args.rq_workers)
        print(f"warm-up: one run per project in {took:.1f} s", flush=True)

        k = args.rq_workers
        figures: dict[str, tuple[int, float]] = {}
        parts: dict[str, list[float]] = defaultdict(list)
        load_before = loadavg()
        for _ in range(args.rounds):
            for mode in ("worker", "no-op jobs", "job in-process", "peer: load+fit+publish"):
                if mode == "worker":
                    done, took = runs_round(services, db, redis, pids, k)
                elif mode == "no-op jobs":
                    done, took = noop_round(services, redis, len(pids), k)
                elif mode == "job in-process":
                    done, took, got = jobs_in_process(db, pids)
                    for name, values in got.items():
                        parts[name] += values
                else:
                    done, took = runs_in_process(db, pids)
                had = figures.get(mode, (0, 0.0))
                figures[mode] = (had[0] + done, had[1] + took)
        print(f"\nload average before {load_before}, after {loadavg()}")
        rate = {mode: n / s for mode, (n, s) in figures.items()}
        per_worker = {"worker": k, "no-op jobs": k}
        print("| mode | runs (jobs) | seconds | per second per worker | ms per run (job) |")
        print("|---|---:|---:|---:|---:|")
        for mode, (done, took) in figures.items():
            r = rate[mode] / per_worker.get(mode, 1)
            print(f"| {mode} | {done} | {took:.1f} | {r:.1f} | {1000 / r:.1f} |")
        peer = rate["peer: load+fit+publish"]
        ours = rate["worker"] / k
        print(
            f"\nruns/s per worker {ours:.2f} vs in-process runs/s {peer:.2f}: ratio"
            f" {ours / peer:.2f} (1.00 = no per-job cost)"
        )
        print("\naggregate() in-process, by part (ms per call; nested parts counted in both):")
        print("| part | calls | ms mean | ms p95 |")
        print("|---|---:|---:|---:|")
        for name, values in parts.items():
            ms = 1000 * np.asarray(values)
            print(f"| {name} | {len(values)} | {ms.mean():.2f} | {np.percentile(ms, 95):.2f} |")
        print("\nbare costs (ms, mean of 20):")
        for name, seconds in bare_costs(url, args.redis).items():
            print(f"| {name} | {1000 * seconds:.2f} |")
        with contextlib.suppress(Exception):
            connections.services()[0].close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
