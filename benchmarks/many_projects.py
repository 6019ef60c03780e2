"""Many projects: freshness per size class with many small projects and one large one (issue 14).

    .venv/bin/python benchmarks/many_projects.py [--small-projects 1000 --small-min 1000
        --small-max 50000 --large-answers 10000000 --rate 300 --clients 8 --rq-workers 2
        --seconds 60 --configs fixed,fair,fair+reserve --fair-skips 4] [--keep-db]

Issue 14's goal: 1,000 projects of 1,000 to 50,000 answers plus one 10M-answer project,
answers arriving at 300/s in total over the projects, 2 ``crowd worker`` processes, p95
freshness <= 10 s for every size class. The defaults are that configuration; every size is an
option, so a reduced one can run on a small machine (see benchmarks/RESULTS.md for the one
measured and what it leaves out).

What happens, against the machine's PostgreSQL and Redis:

1. A fresh database ``bench_many_<hex>`` (dropped at the end unless ``--keep-db``), Redis db
   ``--redis`` (default 12) flushed before and after; ``crowd serve --no-worker``.
2. Over HTTP: ``--small-projects`` projects whose answer counts are spread evenly (log scale)
   from ``--small-min`` to ``--small-max``, and one of ``--large-answers`` answers, each with
   ``--answers-per-task`` answers per task (so answers / that many tasks), 4 labels; worker
   accounts. Then the answers are COPYed straight into PostgreSQL (distinct workers per task,
   accuracies U(0.55, 0.95)), and every project's overlap is raised by one, so each task has
   one open slot.
3. For each configuration in ``--configs``, in turn, on the same database: ``--rq-workers``
   ``crowd worker`` processes start with that queue policy; ``fixed`` = RQ's fixed priority
   order (``CROWD_FAIR_SKIPS=0``), ``fair`` = the fair order (``CROWD_FAIR_SKIPS`` =
   ``--fair-skips``; ``fair:N``: N), ``+reserve`` = the first worker started with ``--no-large-runs``.
   Before the first configuration, one run per project is asked for and waited for (the
   warm-up: the workers' kept copies in ``CROWD_STATE_DIR`` and the warm starts exist from then
   on, for every configuration).
4. Measured for ``--seconds``: ``--clients`` threads submit answers open-loop at ``--rate``
   per second in total (fetch, then answer, over HTTP, one attempt each). Each answer goes to
   the large project with probability ``--large-share``, else to a small project chosen
   uniformly. Then up to ``--drain`` seconds for the runs to catch up, and the workers stop.
5. Freshness of an answer: from its 201 to the end (``finished_at``, the publish) of the first
   run of its project that *started* after the 201, read from ``aggregation_runs``. (Such a run
   reads the answer: its snapshot is taken after it starts. An answer committed just before a
   run's snapshot but after its start is credited to the next run, so the figure errs long.)
   This is not freshness.py's method (a client polling GET /results): polling every project
   every 0.2 s would itself be most of the load. An answer with no such run by the end of the
   drain is *unpublished* and counted apart; its wait so far enters the percentiles as a lower
   bound (so p95 is then a lower bound too, marked ">=").

Reported per configuration and size class (crowd's classes: runs of projects under
``crowd.config.LARGE_PROJECT_ANSWERS`` = 100,000 answers go to queue ``crowd``, larger ones to
``crowd-large``): answers, freshness p50 / p95 / max, unpublished answers; runs, their mean
queue wait (created -> started) and duration (started -> finished). Written as JSON to
``results.json`` in the log directory too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import redis as redis_lib

from crowd.client import RequesterClient
from crowd.config import LARGE_PROJECT_ANSWERS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _open_loop import Tally, copy_answers, submit
from _service import Services, bench_database, crowd_bin, loadavg, spawn, start_services

GOAL_P95 = 10.0  # seconds, every size class
LABELS = ("cat", "dog", "bird", "fish")


def small_sizes(n: int, low: int, high: int) -> list[int]:
    """``n`` answer counts spread evenly on a log scale from ``low`` to ``high``."""
    if n == 1:
        return [low]
    return [round(float(x)) for x in np.geomspace(low, high, n)]


def size_class(answers: int) -> str:
    return "large" if answers >= LARGE_PROJECT_ANSWERS else "small"


# --------------------------------------------------------------------------------------------
# Setup.


def create_projects(
    req: RequesterClient, sizes: Sequence[int], per_task: int
) -> list[tuple[int, int]]:
    """One project per size, with size // per_task tasks; returns (project id, answers)."""
    out = []
    for i, size in enumerate(sizes):
        n_tasks = max(1, size // per_task)
        project = req.create_project(f"p{i}", LABELS, overlap=per_task, lease_seconds=600)
        pid = int(project["id"])
        tasks = ({"external_id": f"t{j}"} for j in range(n_tasks))
        req.post_tasks(pid, tasks, chunk_size=10_000)
        out.append((pid, n_tasks * per_task))
    return out


def bulk_answers(url: str, project_ids: Sequence[int], per_task: int, seed: int) -> int:
    """COPY ``per_task`` answers per task of each project, from distinct workers (accuracy
    U(0.55, 0.95), wrong answers uniform over the other labels); returns the answers."""
    conn = psycopg2.connect(url)
    rng = np.random.default_rng(seed)
    total = 0
    try:
        with conn.cursor() as cur:
            # not the senders' accounts: every task keeps an open slot for each sender
            cur.execute(
                "SELECT id FROM accounts WHERE role = 'worker' AND name LIKE 'bulk%%' ORDER BY id"
            )
            workers = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        accuracy = rng.uniform(0.55, 0.95, workers.size)
        for pid in project_ids:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM tasks WHERE project_id = %s ORDER BY id", (pid,))
                tasks = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
            truth = rng.integers(0, len(LABELS), tasks.size)
            # distinct workers per task: start, start + 1, ... (mod the number of workers)
            start = rng.integers(0, workers.size, tasks.size)
            w = ((start[:, None] + np.arange(per_task)[None, :]) % workers.size).ravel()
            t = np.repeat(np.arange(tasks.size), per_task)
            right = rng.random(t.size) < accuracy[w]
            wrong = (truth[t] + rng.integers(1, len(LABELS), t.size)) % len(LABELS)
            label = np.where(right, truth[t], wrong)
            with conn.cursor() as cur:
                copy_answers(
                    cur, pid, tasks[t].tolist(), workers[w].tolist(), label.tolist(), per_task
                )
            conn.commit()
            total += t.size
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE tasks")
            cur.execute("VACUUM ANALYZE assignments")
    finally:
        conn.close()
    return total


# --------------------------------------------------------------------------------------------
# Measurement.


@dataclass
class Shared(Tally):
    acked: list[tuple[int, float]] = field(default_factory=list)  # (project id, 201 time)


def submitter(
    base: str, token: str, targets: list[int], schedule: list[float], shared: Shared, seed: int
) -> None:
    """Open loop: at each scheduled time (time.monotonic), fetch a task of the next target
    project and answer it."""
    rng = np.random.default_rng(seed)
    submit(
        base,
        token,
        zip(schedule, targets, strict=True),
        lambda: {"label": LABELS[int(rng.integers(len(LABELS)))]},
        shared,
        lambda pid, _task, at: shared.acked.append((pid, at)),
    )


def project_runs(url: str, since_id: int) -> dict[int, list[tuple[float, float, float, str]]]:
    """Succeeded runs after run ``since_id``, by project: (created, started, finished, load)
    epoch seconds, by start."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT project_id, extract(epoch FROM created_at), extract(epoch FROM started_at),"
                " extract(epoch FROM finished_at), coalesce(load, '')"
                " FROM aggregation_runs WHERE id > %s AND status = 'succeeded'"
                " ORDER BY project_id, started_at",
                (since_id,),
            )
            out: dict[int, list[tuple[float, float, float, str]]] = defaultdict(list)
            for pid, created, started, finished, load in cur.fetchall():
                out[int(pid)].append((float(created), float(started), float(finished), load))
            return out
    finally:
        conn.close()


def open_runs(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM aggregation_runs WHERE status IN ('queued', 'running')"
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def last_run_id(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM aggregation_runs")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def freshness(
    acked: list[tuple[int, float]],
    runs: dict[int, list[tuple[float, float, float, str]]],
    end: float,
) -> tuple[list[float], int]:
    """Each answer's wait for the publish of the first run started after its 201 (or, when
    there is none, ``end`` minus its 201: a lower bound); and how many had none."""
    waits, unpublished = [], 0
    for pid, at in acked:
        started = [r[1] for r in runs.get(pid, [])]
        i = int(np.searchsorted(started, at, side="right"))
        if i < len(started):
            waits.append(runs[pid][i][2] - at)
        else:
            waits.append(end - at)
            unpublished += 1
    return waits, unpublished


def start_workers(services: Services, n: int, fair_skips: int, reserve: bool) -> None:
    env = {**services.env, "CROWD_FAIR_SKIPS": str(fair_skips)}
    for i in range(n):
        command = [services.crowd_cmd, "worker"]
        if reserve and i == 0:
            command.append("--no-large-runs")
        log = services.logs / f"worker-{fair_skips}{'r' if reserve else ''}-{i}.log"
        services.workers.append(spawn(command, env, log))


def stop_workers(services: Services) -> None:
    for worker in services.workers:
        worker.stop()
    services.workers.clear()


def wait_idle(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if open_runs(url) == 0:
            return True
        time.sleep(0.5)
    return False


CONFIG = re.compile(r"^(fixed|fair(?::(\d+))?)(\+reserve)?$")


def parse_config(config: str, default_skips: int) -> tuple[int, bool]:
    """``fixed``, ``fair`` or ``fair:N`` (N skips), each optionally ``+reserve``: returns
    (CROWD_FAIR_SKIPS, whether one worker runs --no-large-runs)."""
    match = CONFIG.match(config)
    if match is None:
        raise ValueError(config)
    if match.group(1) == "fixed":
        skips = 0
    else:
        skips = int(match.group(2)) if match.group(2) else default_skips
    return skips, match.group(3) is not None


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def measure(
    args: argparse.Namespace,
    url: str,
    services: Services,
    tokens: list[str],
    projects: list[tuple[int, int]],
    config: str,
) -> dict[str, Any]:
    fair_skips, reserve = parse_config(config, args.fair_skips)
    start_workers(services, args.rq_workers, fair_skips, reserve)
    classes = {pid: size_class(n) for pid, n in projects}
    large = [pid for pid, c in classes.items() if c == "large"]
    small = [pid for pid, c in classes.items() if c == "small"]
    before = last_run_id(url)

    rng = np.random.default_rng(args.seed + len(config))
    n_slots = int(args.seconds * args.rate)
    to_large = rng.random(n_slots) < (args.large_share if large else 0.0)
    targets = np.where(
        to_large,
        np.asarray(large or [0])[rng.integers(0, max(1, len(large)), n_slots)],
        np.asarray(small)[rng.integers(0, len(small), n_slots)],
    ).tolist()
    shared = Shared()
    t0 = time.monotonic() + 1.0
    due = [t0 + i / args.rate for i in range(n_slots)]
    threads = [
        threading.Thread(
            target=submitter,
            args=(
                services.base,
                tokens[c],
                targets[c :: args.clients],
                due[c :: args.clients],
                shared,
                args.seed + 100 * c,
            ),
            daemon=True,
        )
        for c in range(args.clients)
    ]
    load_before = loadavg()
    for th in threads:
        th.start()
    for th in threads:
        th.join(args.seconds + 120)
    window_end = time.time()
    drained = wait_idle(url, args.drain)
    end = time.time()
    stop_workers(services)
    wait_idle(url, 5)
    runs = project_runs(url, before)

    out: dict[str, Any] = {
        "config": config,
        "fair_skips": fair_skips,
        "reserve": reserve,
        "load_average": load_before,
        "drained": drained,
        "drain_s": end - window_end,
        "errors": shared.errors,
        "empty_fetches": shared.empty,
        "submit_late_p95_s": _pct(shared.late, 95),
        "classes": {},
    }
    for cls in ("small", "large"):
        acked = [(pid, at) for pid, at in shared.acked if classes[pid] == cls]
        waits, unpublished = freshness(acked, runs, end)
        cls_runs = [r for pid, rs in runs.items() if classes[pid] == cls for r in rs]
        out["classes"][cls] = {
            "projects": sum(1 for c in classes.values() if c == cls),
            "answers": len(acked),
            "p50_s": _pct(waits, 50),
            "p95_s": _pct(waits, 95),
            "max_s": max(waits) if waits else float("nan"),
            "unpublished": unpublished,
            "runs": len(cls_runs),
            "queue_wait_mean_s": float(np.mean([r[1] - r[0] for r in cls_runs]))
            if cls_runs
            else float("nan"),
            "run_mean_s": float(np.mean([r[2] - r[1] for r in cls_runs]))
            if cls_runs
            else float("nan"),
        }
    return out


def report(result: dict[str, Any]) -> None:
    print(
        f"\n== {result['config']} (CROWD_FAIR_SKIPS={result['fair_skips']}"
        f"{', one worker --no-large-runs' if result['reserve'] else ''}); load average"
        f" {result['load_average']}; drained: {result['drained']} after"
        f" {result['drain_s']:.0f} s; errors {result['errors'] or 'none'}; empty fetches"
        f" {result['empty_fetches']}; submissions late p95 {result['submit_late_p95_s']:.2f} s",
        flush=True,
    )
    print(
        "| class | projects | answers | p50 s | p95 s | max s | unpublished | runs |"
        " queue wait mean s | run mean s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cls, c in result["classes"].items():
        low = ">=" if c["unpublished"] else ""
        print(
            f"| {cls} | {c['projects']} | {c['answers']} | {low}{c['p50_s']:.2f} |"
            f" {low}{c['p95_s']:.2f} | {low}{c['max_s']:.2f} | {c['unpublished']} |"
            f" {c['runs']} | {c['queue_wait_mean_s']:.2f} | {c['run_mean_s']:.2f} |",
            flush=True,
        )
    worst = max(c["p95_s"] for c in result["classes"].values() if c["answers"])
    print(f"goal p95 <= {GOAL_P95:g} s in every class: {'met' if worst <= GOAL_P95 else 'NOT met'}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--small-projects", type=int, default=1000)
    p.add_argument("--small-min", type=int, default=1000, help="answers of the smallest")
    p.add_argument("--small-max", type=int, default=50_000, help="answers of the largest small")
    p.add_argument("--large-answers", type=int, default=10_000_000, help="0: no large project")
    p.add_argument("--answers-per-task", type=int, default=5)
    p.add_argument("--workers", type=int, default=50, help="worker accounts (answer senders)")
    p.add_argument("--rate", type=float, default=300.0, help="answers/s submitted, in total")
    p.add_argument("--large-share", type=float, default=0.1, help="of the answers")
    p.add_argument("--clients", type=int, default=8, help="submitting threads")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window, per config")
    p.add_argument("--drain", type=float, default=120.0, help="max seconds for runs to catch up")
    p.add_argument("--rq-workers", type=int, default=2, help="`crowd worker` processes")
    p.add_argument(
        "--configs",
        default="fixed,fair,fair+reserve",
        help="comma-separated, run in this order: fixed (RQ's order), fair (--fair-skips) or"
        " fair:N (CROWD_FAIR_SKIPS=N), each optionally +reserve (one worker --no-large-runs)",
    )
    p.add_argument("--fair-skips", type=int, default=4, help="CROWD_FAIR_SKIPS for fair")
    p.add_argument("--port", type=int, default=8786)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not configs or not all(CONFIG.match(c) for c in configs):
        raise SystemExit(
            "error: --configs takes fixed, fair or fair:N, each optionally +reserve, comma-"
            f"separated (e.g. fixed,fair,fair:16+reserve); got {args.configs!r}"
        )
    if args.clients > args.workers:
        raise SystemExit("error: --clients must be at most --workers")
    if args.workers < args.answers_per_task + args.clients:
        raise SystemExit("error: --workers must be at least --answers-per-task + --clients")

    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_many_"))
    os.environ["CROWD_STATE_DIR"] = str(logs / "state")
    rdb = redis_lib.Redis.from_url(args.redis)
    rdb.flushdb()
    sizes = small_sizes(args.small_projects, args.small_min, args.small_max)
    if args.large_answers:
        sizes.append(args.large_answers)
    results = []
    with (
        bench_database(args.postgres, args.keep_db, "bench_many") as url,
        contextlib.ExitStack() as up,
    ):
        up.callback(rdb.flushdb)
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, workers=0)
        up.callback(services.stop)
        print(
            f"many_projects: {args.small_projects} projects of {args.small_min}-{args.small_max}"
            f" answers + {'one of ' + str(args.large_answers) if args.large_answers else 'none'};"
            f" {args.rate:g} answers/s ({args.large_share:g} to the large one) for"
            f" {args.seconds:g} s per config; {args.rq_workers} crowd worker; {os.cpu_count()}"
            f" cores; load average {loadavg()}; logs {logs}",
            flush=True,
        )
        t = time.monotonic()
        req = RequesterClient(services.base, services.requester, timeout=300)
        tokens = [req.create_worker(f"sender{i}").token for i in range(args.clients)]
        for i in range(args.workers - args.clients):
            req.create_worker(f"bulk{i}")
        projects = create_projects(req, sizes, args.answers_per_task)
        n = bulk_answers(url, [pid for pid, _ in projects], args.answers_per_task, args.seed)
        for pid, _ in projects:
            req.update_project(pid, overlap=args.answers_per_task + 1)
        print(
            f"setup: {len(projects)} projects, {n} answers in {time.monotonic() - t:.0f} s",
            flush=True,
        )

        t = time.monotonic()
        start_workers(services, args.rq_workers, args.fair_skips, reserve=False)
        for pid, _ in projects:
            req.request_run(pid)
        if not wait_idle(url, 3600):
            raise SystemExit("error: the warm-up runs did not finish within an hour")
        stop_workers(services)
        print(f"warm-up: one run per project in {time.monotonic() - t:.0f} s", flush=True)

        for config in configs:
            result = measure(args, url, services, tokens, projects, config)
            report(result)
            results.append(result)
        (logs / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
