"""A live run's job on its own: load / fit / publish, and the peak RSS of the process running it.

    PYTHONPATH=. .venv/bin/python benchmarks/job_rss.py --database URL --project ID
        --state-dir DIR [--redis redis://127.0.0.1:6379/3] [--runs 3] [--new 60] [--code DIR]

For a project benchmarks/freshness.py left behind (``--keep-db``; its log folder's ``state``
is the workers' ``CROWD_STATE_DIR``, holding their copy of the answers). Each run: ``--new``
answered assignments are inserted on random tasks (as freshness.py's clients add between
runs), a run row is created, and the RQ job function,
``crowd.background.aggregation.aggregate(run_id, project_id)`` (``(run_id)`` in code older than
the project id), runs in a fresh Python process (``--code``
first on its ``PYTHONPATH``: another checkout's code on the same database and kept copy).
That process reports its own ``ru_maxrss`` after importing the job's modules (the
interpreter, numpy, scipy, psycopg2: what any work-horse holds before a job) and after the
job: the job's peak RSS, attributed to the run alone. (freshness.py reads ``RUSAGE_CHILDREN``,
the largest of all its children, API processes included, which cannot say which one.)
RQ's work-horse is a fork of the worker, sharing its imported modules, so its RSS is about
this one's.

Load / fit / publish are read back from ``aggregation_runs`` as the job recorded them
(publish = ``finished_at - started_at`` minus the other two), plus the job's wall time in
the child. The database's project and kept copy are left as a run leaves them. ``--cold``
makes each run a cold fit (what follows a doubling of the answers, every iteration from the
majority vote) and, with ``--state-dir`` an empty folder, a full read: the heaviest run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import loadavg

CHILD = """
import inspect, json, resource, sys, time
from crowd.background import aggregation  # the job's modules, as a work-horse has them
ids = [int(a) for a in sys.argv[1:]][: len(inspect.signature(aggregation.aggregate).parameters)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
began = time.perf_counter()
aggregation.aggregate(*ids)
wall = time.perf_counter() - began
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "wall": wall, "cpu": cpu}))
"""


def add_answers(url: str, project_id: int, n: int, seed: int) -> int:
    """Insert ``n`` answered assignments on random tasks by random workers of the project
    (a pair already answered is skipped); returns how many went in."""
    rng = np.random.default_rng(seed)
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT min(id), max(id), max(labels_n) FROM tasks,"
                " (SELECT cardinality(labels) AS labels_n FROM projects WHERE id = %s) p"
                " WHERE project_id = %s",
                (project_id, project_id),
            )
            low, high, k = cur.fetchone()
            cur.execute(
                "SELECT worker_id FROM assignments WHERE project_id = %s"
                " AND id < (SELECT min(id) + 100000 FROM assignments WHERE project_id = %s)"
                " GROUP BY worker_id",
                (project_id, project_id),
            )
            workers = [r[0] for r in cur.fetchall()]
            rows = [
                (project_id, int(t), int(w), int(y))
                for t, w, y in zip(
                    rng.integers(low, high + 1, n),
                    rng.choice(workers, n),
                    rng.integers(0, k, n),
                    strict=True,
                )
            ]
            added = 0
            for row in rows:
                cur.execute(
                    "INSERT INTO assignments (project_id, task_id, worker_id, status, label,"
                    " created_at, expires_at, answered_at)"
                    " VALUES (%s, %s, %s, 'answered', %s, now(), now(), now())"
                    " ON CONFLICT DO NOTHING",
                    row,
                )
                added += cur.rowcount
    finally:
        conn.close()
    return added


def new_run(url: str, project_id: int, cold: bool) -> int:
    """A queued run row; with ``cold``, the last run first claims a cold fit behind it on
    1 answer, so the job's REFIT_GROWTH rule fits this one cold (as after the answers
    doubled)."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            if cold:
                cur.execute(
                    "UPDATE aggregation_runs SET cold_answers = 1"
                    " WHERE id = (SELECT last_run_id FROM projects WHERE id = %s)",
                    (project_id,),
                )
            cur.execute(
                "INSERT INTO aggregation_runs (project_id, status, trigger, method)"
                " SELECT id, 'queued', 'api', method FROM projects WHERE id = %s RETURNING id",
                (project_id,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def recorded(url: str, run_id: int) -> dict[str, object]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT status, error, load, load_seconds, fit_seconds,"
                " extract(epoch FROM finished_at - started_at), iterations, answers"
                " FROM aggregation_runs WHERE id = %s",
                (run_id,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    names = ("status", "error", "load", "load_s", "fit_s", "run_s", "iterations", "answers")
    return dict(zip(names, row, strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", required=True, help="the kept benchmark database's URL")
    p.add_argument("--project", type=int, required=True)
    p.add_argument("--state-dir", required=True, help="the workers' CROWD_STATE_DIR")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--new", type=int, default=60, help="answers added before each run")
    p.add_argument("--code", default=".", help="the checkout whose crowd the job runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cold", action="store_true",
        help="fit cold (the previous run's cold_answers set to 1): the heaviest run",
    )  # fmt: skip
    args = p.parse_args(argv)

    code = str(Path(args.code).resolve())
    head = subprocess.run(
        ["git", "-C", code, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    env = {
        **os.environ,
        "PYTHONPATH": code,
        "CROWD_DATABASE_URL": args.database,
        "CROWD_REDIS_URL": args.redis,
        "CROWD_STATE_DIR": args.state_dir,
    }
    print(f"job_rss: code {code} @ {head or '?'}; load average {loadavg()}", flush=True)
    rows = []
    for i in range(args.runs):
        added = add_answers(args.database, args.project, args.new, args.seed + i)
        run_id = new_run(args.database, args.project, args.cold)
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(run_id), str(args.project)],
            env=env, cwd=code, capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - t
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rec = recorded(args.database, run_id)
        if rec["status"] != "succeeded":
            print(f"run {run_id}: {rec['status']}: {rec['error']}", file=sys.stderr)
            return 1
        load_s, fit_s, run_s = (float(rec[x]) for x in ("load_s", "fit_s", "run_s"))  # type: ignore[arg-type]
        row = {
            "run": run_id, "added": added, "answers": rec["answers"], "load": rec["load"],
            "iterations": rec["iterations"], "load_s": load_s, "fit_s": fit_s,
            "publish_s": run_s - load_s - fit_s, "job_wall": child["wall"],
            "job_cpu": child["cpu"], "base_gib": child["base_kib"] / 2**20,
            "peak_gib": child["peak_kib"] / 2**20, "process_s": elapsed,
        }  # fmt: skip
        rows.append(row)
        print(
            f"run {run_id}: {row['answers']} answers (+{added}), {row['load']},"
            f" {row['iterations']} iterations; load {load_s:.2f} s, fit {fit_s:.2f} s,"
            f" publish {row['publish_s']:.2f} s; job {child['wall']:.2f} s wall,"
            f" {child['cpu']:.2f} s CPU; RSS after imports {row['base_gib']:.2f} GiB,"
            f" peak {row['peak_gib']:.2f} GiB",
            flush=True,
        )
    med = {
        key: statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]
        for key in ("load_s", "fit_s", "publish_s", "job_wall", "job_cpu", "peak_gib")
    }
    print(
        f"median of {len(rows)}: load {med['load_s']:.2f} / fit {med['fit_s']:.2f} / publish"
        f" {med['publish_s']:.2f} s; job {med['job_wall']:.2f} s wall, {med['job_cpu']:.2f} s"
        f" CPU; peak RSS {med['peak_gib']:.2f} GiB (max {max(r['peak_gib'] for r in rows):.2f});"  # type: ignore[type-var]
        f" load average {loadavg()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
