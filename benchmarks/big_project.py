"""Big projects: posting tasks beside a bare COPY, and results pages at any cursor depth.

    python benchmarks/big_project.py [--tasks 2000000] [--batches 10] [--batch 10000]
                                     [--samples 300] [--limit 100]

Against the machine's PostgreSQL and Redis, in a fresh database ``crowd_bench_<hex>``
(dropped at the end unless ``--keep-db``), with ``crowd serve --no-worker`` on it:

1. **Posting** (issue 14's goal: >= 0.3 x the rows/s of a bare COPY, same run). ``--batches``
   requests of ``--batch`` tasks each (``POST /api/v1/projects/{id}/tasks``, new external ids,
   a small JSON ``data`` each, one keep-alive connection, body encoded before the clock
   starts), alternated with a bare ``COPY tasks (project_id, external_id, data, target) FROM
   STDIN`` of the same rows into the same table (for a second project, so neither meets the
   other's ids), one COPY per batch on one connection, each committed. rows/s each, and the
   ratio.
2. **Results pages** (goal: p99 <= 20 ms at the first, middle and last page). A project of
   ``--tasks`` tasks is built in SQL (``INSERT ... SELECT generate_series`` in chunks of
   500,000: each task with 3 answers counted and a published ``task_results`` row, as after
   a run), then ``GET /api/v1/projects/{id}/results?limit=--limit`` is timed at the first
   page, the middle one and the last one, ``--samples`` each, interleaved. Peer: the same
   page read the OFFSET way (``ORDER BY id LIMIT n OFFSET k`` in SQL, no HTTP; a tenth as
   many samples), which is what a results page would cost without keyset pagination.

Timings are wall-clock on a shared machine: the load average is printed at the start and
the end.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import add_server_args, bench_database, crowd_bin, loadavg, start_services

from crowd.api.body import encode_cursor

GOAL_POST_RATIO = 0.3
GOAL_PAGE_P99_MS = 20.0
_CHUNK = 500_000


def _rows(lo: int, n: int, prefix: str) -> list[dict[str, object]]:
    return [{"external_id": f"{prefix}{i}", "data": {"text": f"item {i}", "n": i}}
            for i in range(lo, lo + n)]  # fmt: skip


def _copy_buffer(project_id: int, rows: list[dict[str, object]], target: int) -> io.StringIO:
    """The rows as COPY text: tab-separated, JSON data (which never holds a tab or a
    backslash here)."""
    lines = [f"{project_id}\t{r['external_id']}\t{json.dumps(r['data'])}\t{target}\n" for r in rows]
    return io.StringIO("".join(lines))


def bench_posting(base: str, token: str, url: str, batches: int, batch: int) -> tuple[float, float]:
    """(posted rows/s, COPY rows/s), alternating one request and one COPY of a batch."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    spec = {"name": "posting", "labels": ["a", "b", "c"], "overlap": 3}
    posted = s.post(f"{base}/api/v1/projects", json=spec).json()["id"]
    copied = s.post(f"{base}/api/v1/projects", json={**spec, "name": "copy"}).json()["id"]
    conn = psycopg2.connect(url)
    post_s = copy_s = 0.0
    try:
        for k in range(batches):
            rows = _rows(k * batch, batch, "t")
            body = json.dumps({"tasks": rows}).encode()
            t0 = time.perf_counter()
            r = s.post(
                f"{base}/api/v1/projects/{posted}/tasks",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            post_s += time.perf_counter() - t0
            if r.status_code != 201 or r.json()["created"] != batch:
                raise SystemExit(f"error: POST tasks answered {r.status_code} {r.text[:300]}")
            buffer = _copy_buffer(copied, rows, 3)
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                cur.copy_expert(
                    "COPY tasks (project_id, external_id, data, target) FROM STDIN", buffer
                )
            conn.commit()
            copy_s += time.perf_counter() - t0
    finally:
        conn.close()
    n = batches * batch
    return n / post_s, n / copy_s


def build_project(base: str, token: str, url: str, n_tasks: int) -> tuple[int, float]:
    """A project of ``n_tasks`` answered and aggregated tasks, built in SQL; (id, seconds)."""
    spec = {"name": "big", "labels": ["a", "b", "c"], "overlap": 3}
    r = requests.post(
        f"{base}/api/v1/projects", json=spec, headers={"Authorization": f"Bearer {token}"}
    )
    project_id = int(r.json()["id"])
    t0 = time.perf_counter()
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            for lo in range(0, n_tasks, _CHUNK):
                hi = min(lo + _CHUNK, n_tasks)
                cur.execute(
                    """
                    WITH made AS (
                        INSERT INTO tasks (project_id, external_id, data, target, taken, answers)
                        SELECT %(p)s, 'big' || g, jsonb_build_object('n', g), 3, 3, 3
                        FROM generate_series(%(lo)s, %(hi)s - 1) g
                        RETURNING id
                    )
                    INSERT INTO task_results
                        (task_id, project_id, run_id, label, confidence, answers, posteriors,
                         decision)
                    SELECT id, %(p)s, 1, (id %% 3)::smallint, 0.9, 3, '{0.9,0.05,0.05}', 0.9
                    FROM made
                    """,
                    {"p": project_id, "lo": lo, "hi": hi},
                )
                conn.commit()
                print(f"  built {hi:,} tasks in {time.perf_counter() - t0:.0f} s", flush=True)
            cur.execute("ANALYZE tasks")
            cur.execute("ANALYZE task_results")
            conn.commit()
    finally:
        conn.close()
    return project_id, time.perf_counter() - t0


def _task_ids_at(url: str, project_id: int, limit: int) -> dict[str, int]:
    """The cursor id just before the first, middle and last page of the project's tasks."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT min(id), max(id), count(*) FROM tasks WHERE project_id = %s", (project_id,)
            )
            lo, hi, n = cur.fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    # Ids of one project built in one go are consecutive: id lo + k is its k-th task.
    assert hi - lo + 1 == n, "the big project's ids are not consecutive"
    return {"first": 0, "middle": lo + n // 2 - 1, "last": hi - limit}


def bench_pages(
    base: str, token: str, url: str, project_id: int, samples: int, limit: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per depth: (HTTP latencies of the keyset page, SQL latencies of the OFFSET page), s."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    after = _task_ids_at(url, project_id, limit)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    out: dict[str, tuple[list[float], list[float]]] = {d: ([], []) for d in after}
    with conn.cursor() as cur:
        cur.execute("SELECT min(id) FROM tasks WHERE project_id = %s", (project_id,))
        lo = int(cur.fetchone()[0])  # type: ignore[index]
    offsets = {d: (0 if a == 0 else a - lo + 1) for d, a in after.items()}
    try:
        for i in range(samples):
            for depth, cursor_id in after.items():
                query = f"{base}/api/v1/projects/{project_id}/results?limit={limit}"
                if cursor_id:
                    query += f"&cursor={encode_cursor(cursor_id)}"
                t0 = time.perf_counter()
                r = s.get(query)
                out[depth][0].append(time.perf_counter() - t0)
                if r.status_code != 200 or len(r.json()["results"]) != limit:
                    raise SystemExit(f"error: results page {depth}: {r.status_code} {r.text[:200]}")
                if i % 10 == 0:  # the peer: a tenth of the samples, it is slow at depth
                    t0 = time.perf_counter()
                    with conn.cursor() as cur:
                        cur.execute(
                            "SELECT t.id, t.external_id, r.label, r.confidence FROM tasks t"
                            " LEFT JOIN task_results r ON r.task_id = t.id"
                            " WHERE t.project_id = %s AND t.gold IS NULL"
                            " ORDER BY t.id LIMIT %s OFFSET %s",
                            (project_id, limit, offsets[depth]),
                        )
                        cur.fetchall()
                    out[depth][1].append(time.perf_counter() - t0)
    finally:
        conn.close()
    return out


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=2_000_000, help="tasks in the big project")
    p.add_argument("--batches", type=int, default=10, help="posting requests (and COPYs)")
    p.add_argument("--batch", type=int, default=10_000, help="tasks per request")
    p.add_argument("--samples", type=int, default=300, help="timed pages per depth")
    p.add_argument("--limit", type=int, default=100, help="results per page")
    p.add_argument("--port", type=int, default=8775)
    add_server_args(p, redis_db=14)
    args = p.parse_args(argv)

    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_big_project_"))
    print(f"big_project: load average {loadavg()}; logs in {logs}")
    met = True
    with bench_database(args.postgres, args.keep_db) as url:
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, workers=0)
        try:
            base, token = services.base, services.requester
            post_rate, copy_rate = bench_posting(base, token, url, args.batches, args.batch)
            ratio = post_rate / copy_rate
            met &= ratio >= GOAL_POST_RATIO
            print(f"\nposting {args.batches} x {args.batch:,} tasks, alternated with COPY:\n")
            print("| figure | crowd POST | bare COPY | ratio | goal | met? |")
            print("| --- | ---: | ---: | ---: | --- | --- |")
            print(
                f"| tasks/s | {post_rate:,.0f} | {copy_rate:,.0f} | {ratio:.2f} |"
                f" >= {GOAL_POST_RATIO} | {'yes' if ratio >= GOAL_POST_RATIO else 'NO'} |"
            )

            print(f"\nbuilding a project of {args.tasks:,} tasks in SQL ...", flush=True)
            project_id, built = build_project(base, token, url, args.tasks)
            print(f"built in {built:.0f} s ({args.tasks / built:,.0f} tasks/s)")
            pages = bench_pages(base, token, url, project_id, args.samples, args.limit)
            print(
                f"\nresults pages of {args.limit} in a {args.tasks:,}-task project,"
                f" {args.samples} samples per depth (HTTP, keyset cursor) beside the OFFSET"
                " query (SQL only):\n"
            )
            print("| page | p50 ms | p99 ms | goal p99 | met? | OFFSET p50 ms | OFFSET p99 ms |")
            print("| --- | ---: | ---: | --- | --- | ---: | ---: |")
            for depth, (keyset, offset) in pages.items():
                p99 = _ms(keyset, 99)
                ok = p99 <= GOAL_PAGE_P99_MS
                met &= ok
                print(
                    f"| {depth} | {statistics.median(keyset) * 1000:.1f} | {p99:.1f} |"
                    f" <= {GOAL_PAGE_P99_MS:.0f} | {'yes' if ok else 'NO'} |"
                    f" {_ms(offset, 50):.1f} | {_ms(offset, 99):.1f} |"
                )
        finally:
            services.stop()
    print(f"\nload average at the end {loadavg()}")
    print("goals met" if met else "goals NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
