"""Retrain latency: how long from a correction's 201 to a succeeded built-in model version
trained on it (issue 12), at several ``retrain_every``.

    .venv/bin/python benchmarks/retrain_latency.py [--retrain-every 50 200 1000] [--cycles 3]
        [--rate 10] [--workers 1] [--port 18210] [--redis redis://127.0.0.1:6379/2] [--seed 0]
        [--keep-db]

Against the real service, per ``retrain_every`` R, in a fresh database each (dropped unless
``--keep-db``), with Redis db ``--redis`` flushed before and after: ``crowd serve --no-worker``
and one ``crowd worker`` (the default deployment's shape: one worker takes both the
aggregation runs and the trainings).

1. A project with the built-in model on a features field (``{"input": "features", "field":
   "x"}``), overlap 1, the review lane on for every prediction (``blind_below`` 0, overlap and
   max_overlap 1, no traps, no auto-accept), ``retrain_every`` R, and ``R * (cycles + 4) + 200``
   tasks. A task's features are 2 numbers; its true label is ``pos`` when ``x0 + 0.8 e > 0``
   (e standard normal, unseen by the model), so a fitted model is right about 4 times in 5.
2. Bootstrap: one reviewer answers R tasks blind (no prediction exists yet) with their true
   labels; the first run queues version 1; we wait until it succeeded. Its predictions put every
   open task in the review lane.
3. Measurement: the same reviewer, one HTTP client (``"next": true``: one request per answer)
   paced at ``--rate`` answers a second (default 10: a crowd of a hundred reviewers at one
   answer each 10 s; 0: as fast as the service answers), answers ``cycles * R`` review-lane
   tasks with their true labels. An answer that differs from the proposal is a **correction**; its 201's
   wall-clock time is recorded. Then the reviewer keeps answering (not recorded) until every
   correction has a version trained on it, or the tasks run out.
4. A correction is trained on by the first succeeded version that **started after the run
   that published its task's label** finished (a training reads the published labels when it
   starts; a run reads the answers stored before it starts). The first such run is the first
   succeeded run started after the 201. Times come from GET .../aggregations and
   GET .../models (the server's clock, the same machine as the client's).

Printed per R: corrections measured, the answer rate, p50 / p95 of the latency, and its three
parts, medians: waiting for the retrain to be queued (201 -> version created: the next R
completions, then a run), waiting in the queue (created -> started), training (started ->
finished: fitting, predicting every task, routing them).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis as redis_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _service import Api, bench_database, crowd_bin, loadavg, start_services

LABELS = ["pos", "neg"]


def ts(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def listing(api: Api, path: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "?limit=500" + (f"&cursor={cursor}" if cursor else "")
        body = api.call("GET", path + query).json()
        out.extend(body[key])
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def make_tasks(rng: np.random.Generator, n: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    x = rng.normal(size=(n, 2))
    truth = np.where(x[:, 0] + 0.8 * rng.normal(size=n) > 0, "pos", "neg")
    tasks = [
        {"external_id": f"t{i}", "data": {"x": [round(float(a), 4), round(float(b), 4)]}}
        for i, (a, b) in enumerate(x)
    ]
    return tasks, {f"t{i}": str(y) for i, y in enumerate(truth)}


class Reviewer:
    """One worker answering with the true label, one request per answer."""

    def __init__(self, api: Api, pid: int, truth: dict[str, str]) -> None:
        self.api, self.pid, self.truth = api, pid, truth
        self.held: dict[str, Any] | None = None
        self.rate = 0.0  # answers per second; 0: as fast as the service answers
        self.next_at = 0.0

    def step(self) -> tuple[str, str | None, str, float] | None:
        """Answer one task: (external id, proposal shown, answer, wall time of the 201)."""
        if self.held is None:
            r = self.api.call("POST", f"/api/v1/projects/{self.pid}/assignments", ok=(201, 204))
            if r.status_code == 204:
                return None
            self.held = r.json()
        got = self.held
        if self.rate > 0:  # paced: the crowd's answers arrive at `rate` per second
            now = time.monotonic()
            if self.next_at > now:
                time.sleep(self.next_at - now)
            self.next_at = max(now, self.next_at) + 1.0 / self.rate
        x = got["task"]["external_id"]
        proposal = (got.get("proposal") or {}).get("label")
        label = self.truth[x]
        r = self.api.call(
            "POST", f"/api/v1/assignments/{got['assignment_id']}/answer",
            {"label": label, "next": True},
        )  # fmt: skip
        at = time.time()
        self.held = r.json().get("next")
        return x, proposal, label, at


def wait_version(api: Api, pid: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = listing(api, f"/api/v1/projects/{pid}/models", "models")
        if any(v["status"] == "succeeded" for v in versions):
            return
        if versions and all(v["status"] == "failed" for v in versions):
            raise SystemExit(f"error: training failed: {versions[0]['error']}")
        time.sleep(0.5)
    raise SystemExit("error: no succeeded model version in time")


def attribute(
    corrections: list[float], runs: list[dict[str, Any]], versions: list[dict[str, Any]]
) -> list[tuple[float, float, float, float] | None]:
    """Per correction (its 201 time): (latency, wait for queueing, queue wait, training), or
    None when no version has trained on it yet."""
    done = sorted(
        (ts(r["started_at"]), ts(r["finished_at"]))
        for r in runs
        if r["status"] == "succeeded" and r["started_at"] and r["finished_at"]
    )
    run_starts = [s for s, _ in done]
    trained = sorted(
        (ts(v["started_at"]), ts(v["created_at"]), ts(v["finished_at"]))
        for v in versions
        if v["status"] == "succeeded"
    )
    out: list[tuple[float, float, float, float] | None] = []
    for at in corrections:
        i = bisect_right(run_starts, at)
        if i == len(done):
            out.append(None)
            continue
        published = done[i][1]
        found = next(((s, c, f) for s, c, f in trained if s is not None and s >= published), None)
        if found is None:
            out.append(None)
            continue
        started, created, finished = found
        assert started is not None and created is not None and finished is not None
        out.append((finished - at, created - at, started - created, finished - started))
    return out


def measure(args: argparse.Namespace, every: int, port: int) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = every * (args.cycles + 4) + 200
    tasks, truth = make_tasks(rng, n)
    r = redis_lib.Redis.from_url(args.redis)
    r.flushdb()
    with (
        bench_database(args.postgres, args.keep_db, prefix="crowd_bench_retrain") as url,
        tempfile.TemporaryDirectory(prefix="crowd-retrain-") as logs,
    ):
        services = start_services(
            crowd_bin(args.crowd), url, args.redis, port, Path(logs), workers=args.workers
        )
        try:
            api = Api(services.base, services.requester)
            review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.0, "accept_at": None,
                      "audit_rate": 0.0, "trap_rate": 0.0}  # fmt: skip
            project = api.call("POST", "/api/v1/projects", {
                "name": f"retrain-{every}", "labels": LABELS, "overlap": 1, "gold_rate": 0.0,
                "model": {"input": "features", "field": "x"}, "retrain_every": every,
                "review": review,
            }).json()  # fmt: skip
            pid = project["id"]
            for i in range(0, n, 10_000):
                api.call("POST", f"/api/v1/projects/{pid}/tasks", {"tasks": tasks[i : i + 10_000]})
            token = api.call("POST", "/api/v1/workers", {"name": "reviewer"}).json()["token"]
            reviewer = Reviewer(Api(services.base, token), pid, truth)

            for _ in range(every):  # bootstrap: blind answers train version 1
                got = reviewer.step()
                assert got is not None and got[1] is None, got
            wait_version(api, pid)
            # The task held since the bootstrap was reserved before version 1 routed it.
            reviewer.held = None
            reviewer.rate = args.rate

            corrections: list[float] = []
            answered, lane_review = 0, 0
            start = time.time()
            while answered < args.cycles * every:
                got = reviewer.step()
                if got is None:
                    break
                answered += 1
                _x, proposal, label, at = got
                lane_review += proposal is not None
                if proposal is not None and proposal != label:
                    corrections.append(at)
            rate = answered / (time.time() - start)
            # Keep the crowd going until every correction is trained on (or no task is left).
            extra = 0
            while True:
                runs = listing(api, f"/api/v1/projects/{pid}/aggregations", "aggregations")
                versions = listing(api, f"/api/v1/projects/{pid}/models", "models")
                latencies = attribute(corrections, runs, versions)
                if all(x is not None for x in latencies):
                    break
                for _ in range(max(10, every // 5)):
                    if reviewer.step() is None:
                        break
                    extra += 1
                else:
                    continue
                time.sleep(2)  # no task left: let a last run and training finish
                runs = listing(api, f"/api/v1/projects/{pid}/aggregations", "aggregations")
                versions = listing(api, f"/api/v1/projects/{pid}/models", "models")
                latencies = attribute(corrections, runs, versions)
                if not any(v["status"] in ("queued", "running") for v in versions):
                    break
            measured = np.array([x for x in latencies if x is not None])
            train_s = [
                ts(v["finished_at"]) - ts(v["started_at"])  # type: ignore[operator]
                for v in versions if v["status"] == "succeeded"
            ]  # fmt: skip
            run_s = [rr["seconds"] for rr in runs if rr["status"] == "succeeded" and rr["seconds"]]
            return {
                "every": every, "tasks": n, "answered": answered, "review_lane": lane_review,
                "extra": extra, "rate": rate, "corrections": len(corrections),
                "trained_on": len(measured), "latency": measured,
                "versions": len([v for v in versions if v["status"] == "succeeded"]),
                "train_median": float(np.median(train_s)), "run_median": float(np.median(run_s)),
                "runs": len(run_s),
            }  # fmt: skip
        finally:
            services.stop()
            with contextlib.suppress(Exception):
                r.flushdb()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/2")
    p.add_argument("--crowd", default=None)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--port", type=int, default=18210)
    p.add_argument("--retrain-every", type=int, nargs="+", default=[50, 200, 1000])
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="answers per second during the measurement; 0: as fast as it goes",
    )
    p.add_argument("--workers", type=int, default=1, help="crowd worker processes")
    args = p.parse_args(argv)
    print(f"load average before: {loadavg()}; rate {args.rate}/s, {args.workers} worker(s)")
    rows = []
    for i, every in enumerate(args.retrain_every):
        res = measure(args, every, args.port + i)
        lat = res["latency"]
        if len(lat) == 0:
            print(f"retrain_every {every}: no correction was trained on")
            continue
        p50, p95 = np.percentile(lat[:, 0], [50, 95])
        parts = np.median(lat[:, 1:], axis=0)
        rows.append((every, res, p50, p95, parts))
        print(
            f"retrain_every {every:5d}: {res['trained_on']}/{res['corrections']} corrections "
            f"trained on, {res['answered']} answers at {res['rate']:.1f}/s "
            f"({res['review_lane']} in the review lane), {res['versions']} versions, "
            f"{res['runs']} runs; latency p50 {p50:.1f} s, p95 {p95:.1f} s; medians: "
            f"to queued {parts[0]:.1f} s, queued {parts[1]:.1f} s, training {parts[2]:.1f} s "
            f"(a training {res['train_median']:.1f} s, a run {res['run_median']:.2f} s, "
            f"on {res['tasks']} tasks)",
            flush=True,
        )
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
