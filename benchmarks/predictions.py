"""Predictions: what posting a model's predictions costs, and what they add to reading out.

    .venv/bin/python benchmarks/predictions.py [--tasks 100000 --labels 3 --port 8786]
                                               [--redis redis://127.0.0.1:6379/7] [--keep-db]

What happens, in one run against the machine's PostgreSQL and Redis (about a minute on an idle
2-core machine with the defaults):

1. A fresh database ``bench_pred_<hex>`` (dropped at the end unless ``--keep-db``), Redis db
   ``--redis`` flushed before and after, a requester token, and ``crowd serve --no-worker``
   with its default gunicorn shape.
2. Over HTTP, each timed from the client: ``--tasks`` tasks in batches of 10,000 (the peer:
   the batch endpoint requesters already use, same rows, same request size); then the same
   tasks' predictions, 10,000 a request, by ``external_id`` with ``confidence``; then the same
   predictions again (every pair exists: the idempotent repeat); then by ``task_id`` with
   ``probabilities`` under a second model name.
3. Reading out before and after the predictions exist: every ``GET .../results`` page (1,000
   rows) and the whole ``GET .../export`` (JSON lines). The figure is the time with the
   predictions over the time without them, from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis as redis_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _service import Api, bench_database, crowd_bin, loadavg, start_services

BATCH = 10_000


def timed(what: Callable[[], object]) -> float:
    start = time.perf_counter()
    what()
    return time.perf_counter() - start


def walk_results(api: Api, pid: int) -> int:
    return sum(1 for _ in api.results(pid, page_size=1000))


def read_export(api: Api, pid: int) -> int:
    r = api.call("GET", f"/api/v1/projects/{pid}/export")
    return r.text.count("\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--port", type=int, default=8786)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)

    crowd_cmd = crowd_bin(args.crowd)
    labels = [f"l{i}" for i in range(args.labels)]
    logs = Path(tempfile.mkdtemp(prefix="crowd_predictions_"))
    rdb = redis_lib.Redis.from_url(args.redis)
    rdb.flushdb()
    with (
        bench_database(args.postgres, args.keep_db, "bench_pred") as url,
        contextlib.ExitStack() as up,
    ):
        up.callback(rdb.flushdb)
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, workers=0)
        up.callback(services.stop)
        api = Api(services.base, services.requester)
        pid = int(api.create_project("bench", labels, overlap=1)["id"])
        print(
            f"predictions: {args.tasks} tasks, {args.labels} labels, {BATCH} a request;"
            f" crowd serve --no-worker; {os.cpu_count()} cores; load average {loadavg()}",
            flush=True,
        )
        ids = [f"t{i:07d}" for i in range(args.tasks)]
        tasks = [{"external_id": e, "data": {"i": i}} for i, e in enumerate(ids)]
        t_tasks = timed(lambda: api.post_tasks(pid, tasks, chunk_size=BATCH))

        t_results_before = timed(lambda: walk_results(api, pid))
        t_export_before = timed(lambda: read_export(api, pid))

        by_confidence = [
            {"external_id": e, "label": labels[i % len(labels)], "confidence": 0.8}
            for i, e in enumerate(ids)
        ]
        t_pred = timed(lambda: api.post_predictions(pid, "m1", by_confidence, chunk_size=BATCH))
        t_repeat = timed(lambda: api.post_predictions(pid, "m1", by_confidence, chunk_size=BATCH))
        task_ids = [row["task_id"] for row in api.results(pid, page_size=1000)]
        share = 1.0 / len(labels)
        by_probabilities = [
            {"task_id": t, "probabilities": {label: share for label in labels}} for t in task_ids
        ]
        t_proba = timed(lambda: api.post_predictions(pid, "m2", by_probabilities, chunk_size=BATCH))
        t_results_after = timed(lambda: walk_results(api, pid))
        t_export_after = timed(lambda: read_export(api, pid))

    n = args.tasks
    rows = [
        ("POST .../tasks (peer)", t_tasks, t_tasks),
        ("POST .../predictions, external_id + confidence", t_pred, t_tasks),
        ("  the same again (all existing)", t_repeat, t_tasks),
        ("POST .../predictions, task_id + probabilities", t_proba, t_tasks),
    ]
    print(f"\n| ingest of {n} rows, {BATCH} a request | s | rows/s | / tasks batch |")
    print("|---|---:|---:|---:|")
    for name, seconds, peer in rows:
        print(f"| {name} | {seconds:.2f} | {n / seconds:,.0f} | {seconds / peer:.2f} |")
    print(f"\n| read-out of {n} tasks | without predictions (s) | with 2 models' (s) | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| GET .../results, every page | {t_results_before:.2f} | {t_results_after:.2f}"
        f" | {t_results_after / t_results_before:.2f} |"
    )
    print(
        f"| GET .../export (jsonl) | {t_export_before:.2f} | {t_export_after:.2f}"
        f" | {t_export_after / t_export_before:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
