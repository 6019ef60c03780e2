"""Label efficiency: replay real crowds through the HTTP API, fixed overlap against dynamic.

    .venv/bin/python benchmarks/replay.py --data ../shared/datasets

(``--data`` is the datasets folder, or one dataset's folder; ``--datasets NAME ...`` picks
others, ``--all`` takes every dataset with >= 5 answers per task; ``--targets 0.9 0.95 0.99``
compares several confidence targets in one run.)

What happens, against the machine's PostgreSQL and Redis:

1. A fresh database ``bench_replay_<hex>`` is created (dropped at the end; ``--keep-db`` keeps
   it) and Redis db ``--redis`` (default db 12) is flushed, before and after. ``crowd token
   create --role requester`` makes the requester token (and migrates), ``crowd serve
   --no-worker`` starts the API with its default gunicorn shape, and ``--agg-workers``
   separate ``crowd worker`` processes run the aggregation jobs (same environment).
2. Per dataset, over HTTP: one worker account per real worker, and one project per setting,
   each holding every task of the dataset (gold_rate 0, no gold tasks posted: no gold is
   used by anything but the final scoring):
   * fixed: ``overlap`` = the dataset's largest number of distinct workers on one task, so
     every recorded answer can be used;
   * dynamic: ``overlap`` = ``--overlap`` (default 3), ``max_overlap`` = that same largest
     number, ``confidence_target`` = each of ``--targets``.
   Labels are given in crowd.em's class order (numeric when every label is a number), so ties
   fall as in benchmarks/accuracy.py. A worker who answered a task more than once keeps its
   first answer (the service stores one answer per worker and task).
3. The crowd, one project at a time per client thread (``--parallel`` projects at once):
   rounds over the real workers, in a random order each round (seeded by ``--seed`` and the
   dataset, so fixed and dynamic see the same orders). A worker fetches; when handed a task
   it has a recorded answer for it answers with that label (``"next": true``, so answer and
   next fetch are one request); when handed any other task it skips it (the service never
   shows it that task again) and fetches again; it stops at 204 (or ``next`` null). A worker
   that has given all its recorded answers leaves the crowd (it could only skip from then
   on, which changes nothing for the others; ``--no-leave`` keeps it fetching and skipping
   to 204 every round, as the issue words it, at a much higher request count). Rounds go on
   until a round brings no new answer *and* the newest aggregation run has finished having
   read every answer (so the extensions it decided have been offered in a later round).
   Then the final run's results are read from GET /results.
4. Accuracy on gold = tasks whose result label equals gold / rows of ``gold.csv`` (a task
   with no result counts as wrong), as in benchmarks/accuracy.py. Answers used = answers the
   service stored in the project.

Printed: two tables, a row per dataset and dynamic setting: answers per task (distinct workers
per task, mean), fixed overlap's answers and accuracy, dynamic overlap's answers (and % of
fixed) and accuracy, the difference in points, and the goal: dynamic within 0.5 point of
fixed accuracy while using <= 70% of its answers (issue: on the datasets with >= 5 answers
per task). The first table scores the results the service published (GET /results); the
second scores a cold refit (crowd.em ``fit_run``, the project's method, no warm start) of the
answers each project stored (GET /answers), which isolates the overlap policy, i.e. which
answers were collected, from the service's warm-started fits. Then per project: answers,
skips, requests, rounds, aggregation runs, how many results equal the majority vote of the
stored answers and how many classes they use, and wall time; a WARNING for a published fit
that looks permuted or collapsed.

To compare stopping rules quickly, benchmarks/overlap_sim.py runs the same protocol offline
(no HTTP, seconds per dataset); its figures are for exploring, this benchmark's are measured.

Default datasets, chosen to keep the run under 10 minutes on 2 cores: each skip costs two
requests (skip, then fetch) and a replay makes up to workers x tasks of them, so the default is
the datasets with >= 5 answers per task and a small workers x tasks product: bluebirds
(39 x 108), zheng_face (27 x 584), snow_temp (76 x 462; its fixed replay, ~55k requests, is
the longest). Left out by default, run them with ``--datasets``: dog (109 x 807 = 88k pairs)
and snow_rte (164 x 800 = 131k) take 5-10 minutes each, zencrowd_us (74 x 2040 = 151k) and
web (177 x 2665 = 472k) longer; adult_content2 (825 x 11040 = 9.1M pairs) and
crowdscale2013_fact_eval (57 x 42624 = 2.4M) are hours of skipping; music_genre, trec2011 and
zheng_product have fewer than 5 answers per task (the goal does not cover them).

The default confidence target, 0.99, is one setting for every dataset (0.9, 0.95, 0.99 and
0.999 were tried on the default datasets; it did best on bluebirds). Figures vary from run
to run: aggregation runs start whenever answers arrive, so each run sees a different prefix of
the answers, and the warm-started fits can settle in a permuted or collapsed solution (the
per-project line "equal to their majority vote", the classes used and a WARNING show it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import Api, bench_database, crowd_bin, start_services

from crowd import datasets

GOAL_POINTS = 0.005  # dynamic accuracy at most half a point below fixed
GOAL_SHARE = 0.70  # with at most 70% of fixed overlap's answers
MIN_ANSWERS_PER_TASK = 5.0  # the goal covers the datasets with this many or more
DEFAULT_DATASETS = ("bluebirds", "zheng_face", "snow_temp")
TASK_BATCH = 10_000


# --------------------------------------------------------------------------------------------
# Data.


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: list[str]  # in crowd.em class order
    tasks: list[str]  # external ids, sorted
    answers: dict[str, dict[str, str]]  # worker -> task -> label (first answer kept)
    gold: dict[str, str]  # task -> label
    n_answers: int  # distinct (task, worker) answers
    max_per_task: int

    @property
    def per_task(self) -> float:
        return self.n_answers / len(self.tasks)

    @property
    def workers(self) -> list[str]:
        return sorted(self.answers)


def _class_order(labels: set[str]) -> list[str]:
    """crowd.em's order: numeric when every label is a number, else string order."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def load(folder: Path) -> Dataset:
    answers: dict[str, dict[str, str]] = {}
    per_task: dict[str, int] = {}
    labels: set[str] = set()
    found = datasets.read(folder)
    for task, worker, label in found.answers:
        labels.add(label)
        mine = answers.setdefault(worker, {})
        if task in mine:
            continue  # a repeated answer: the service keeps one per worker and task
        mine[task] = label
        per_task[task] = per_task.get(task, 0) + 1
    gold = found.gold
    labels |= set(gold.values())
    return Dataset(
        name=folder.name,
        labels=_class_order(labels),
        tasks=sorted(per_task),
        answers=answers,
        gold=gold,
        n_answers=sum(per_task.values()),
        max_per_task=max(per_task.values()),
    )


def dataset_folders(data: Path, names: Sequence[str] | None, take_all: bool) -> list[Path]:
    if (data / "answers.csv").exists():
        return [data]
    if not data.is_dir():
        raise SystemExit(f"error: --data {data} is not a folder")
    if names:
        folders = [data / n for n in names]
        missing = [str(f) for f in folders if not (f / "answers.csv").exists()]
        if missing:
            raise SystemExit(f"error: no answers.csv in {', '.join(missing)}")
        return folders
    if take_all:
        return sorted(p.parent for p in data.glob("*/answers.csv"))
    return [data / n for n in DEFAULT_DATASETS if (data / n / "answers.csv").exists()]


# --------------------------------------------------------------------------------------------
# Servers: a fresh database, crowd serve --no-worker, crowd worker processes.


# --------------------------------------------------------------------------------------------
# HTTP (through _service.Api).


@dataclass
class Setting:
    kind: str  # "fixed" or "dynamic"
    target: float | None = None

    @property
    def label(self) -> str:
        return "fixed" if self.target is None else f"dynamic@{self.target:g}"


@dataclass
class Replay:
    """One project: its setting, and what the replay saw."""

    data: Dataset
    setting: Setting
    project_id: int
    answers: int = 0
    skips: int = 0
    requests: int = 0
    rounds: int = 0
    runs: int = 0
    failed_runs: int = 0
    mv_agree: float = 0.0  # share of results equal to the majority vote of the stored answers
    mv_classes: int = 0  # classes the majority votes use
    classes: int = 0  # classes the results use
    cold_accuracy: float = 0.0  # a cold fit of the same stored answers (see check_answers)

    @property
    def degenerate(self) -> bool:
        """The published fit looks permuted or collapsed, or scores over a point below a cold
        fit of the same answers (see the WARNING it prints)."""
        return (
            self.mv_agree < 0.5
            or self.classes < self.mv_classes
            or self.cold_accuracy - self.accuracy > 0.01
        )

    seconds: float = 0.0
    accuracy: float = 0.0
    stored: int = 0  # answers the service counts in the project
    results: int = 0  # result rows with a label


def create_project(api: Api, data: Dataset, setting: Setting, overlap: int) -> int:
    spec: dict[str, Any] = {
        "name": f"replay {data.name} {setting.label}",
        "labels": data.labels,
        "lease_seconds": 600,
        "gold_rate": 0.0,
    }
    if setting.target is None:
        spec["overlap"] = data.max_per_task
    else:
        spec.update(
            overlap=min(overlap, data.max_per_task),
            max_overlap=data.max_per_task,
            confidence_target=setting.target,
        )
    project_id = int(api.call("POST", "/api/v1/projects", spec).json()["id"])
    for lo in range(0, len(data.tasks), TASK_BATCH):
        batch = [{"external_id": t, "data": {}} for t in data.tasks[lo : lo + TASK_BATCH]]
        made = api.call("POST", f"/api/v1/projects/{project_id}/tasks", {"tasks": batch}).json()
        if made.get("created") not in (None, len(batch)):
            raise RuntimeError(f"posted {len(batch)} tasks, {made.get('created')} created")
    return project_id


def runs_state(api: Api, project_id: int) -> tuple[bool, int | None]:
    """(a run is queued or running, answers read by the newest succeeded run)."""
    page = api.call("GET", f"/api/v1/projects/{project_id}/aggregations?limit=20").json()
    listed = page["aggregations"]
    busy = any(r["status"] in ("queued", "running") for r in listed)
    done = [r for r in listed if r["status"] == "succeeded"]
    return busy, (done[0]["answers"] if done else None)


def all_runs(api: Api, project_id: int) -> list[dict[str, Any]]:
    """Every run of the project, newest first."""
    return list(api.runs(project_id, page_size=1000))


def wait_caught_up(api: Api, project_id: int, answers: int, timeout: float = 600.0) -> None:
    """Until no run is queued or running and the newest succeeded run read ``answers``.

    A run that ends while an answer came in queues its follow-up only after it is recorded as
    succeeded, so "nothing queued or running" alone could be a moment between the two; the
    answer count of the newest run closes that gap.
    """
    deadline = time.monotonic() + timeout
    while True:
        busy, newest = runs_state(api, project_id)
        if not busy and newest == answers:
            return
        if not busy and newest is not None and newest > answers:
            raise RuntimeError(f"project {project_id}: a run read {newest} answers, {answers} sent")
        if time.monotonic() > deadline:
            raise RuntimeError(f"project {project_id}: runs did not catch up within {timeout} s")
        if not busy and (newest or 0) < answers:
            # Nothing queued although answers are unread (e.g. a failed run): ask for one.
            api.call("POST", f"/api/v1/projects/{project_id}/aggregations", ok=(202,))
        time.sleep(0.2)


def read_results(api: Api, project_id: int) -> tuple[dict[str, str], int | None]:
    predicted: dict[str, str] = {}
    last_run: int | None = None
    for page in api.result_pages(project_id):
        last_run = page.last_run_id
        for row in page.results:
            if row.get("label") is not None:
                predicted[str(row["external_id"])] = str(row["label"])
    return predicted, last_run


@dataclass(frozen=True)
class Check:
    """What the project's stored answers say about its published results."""

    mv_agree: float  # share of result labels equal to the majority vote (ties to lowest class)
    mv_classes: int  # classes the majority votes use
    cold_accuracy: float  # accuracy of a cold (majority-vote initialised) fit of those answers


def check_answers(
    api: Api, project_id: int, data: Dataset, predicted: dict[str, str], method: str
) -> Check:
    """Read the project's answers (GET /answers) and compare its results with them.

    The cold fit is ``crowd.em.live.fit_run`` with the project's method and no warm start:
    what a run that starts afresh would publish from the same answers. It separates the
    overlap policy (which answers were collected) from the warm-started fit the service ran.
    """
    import numpy as np

    from crowd.em.live import fit_run

    labels = data.labels
    index = {label: i for i, label in enumerate(labels)}
    rows: list[tuple[int, int, int, int]] = []
    external: dict[int, str] = {}
    for row in api.answers(project_id):
        task = int(row["task_id"])
        external[task] = str(row["external_id"])
        rows.append((int(row["id"]), task, int(row["worker_id"]), index[row["label"]]))
    votes: dict[str, list[int]] = {}
    for _, task, _, label in rows:
        votes.setdefault(external[task], [0] * len(labels))[label] += 1
    majority = {
        task: labels[max(range(len(labels)), key=lambda i: (counts[i], -i))]
        for task, counts in votes.items()
    }
    same = sum(majority.get(task) == label for task, label in predicted.items())
    cold_accuracy = 0.0
    if rows:
        a = np.array(rows, dtype=np.int64)
        none = np.zeros(0, dtype=np.int64)
        result = fit_run(
            a[:, 0], a[:, 1], a[:, 2], a[:, 3], n_classes=len(labels),
            gold_task_ids=none, gold_labels=none, method=method,
        )  # fmt: skip
        cold = {
            external[int(t)]: labels[int(c)]
            for t, c in zip(result.task_ids.tolist(), result.labels.tolist(), strict=True)
        }
        cold_accuracy = sum(cold.get(t) == g for t, g in data.gold.items()) / len(data.gold)
    return Check(same / max(len(predicted), 1), len(set(majority.values())), cold_accuracy)


def replay(
    base: str,
    requester: str,
    tokens: dict[str, str],
    job: Replay,
    seed: int,
    leave: bool,
    log: bool,
) -> Replay:
    """Run the crowd against ``job.project_id`` until nothing more happens; score it."""
    data, project_id = job.data, job.project_id
    start = time.monotonic()
    manager = Api(base, requester)
    sessions = {w: Api(base, tokens[w]) for w in data.workers}
    remaining = {w: set(data.answers[w]) for w in data.workers}
    rng = random.Random(f"{seed}:{data.name}")
    fetch_path = f"/api/v1/projects/{project_id}/assignments"
    settled = False  # the last round found nothing, after every answer had been aggregated
    while True:
        job.rounds += 1
        new = 0
        order = list(data.workers)
        rng.shuffle(order)
        for w in order:
            if leave and not remaining[w]:
                continue
            api = sessions[w]
            r = api.call("POST", fetch_path, ok=(201, 204))
            held = r.json() if r.status_code == 201 else None
            while held is not None:
                aid = int(held["assignment_id"])
                task = str(held["task"]["external_id"])
                if task not in remaining[w]:
                    api.call("POST", f"/api/v1/assignments/{aid}/skip", ok=(200,))
                    job.skips += 1
                    r = api.call("POST", fetch_path, ok=(201, 204))
                    held = r.json() if r.status_code == 201 else None
                    continue
                remaining[w].discard(task)
                go_on = not (leave and not remaining[w])
                reply = api.call(
                    "POST",
                    f"/api/v1/assignments/{aid}/answer",
                    {"label": data.answers[w][task], "next": go_on},
                    ok=(201,),
                ).json()
                new += 1
                job.answers += 1
                held = reply.get("next") if go_on else None
        if log:
            print(
                f"  {data.name} {job.setting.label}: round {job.rounds}: {new} answers"
                f" ({job.answers} in all)",
                flush=True,
            )
        if new:
            settled = False
            continue
        if settled:
            break
        # Nothing new: let the runs catch up (they may extend tasks), then one more round.
        wait_caught_up(manager, project_id, job.answers)
        settled = True

    wait_caught_up(manager, project_id, job.answers)
    predicted, last_run = read_results(manager, project_id)
    history = all_runs(manager, project_id)
    job.runs = len(history)
    job.failed_runs = sum(r["status"] == "failed" for r in history)
    newest = next(r for r in history if r["status"] == "succeeded")
    if newest["answers"] != job.answers or newest["id"] != last_run:
        raise RuntimeError(f"project {project_id}: final run {newest} vs {job.answers} answers")
    project = manager.call("GET", f"/api/v1/projects/{project_id}").json()
    job.stored = _stored_answers(project, job.answers)
    job.results = len(predicted)
    check = check_answers(manager, project_id, data, predicted, str(project.get("method", "ds")))
    job.mv_agree, job.mv_classes, job.cold_accuracy = (
        check.mv_agree,
        check.mv_classes,
        check.cold_accuracy,
    )
    job.classes = len(set(predicted.values()))
    hits = sum(predicted.get(t) == g for t, g in data.gold.items())
    job.accuracy = hits / len(data.gold)
    job.requests = manager.requests + sum(s.requests for s in sessions.values())
    job.seconds = time.monotonic() - start
    for s in (manager, *sessions.values()):
        s.session.close()
    return job


def _stored_answers(project: dict[str, Any], sent: int) -> int:
    """The project's answer count as GET /projects/{id} reports it (``sent`` if not found)."""
    for holder in (project.get("counts"), project):
        if isinstance(holder, dict) and isinstance(holder.get("answers"), int):
            return int(holder["answers"])
    return sent


# --------------------------------------------------------------------------------------------
# Report.


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def report(done: list[Replay], cold: bool = False) -> tuple[str, dict[str, bool]]:
    """The table; accuracy as the service published it, or (``cold``) of a cold refit of each
    project's stored answers. Verdicts by "dataset setting", for datasets in the goal."""
    by_name: dict[str, dict[str, Replay]] = {}
    for job in done:
        by_name.setdefault(job.data.name, {})[job.setting.label] = job
    header = ["dataset", "answers/task", "fixed answers", "fixed acc", "dynamic", "dyn answers",
              "% of fixed", "dyn acc", "diff (points)", "goal met"]  # fmt: skip
    lines = [_row(header), "|---|---:|---:|---:|---|---:|---:|---:|---:|:---:|"]
    verdicts: dict[str, bool] = {}
    for name, jobs in by_name.items():
        fixed = jobs.get("fixed")
        if fixed is None:
            continue
        for label, dyn in jobs.items():
            if label == "fixed":
                continue
            f_acc = fixed.cold_accuracy if cold else fixed.accuracy
            d_acc = dyn.cold_accuracy if cold else dyn.accuracy
            share = dyn.answers / fixed.answers if fixed.answers else float("nan")
            diff = d_acc - f_acc
            met = diff >= -GOAL_POINTS - 1e-12 and share <= GOAL_SHARE
            verdict = "yes" if met else "NO"
            if fixed.data.per_task < MIN_ANSWERS_PER_TASK:
                verdict += " (< 5/task: not in the goal)"
            else:
                verdicts[f"{name} {label}"] = met
            if not cold:
                bad = [s for s, j in (("fixed", fixed), ("dynamic", dyn)) if j.degenerate]
                if bad:
                    verdict += f" ({' and '.join(bad)} fit degenerate: see WARNING)"
            lines.append(
                _row(
                    [
                        name,
                        f"{fixed.data.per_task:.2f}",
                        str(fixed.answers),
                        f"{f_acc:.4f}",
                        label,
                        str(dyn.answers),
                        f"{100 * share:.1f}%",
                        f"{d_acc:.4f}",
                        f"{100 * diff:+.2f}",
                        verdict,
                    ]
                )
            )
    return "\n".join(lines), verdicts


def details(done: list[Replay]) -> str:
    lines = []
    for job in done:
        lines.append(
            f"  {job.data.name} {job.setting.label}: project {job.project_id},"
            f" {job.answers} answers sent ({job.stored} stored, dataset {job.data.n_answers}),"
            f" accuracy {job.accuracy:.4f}, {job.skips} skips, {job.requests} requests, {job.rounds} rounds,"
            f" {job.runs} aggregation runs ({job.failed_runs} failed), {job.results} results"
            f" ({100 * job.mv_agree:.1f}% equal to their majority vote; {job.classes} classes"
            f" used, majority votes use {job.mv_classes}), {job.seconds:.0f} s"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="datasets folder, or one dataset's")
    p.add_argument("--datasets", nargs="*", default=None, help="dataset names under --data")
    p.add_argument("--all", action="store_true", help="every dataset with >= 5 answers per task")
    p.add_argument("--overlap", type=int, default=3, help="dynamic overlap's minimum overlap")
    p.add_argument(
        "--targets", type=float, nargs="*", default=[0.99],
        help="dynamic overlap's confidence target(s), one project each; none: fixed only"
        " [default: 0.99]",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seeds the workers' order in each round")
    p.add_argument(
        "--no-leave", dest="leave", action="store_false",
        help="workers with no recorded answer left keep fetching (and skipping) until 204",
    )  # fmt: skip
    p.add_argument("--parallel", type=int, default=3, help="projects replayed at once")
    p.add_argument("--agg-workers", type=int, default=2, help="`crowd worker` processes")
    p.add_argument("--port", type=int, default=8775)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="flushed before and after")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print every round")
    args = p.parse_args(argv)

    datasets = [load(f) for f in dataset_folders(args.data, args.datasets, args.all)]
    if args.all:
        datasets = [d for d in datasets if d.per_task >= MIN_ANSWERS_PER_TASK]
    if not datasets:
        raise SystemExit("error: no dataset to run")
    for d in datasets:
        if d.max_per_task > 100:
            raise SystemExit(f"error: {d.name}: {d.max_per_task} answers on a task; overlap <= 100")
    settings = [Setting("fixed"), *(Setting("dynamic", t) for t in args.targets)]

    crowd_cmd = crowd_bin(args.crowd)
    host = "127.0.0.1"
    base = f"http://{host}:{args.port}"
    logs = Path(tempfile.mkdtemp(prefix="crowd_replay_"))
    queue = redis.Redis.from_url(args.redis)
    queue.flushdb()
    began = time.monotonic()
    try:
        with (
            bench_database(args.postgres, args.keep_db, "bench_replay") as url,
            contextlib.ExitStack() as up,
        ):
            services = start_services(
                crowd_cmd, url, args.redis, args.port, logs, name="replay",
                workers=args.agg_workers, host=host,
            )  # fmt: skip
            up.callback(services.stop)
            requester = services.requester

            api = Api(base, requester)
            jobs: list[Replay] = []
            tokens: dict[str, dict[str, str]] = {}
            for d in datasets:
                tokens[d.name] = {
                    w: str(api.call("POST", "/api/v1/workers", {"name": f"{d.name} {w}"}).json()["token"])
                    for w in d.workers
                }  # fmt: skip
                for s in settings:
                    jobs.append(Replay(d, s, create_project(api, d, s, args.overlap)))
            print(
                f"replay: {len(datasets)} datasets x {len(settings)} settings"
                f" ({', '.join(s.label for s in settings)}; dynamic overlap {args.overlap});"
                f" {args.parallel} projects at once, {args.agg_workers} aggregation workers,"
                f" {os.cpu_count()} cores; logs in {logs}",
                flush=True,
            )
            # Longest first, so the pool does not end on one big project.
            order = sorted(
                jobs,
                key=lambda j: (-len(j.data.workers) * len(j.data.tasks), j.setting.target or 0.0),
            )
            done: list[Replay] = []
            lock = threading.Lock()
            with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
                futures = [
                    pool.submit(
                        replay, base, requester, tokens[j.data.name], j, args.seed, args.leave,
                        args.verbose,
                    )
                    for j in order
                ]  # fmt: skip
                for fut in concurrent.futures.as_completed(futures):
                    job = fut.result()
                    with lock:
                        done.append(job)
                    print(
                        f"done: {job.data.name} {job.setting.label}: {job.answers} answers,"
                        f" accuracy {job.accuracy:.4f}, {job.requests} requests,"
                        f" {job.rounds} rounds, {job.seconds:.0f} s",
                        flush=True,
                    )
            up.close()
    finally:
        with contextlib.suppress(redis.RedisError):
            queue.flushdb()

    rank = {d.name: i for i, d in enumerate(datasets)}
    done.sort(key=lambda j: (rank[j.data.name], j.setting.target or 0.0))
    table, verdicts = report(done)
    cold_table, cold_verdicts = report(done, cold=True)
    print()
    print("Accuracy of the results the service published (GET /results after the last run):")
    print(table)
    print()
    print(
        "The same answers, each project's stored answers refitted cold (crowd.em, the project's"
        " method, majority-vote start, no warm start):"
    )
    print(cold_table)
    print()
    print(details(done))
    for j in done:
        if j.degenerate:
            print(
                f"WARNING: {j.data.name} {j.setting.label}: {100 * j.mv_agree:.1f}% of its"
                f" results equal the majority vote of its answers and they use {j.classes} of"
                f" the {j.mv_classes} classes the majority votes use; a cold refit of the same"
                f" answers scores {j.cold_accuracy:.4f} against the published {j.accuracy:.4f}:"
                " the published (warm-started) fit is stuck in a permuted, collapsed or poor"
                " solution, so its accuracy measures that, not the overlap policy"
            )
    print()
    for what, marks in (("published", verdicts), ("cold refit", cold_verdicts)):
        met = [k for k, v in marks.items() if v]
        print(
            f"goal ({what}): dynamic within {100 * GOAL_POINTS:.1f} point of fixed accuracy"
            f" with <= {100 * GOAL_SHARE:.0f}% of its answers: met on {len(met)} of {len(marks)}"
            f" dataset/target pairs with >= 5 answers per task"
            + (f" ({', '.join(met)})" if met else "")
        )
    print(f"wall time {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
