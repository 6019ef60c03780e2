"""The dashboard's review panel: what GET .../review's per-model figures cost on a big project.

    .venv/bin/python benchmarks/review_panel.py [--predictions 200000] [--repeat 5]

A fresh database ``crowd_bench_panel_<hex>`` (dropped at the end unless ``--keep-db``) holds one
project with ``--predictions`` tasks, each predicted by one model (confidence uniform in
[0, 1]); 5% are gold; the review lane (confidence >= 0.5) has one answer per task with the
proposal shown (80% confirm), the blind tasks one blind answer; every non-gold task has a
published result. Rows are written by SQL (this measures reading, not posting).

Timed in the same process, median of ``--repeat``:

* the peer: ``review.report`` + ``review.thresholds``, what GET .../review read before the
  panel (index reads);
* ``review.model_figures`` (one grouped pass over the predictions), which the API keeps in
  Redis for 30 s (crowd/api/review.py);
* GET .../review through the Flask test client (the requester's view, JSON and all): the first
  one after the key expired, and the polls that find the figures in Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _service import bench_database

from crowd.api import create_app
from crowd.store import review
from crowd.store.accounts import rotate_token
from crowd.store.db import Database
from crowd.store.migrate import upgrade
from crowd.store.projects import get


def median_seconds(what: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        what()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SEED = """
INSERT INTO accounts (name, role, token_hash) VALUES ('req', 'requester', 'x'), ('w', 'worker', 'y');
INSERT INTO projects (owner_id, name, labels, overlap, lease_seconds, review, last_run_id)
VALUES (1, 'big', '{pos,neg}', 1, 600,
        '{"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "accept_at": null,
          "audit_rate": 0.0, "trap_rate": 0.0}', 1);
INSERT INTO tasks (project_id, external_id, data, gold, target, taken, answers)
SELECT 1, 't' || i, '{}', CASE WHEN i %% 20 = 0 THEN (i %% 2)::smallint END,
       CASE WHEN i %% 20 = 0 THEN 2147483647 ELSE 1 END,
       CASE WHEN i %% 20 = 0 THEN 0 ELSE 1 END, CASE WHEN i %% 20 = 0 THEN 0 ELSE 1 END
FROM generate_series(1, %(n)s) i;
INSERT INTO predictions (project_id, task_id, model, label, confidence)
SELECT 1, id, 'resnet', (id %% 2)::smallint, random() FROM tasks;
UPDATE tasks t SET proposal = q.label FROM predictions q
WHERE q.task_id = t.id AND q.confidence >= 0.5 AND t.gold IS NULL;
INSERT INTO assignments (project_id, task_id, worker_id, status, label, expires_at,
                         answered_at, proposal)
SELECT 1, t.id, 2, 'answered',
       CASE WHEN t.proposal IS NULL OR random() < 0.8 THEN coalesce(t.proposal, 0)
            ELSE 1 - t.proposal END, now(), now(), t.proposal
FROM tasks t WHERE t.gold IS NULL;
INSERT INTO task_results (task_id, project_id, run_id, label, confidence, answers, posteriors,
                          decision)
SELECT a.task_id, 1, 1, a.label, 0.9, 1, '{0.9,0.1}', 0.9 FROM assignments a;
ANALYZE;
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/2")
    p.add_argument("--predictions", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    with bench_database(args.postgres, args.keep_db, prefix="crowd_bench_panel") as url:
        db = Database(url)
        upgrade(db)
        with db.transaction() as cur:
            cur.execute(SEED, {"n": args.predictions})
        with db.transaction() as cur:
            project = get(cur, 1)
            token = rotate_token(cur, 1)
        assert project is not None
        os.environ.update(CROWD_DATABASE_URL=url, CROWD_REDIS_URL=args.redis)
        app = create_app()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        key = "crowd:review:figures:1"

        def poll() -> None:
            r = client.get("/api/v1/projects/1/review", headers=headers)
            assert r.status_code == 200, r.json

        def peer() -> None:
            with db.transaction() as cur:
                review.report(cur, project)
                review.thresholds(cur, project)

        def figures() -> None:
            with db.transaction() as cur:
                review.model_figures(cur, 1)

        t_peer = median_seconds(peer, args.repeat)
        t_fig = median_seconds(figures, args.repeat)
        redis = app.extensions["crowd.redis"]

        def cold_poll() -> None:
            redis.delete(key)
            poll()

        t_cold = median_seconds(cold_poll, args.repeat)
        poll()
        t_hit = median_seconds(poll, args.repeat)
        redis.delete(key)
        with db.transaction() as cur:
            (model,) = review.model_figures(cur, 1).values()
        print(
            f"{args.predictions:,} predictions, {model['reviewed']:,} reviewed, "
            f"{model['review_answers']:,} review answers"
        )
        print(f"peer (report + thresholds, before the panel): {t_peer * 1000:8.1f} ms")
        print(
            f"model_figures (uncached):                     {t_fig * 1000:8.1f} ms"
            f"  = {t_fig / t_peer:.1f}x the peer"
        )
        print(
            f"GET .../review, figures not in Redis:         {t_cold * 1000:8.1f} ms"
            f"  = {t_cold / t_peer:.1f}x the peer"
        )
        print(
            f"GET .../review, figures in Redis (a poll):    {t_hit * 1000:8.1f} ms"
            f"  = {t_hit / t_peer:.1f}x the peer"
        )
        app.extensions["crowd.db"].close()
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
