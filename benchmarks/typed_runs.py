"""A live run's duration per project type, next to a categorical project's, at 1M answers.

    .venv/bin/python benchmarks/typed_runs.py [--tasks 200000 --answers-per-task 5
        --workers 1000 --labels 4 --items 5000 --repeats 2 --server-url postgresql://...]
        [--types categorical,multilabel,numeric,pairwise] [--keep-db]

Freshness (benchmarks/freshness.py) is about two run durations (a run's answers wait for the
run in progress, then for their own), and a run is CPU-bound: the run duration is what a
project type changes. So this times, in this process on a fresh database
``bench_typed_<hex>`` (dropped afterwards), ``--repeats`` runs of one project per type, each
with ``--tasks`` x ``--answers-per-task`` answers COPYed straight into PostgreSQL from
``--workers`` synthetic workers of accuracy U(0.55, 0.95):

* categorical: ``--labels`` labels, as crowd.background.aggregation.aggregate runs it:
  crowd.store.snapshot.load, crowd.background.aggregation.fit (the project's default method
  ``auto``, warm-started from the previous run as live runs are), then the changed rows and
  crowd.store.runs.publish;
* multilabel (``--labels`` labels, a worker misses a true label or ticks a false one with
  probability 1 - accuracy), numeric (scale 0-100, noise sd 40 (1 - accuracy)), pairwise
  (``--items`` items with normal scores, pairs drawn at random, the better item reported
  with probability accuracy): crowd.store.typed.load,
  crowd.background.aggregation.fit_typed_run (pairwise warm-started from the previous run
  as live runs are), crowd.store.typed.publish (crowd.background.aggregation._typed_run's
  steps).

Each run is recorded and published for real; the webhook step is left out (no webhook is
registered, so it writes nothing). The first run publishes every result; later runs only
the changed ones. Printed: per type and run, load / fit / publish / total wall seconds (and
this process's CPU seconds: the load and publish time is mostly PostgreSQL's), and each
type's total against categorical's (the issue's goal for freshness: within 1.5x). On a
shared machine wall time follows the load average, printed with each run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._open_loop import SCALE, distinct_workers, load_drawn
from benchmarks._service import bench_database
from crowd.background import aggregation
from crowd.em.live import changed_rows
from crowd.em.typed import changed_typed
from crowd.store import migrate, projects, runs, snapshot, typed
from crowd.store.db import Database

TYPES = ("categorical", "multilabel", "numeric", "pairwise")


def make_project(url: str, kind: str, n_labels: int, tasks: int, items: int, seed: int) -> int:
    """One project of ``kind`` with ``tasks`` tasks (COPY); returns its id."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO accounts (role, name, token_hash) VALUES ('requester', %s, %s)"
                " RETURNING id",
                (f"req-{kind}", os.urandom(32)),
            )
            owner = cur.fetchone()[0]  # type: ignore[index]
            labels = [f"l{i}" for i in range(n_labels)]
            settings: dict[str, object] = {
                "name": kind,
                "overlap": 5,
                "lease_seconds": 600,
                "gold_rate": 0.0,
            }
            if kind == "numeric":
                labels, settings["scale"] = [], SCALE
            elif kind == "pairwise":
                labels = ["left", "right"]
            if kind != "categorical":
                settings["type"] = kind
            project = projects.create(cur, owner, labels, settings)
            rng = np.random.default_rng(seed)
            buf = io.StringIO()
            for i in range(tasks):
                data: dict[str, object] = {"i": i}
                if kind == "pairwise":
                    a, b = rng.choice(items, 2, replace=False)
                    data = {
                        "left": {"id": f"i{a}", "data": {}},
                        "right": {"id": f"i{b}", "data": {}},
                    }
                buf.write(f"{project.id}\tt{i}\t{json.dumps(data)}\t5\n")
            buf.seek(0)
            cur.copy_expert("COPY tasks (project_id, external_id, data, target) FROM STDIN", buf)
        conn.commit()
        return project.id
    finally:
        conn.close()


def bulk_answers(
    url: str, project_id: int, kind: str, per_task: int, n_workers: int, n_labels: int, seed: int
) -> int:
    """COPY ``per_task`` answers per task from distinct synthetic workers; returns how many."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, data -> 'left' ->> 'id', data -> 'right' ->> 'id' FROM tasks"
                " WHERE project_id = %s ORDER BY id",
                (project_id,),
            )
            rows = cur.fetchall()
            task_ids = np.array([r[0] for r in rows], dtype=np.int64)
            cur.execute(
                "INSERT INTO accounts (role, name, token_hash)"
                " SELECT 'worker', 'w' || g, decode(md5(random()::text || g), 'hex')"
                " || decode(md5(g::text || %s), 'hex') FROM generate_series(1, %s) g RETURNING id",
                (str(project_id), n_workers),
            )
            worker_ids = np.array(sorted(r[0] for r in cur.fetchall()), dtype=np.int64)
        rng = np.random.default_rng(seed)
        drawn_for = distinct_workers(rng, task_ids.size, n_workers, per_task)
        better_left = None
        if kind == "pairwise":
            score = {f"i{i}": x for i, x in enumerate(rng.normal(0, 1, 100_000))}
            better_left = np.array([score[r[1]] > score[r[2]] for r in rows])
        load_drawn(
            conn, project_id, kind, rng, task_ids, worker_ids, drawn_for,
            n_labels=n_labels, per_task=per_task, better_left=better_left,
        )  # fmt: skip
        return int(drawn_for[1].size)
    finally:
        conn.close()


def one_run(db: Database, project_id: int) -> dict[str, float]:
    """One run of the project, timed by phase (see the module docstring)."""
    with db.transaction() as cur:
        run = runs.create(cur, project_id, "api")
        runs.start(cur, run.project_id, run.id)
        project = projects.get(cur, project_id)
    assert project is not None
    t0, c0 = time.perf_counter(), time.process_time()
    if project.type == "categorical":
        with db.transaction() as cur:
            snap = snapshot.load(cur, project_id, len(project.labels), exclude_banned=True)
        t1 = time.perf_counter()
        result, cold = aggregation.fit(snap, project)
        t2 = time.perf_counter()
        p = snap.published
        changed = changed_rows(
            result, p["task"], p["label"], p["answers"], p["confidence"], p["decision"]
        )
        with db.transaction() as cur:
            runs.publish(
                cur, run.id, project, result, np.flatnonzero(changed), snap.answers_total, cold
            )
    else:
        with db.transaction() as cur:
            answers, total, published, previous = typed.load(cur, project)
        t1 = time.perf_counter()
        fitted, cold = aggregation.fit_typed_run(project, answers, previous)
        t2 = time.perf_counter()
        rows = np.flatnonzero(
            changed_typed(fitted, published, value_tol=typed.value_tolerance(project))
        )
        with db.transaction() as cur:
            typed.publish(cur, run.id, project, fitted, total, rows, cold)
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    return {"load": t1 - t0, "fit": t2 - t1, "publish": t3 - t2, "total": t3 - t0, "cpu": cpu}


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--answers-per-task", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--types", default=",".join(TYPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    kinds = [k for k in args.types.split(",") if k]
    with bench_database(args.server_url, args.keep_db, prefix="bench_typed") as url:
        db = Database(url, max_connections=2)
        migrate.upgrade(db)
        totals: dict[str, list[float]] = {}
        try:
            for i, kind in enumerate(kinds):
                pid = make_project(url, kind, args.labels, args.tasks, args.items, args.seed + i)
                n = bulk_answers(
                    url, pid, kind, args.answers_per_task, args.workers, args.labels, args.seed + i
                )
                print(f"{kind}: {n:,} answers on {args.tasks:,} tasks", flush=True)
                for r in range(args.repeats):
                    t = one_run(db, pid)
                    totals.setdefault(kind, []).append(t["total"])
                    print(
                        f"  run {r + 1}: load {t['load']:.2f} s  fit {t['fit']:.2f} s"
                        f"  publish {t['publish']:.2f} s  total {t['total']:.2f} s"
                        f"  (this process's CPU {t['cpu']:.2f} s; load average {_load()})",
                        flush=True,
                    )
        finally:
            db.close()
    if "categorical" in totals:
        base = float(np.median(totals["categorical"][1:] or totals["categorical"]))
        print(f"\nlater runs (median), against categorical's {base:.2f} s:")
        for kind, seconds in totals.items():
            mine = float(np.median(seconds[1:] or seconds))
            print(f"  {kind:12s} {mine:6.2f} s  {mine / base:5.2f}x  (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
