"""Humans review model predictions (issue 12): the review lane against blind overlap 3.

    .venv/bin/python benchmarks/review.py --data ../shared/datasets/zheng_product
    .venv/bin/python benchmarks/review.py --data ../shared/datasets/zheng_product --stampers 0.2
    .venv/bin/python benchmarks/review.py --data ../shared/datasets/zheng_product --curve \\
        --png benchmarks/review_curve.png

Everything goes through the HTTP API of a real service (``crowd serve --no-worker`` and
``--agg-workers`` ``crowd worker`` processes on a fresh database; Redis db ``--redis`` flushed
before and after).

The data: zheng_product (product-pair matching; 3 recorded answers per task, gold for every
task). A seeded ``--gold-share`` of the tasks is posted as gold (known labels: traps,
anchoring the model's confusion matrix, calibrating ``accept_at``); every figure is scored on
the other tasks, and the peer gets the same gold tasks (never served to it: ``gold_rate`` 0).

The external model: the features model (benchmarks/active_learning.py's product-pair
similarities), 5-fold cross-fitted on a Dawid-Skene fit of the recorded answers
(benchmarks/model_voter.py's ``cross_fitted``), so no task's prediction comes from a model
that was trained on that task. Each task is posted with its prediction inline (``label``, the
argmax; ``confidence``, its probability), as a requester streaming tasks would.

The crowd: one worker account per real worker, replaying its recorded answers.
* Blind task: the recorded answer.
* Review lane: the recorded answer when it equals the proposal; when it differs, a correction,
  except with probability ``--anchor`` (default 0.2), when the reviewer confirms anyway.
* Trap (a gold task with a wrong proposal): as a review, from the recorded answer when the
  worker has one for that task; otherwise (the worker never saw the item) the answer is drawn
  from the worker's recorded accuracy on gold (a wrong answer is another label at random).
* ``--stampers`` (default 0): that share of extra accounts (0.2: 35 for 176 workers) who
  confirm every proposal (a blind task gets a random label). Each fetch is a stamper's with
  probability (active stampers) / (workers + stampers).

How the replay follows the service (a worker has recorded answers on 1.7% of the tasks, so
fetching and skipping until one comes up would cost hours): tasks are posted in chunks of
``--chunk`` in a seeded order; after each chunk the bench reads which tasks are pending
(``GET .../results?status=pending``) and, in the service's order (most answers first, then
id), has one of each pending task's recorded workers who has not answered it fetch. A fetch
that hands the worker another task (a trap is answered; anything else is skipped and moves to
the front of the bench's queue) follows the service. At the end the bench waits for the
aggregation runs to catch up (they may open more review slots) and serves what they opened,
until a round brings nothing. The results are then read from ``GET .../results``.

Cost counts human answers (traps included): a blind answer costs 1, a review answer
``--review-cost`` (reported at 0.5 and 1.0). The peer (``blind 3``) is the same crowd labelling
every task blind with overlap 3.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis as redis_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import Api, bench_database, crowd_bin, loadavg, start_services
from active_learning import read_items
from model_voter import cross_fitted, whole
from replay import Dataset, load

from crowd.client import ApiError
from crowd.em import encode
from crowd.em.live import fit_run
from crowd.em.voters import ModelVotes

MODEL = "features@cross-fitted"
CURVE_BLIND_BELOW = (0.5, 0.8)
CURVE_ACCEPT_AT = (None, 0.98, 0.95)
GOAL_POINTS = 0.5  # accuracy within half a point of the peer
GOAL_POINTS_STAMPERS = 1.0  # within a point, with stampers present
GOAL_COST = {0.5: 0.35, 1.0: 0.50}  # cost at most this share of the peer's, by review cost
GOAL_STAMPER_ANSWERS = 50  # every stamper banned before giving this many answers


# --------------------------------------------------------------------------------------------
# The model and the crowd, computed once.


@dataclass(frozen=True)
class Setup:
    data: Dataset
    tasks: list[str]  # the tasks in the run (all, or a --tasks sample)
    gold: list[str]  # tasks posted as gold (not scored)
    scored: list[str]  # the rest, scored
    prediction: dict[str, tuple[str, float]]  # task -> (label, confidence)
    recorded: dict[str, list[tuple[str, str]]]  # task -> [(worker, label)], seeded order
    accuracy: dict[str, float]  # worker -> recorded accuracy on gold (smoothed)


def make_setup(
    data: Dataset, folder: Path, n_tasks: int | None, gold_share: float, seed: int
) -> Setup:
    rng = np.random.default_rng(seed)
    # The model is cross-fitted on every task, so a --tasks sample sees the same predictions.
    t_list, w_list, l_list = whole(data)
    enc = encode(t_list, w_list, l_list)
    k = len(enc.classes)
    names = [str(t) for t in enc.task_index]
    ids = np.arange(enc.tasks.size)
    none = np.zeros(0, dtype=np.int64)
    plain = fit_run(ids, enc.tasks, enc.workers, enc.labels, n_classes=k,
                    gold_task_ids=none, gold_labels=none, method="ds")  # fmt: skip
    proba = cross_fitted(read_items(folder), names, plain.posteriors, k, rng)
    classes = [str(c) for c in enc.classes]
    prediction = {
        t: (classes[int(p.argmax())], round(float(p.max()), 6))
        for t, p in zip(names, proba, strict=True)
    }
    tasks = list(data.tasks)
    if n_tasks is not None and n_tasks < len(tasks):
        sample = np.random.default_rng(seed + 1).choice(tasks, n_tasks, replace=False)
        tasks = sorted(sample.tolist())
    chosen = set(tasks)
    gold = sorted(rng.choice(tasks, round(gold_share * len(tasks)), replace=False).tolist())
    gold_set = set(gold)
    recorded: dict[str, list[tuple[str, str]]] = {t: [] for t in tasks}
    for w in data.workers:
        for t, label in data.answers[w].items():
            if t in chosen:
                recorded[t].append((w, label))
    shuffle = random.Random(seed)
    for t in tasks:
        recorded[t].sort()
        shuffle.shuffle(recorded[t])
    accuracy = {}
    for w in data.workers:
        pairs = [(t, lab) for t, lab in data.answers[w].items() if t in data.gold]
        right = sum(data.gold[t] == lab for t, lab in pairs)
        accuracy[w] = (right + 1) / (len(pairs) + 2)
    return Setup(data, tasks, gold, [t for t in tasks if t not in gold_set], prediction,
                 recorded, accuracy)  # fmt: skip


def reviewer_answer(recorded: str, proposal: str | None, anchor: float, rng: random.Random) -> str:
    """What an honest reviewer answers: its recorded answer, except that a proposal differing
    from it is confirmed anyway with probability ``anchor``."""
    if proposal is not None and recorded != proposal and rng.random() < anchor:
        return proposal
    return recorded


# --------------------------------------------------------------------------------------------
# One project: its setting, and the replay against it.


@dataclass(frozen=True)
class Arm:
    """A project's setting: ``review`` None is the peer (blind, overlap 3)."""

    name: str
    review: dict[str, Any] | None = None
    stampers: float = 0.0
    confidence_target: float | None = None
    qc_min_trap_catch: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other project settings


@dataclass
class Outcome:
    arm: Arm
    project_id: int = 0
    blind: int = 0  # blind answers given (stampers' included)
    review: int = 0  # review answers given (traps included)
    traps: int = 0
    stamper_answers: dict[str, int] = field(default_factory=dict)
    stampers_banned: set[str] = field(default_factory=set)
    honest_banned: set[str] = field(default_factory=set)
    accuracy: float = 0.0
    accepted: int = 0  # tasks with label_source "model"
    requests: int = 0
    skips: int = 0
    stand_ins: int = 0  # answers given in place of banned or used-up recorded workers
    seconds: float = 0.0
    log: list[tuple[str, str, str, int]] = field(
        default_factory=list
    )  # task, worker, label, proposal idx
    results: dict[str, str] = field(default_factory=dict)
    review_page: dict[str, Any] = field(default_factory=dict)

    def cost(self, review_cost: float) -> float:
        return self.blind + review_cost * self.review


class Replay:
    """Drive one project's crowd (see the module docstring)."""

    def __init__(self, setup: Setup, arm: Arm, base: str, requester: str,
                 tokens: dict[str, str], anchor: float, chunk: int, seed: int) -> None:  # fmt: skip
        self.s, self.arm, self.anchor, self.chunk = setup, arm, anchor, chunk
        self.labels = setup.data.labels
        self.manager = Api(base, requester)
        self.honest = sorted(setup.data.workers)
        n_stampers = round(arm.stampers * len(self.honest))
        self.stampers = [f"stamper{i:03d}" for i in range(n_stampers)]
        self.sessions = {w: Api(base, tokens[w]) for w in (*self.honest, *self.stampers)}
        self.rng = random.Random(f"{seed}:{arm.name}")
        self.gold = set(setup.gold)
        self.mine = {w: dict(setup.data.answers[w]) for w in self.honest}
        self.done: set[tuple[str, str]] = set()  # (task, worker) answered or skipped
        self.out = Outcome(arm)
        self.active_stampers = list(self.stampers)
        self.count: collections.Counter[str] = collections.Counter()  # answers per task
        self.target: dict[str, int] = {}  # the bench's guess of each task's target

    # -- answers -----------------------------------------------------------------------------

    def _honest_label(self, w: str, task: str, proposal: str | None) -> str:
        recorded = self.mine[w].get(task)
        if recorded is None or (task, w) in self.done:
            # A trap on an item this worker never saw, or a stand-in answer (see serve): drawn
            # from the worker's recorded accuracy on gold.
            truth = self.s.data.gold[task]
            others = [lab for lab in self.labels if lab != truth]
            recorded = truth if self.rng.random() < self.s.accuracy[w] else self.rng.choice(others)
        return reviewer_answer(recorded, proposal, self.anchor, self.rng)

    def _label(self, w: str, task: str, proposal: str | None) -> str:
        if w in self.stampers:
            return proposal if proposal is not None else self.rng.choice(self.labels)
        return self._honest_label(w, task, proposal)

    def _answer(self, w: str, held: dict[str, Any]) -> None:
        task = str(held["task"]["external_id"])
        proposal = (held.get("proposal") or {}).get("label")
        label = self._label(w, task, proposal)
        api = self.sessions[w]
        api.call("POST", f"/api/v1/assignments/{held['assignment_id']}/answer", {"label": label})
        self.done.add((task, w))
        # The bench's guess of the task's target (pending() corrects it): a review-lane task
        # needs review.overlap answers and a correction opens one more; a blind one 3.
        self.count[task] += 1
        if proposal is None:
            self.out.blind += 1
            self.target.setdefault(task, 3)
        else:
            self.out.review += 1
            self.out.traps += task in self.gold
            review = self.arm.review or {}
            target = self.target.setdefault(task, int(review.get("overlap", 1)))
            if label != proposal:
                self.target[task] = min(target + 1, int(review.get("max_overlap", 3)))
        if w in self.stampers:
            self.out.stamper_answers[w] = self.out.stamper_answers.get(w, 0) + 1
        index = self.labels.index(proposal) if proposal is not None else -1
        self.out.log.append((task, w, label, index))

    def _fetch(self, w: str) -> dict[str, Any] | None:
        try:
            r = self.sessions[w].call("POST", f"/api/v1/projects/{self.out.project_id}/assignments",
                                      ok=(201, 204))  # fmt: skip
        except ApiError as exc:
            if exc.code != "banned":
                raise
            if w in self.active_stampers:
                self.active_stampers.remove(w)
                self.out.stampers_banned.add(w)
            elif w in self.mine:
                self.out.honest_banned.add(w)
            return None
        return r.json() if r.status_code == 201 else None

    def serve(self, w: str, want: str, queue: collections.deque[str]) -> bool:
        """``w`` fetches until it answers ``want`` (a stamper: whatever it is handed). On the
        way it answers traps and tasks it has recorded answers for, and skips anything else
        (queued first: the service wants answers there). False when ``w`` got nothing
        (banned, or nothing open for it)."""
        for _ in range(200):
            held = self._fetch(w)
            if held is None:
                return False
            task = str(held["task"]["external_id"])
            if w in self.stampers or task == want:
                self._answer(w, held)
                return True
            if task in self.gold or (task in self.mine[w] and (task, w) not in self.done):
                self._answer(w, held)
                continue
            if self.stuck(task):  # no recorded worker can answer it: w answers in their place
                self.out.stand_ins += 1
                self._answer(w, held)
                continue
            self.sessions[w].call("POST", f"/api/v1/assignments/{held['assignment_id']}/skip")
            self.done.add((task, w))
            self.out.skips += 1
            queue.appendleft(task)
        return True

    # -- the loop ----------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Tasks the service says need answers, in its order (most answers first, then id)."""
        rows = []
        for page in self.manager.result_pages(self.out.project_id, status="pending"):
            rows.extend((-int(r["answers"]), int(r["task_id"]), str(r["external_id"]))
                        for r in page.results)  # fmt: skip
        found = [t for *_, t in sorted(rows)]
        for t in found:  # the service wants more here than the bench guessed (a run's slot)
            if self.count[t] >= self.target.get(t, 1 << 30):
                self.target[t] = self.count[t] + 1
        return found

    def stuck(self, task: str) -> bool:
        """Every recorded worker of ``task`` has answered it or is banned (the service still
        wants answers there: a banned worker's answers are left out)."""
        return all(
            (task, w) in self.done or w in self.out.honest_banned
            for w, _ in self.s.recorded.get(task, [])
        )

    def next_worker(self, task: str) -> str | None:
        if self.active_stampers:
            share = len(self.active_stampers) / (len(self.honest) + len(self.stampers))
            if self.rng.random() < share:
                return self.rng.choice(self.active_stampers)
        for w, _ in self.s.recorded.get(task, []):
            if (task, w) not in self.done and w not in self.out.honest_banned:
                return w
        return None

    def drain(self) -> int:
        """Serve every pending task that a recorded worker can still answer; answers given."""
        before = self.out.blind + self.out.review
        queue = collections.deque(self.pending())
        tried: set[tuple[str, str]] = set()
        while queue:
            task = queue[0]
            if task in self.gold or self.count[task] >= self.target.get(task, 1 << 30):
                queue.popleft()
                continue
            w = self.next_worker(task)
            if w is None or (task, w) in tried:
                queue.popleft()
                continue
            if w in self.mine:
                tried.add((task, w))
            if not self.serve(w, task, queue) and w in self.mine:
                self.target[task] = self.count[task]  # nothing open for it: the task is done
        return self.out.blind + self.out.review - before

    def run(self, stream: list[str]) -> Outcome:
        start = time.monotonic()
        pid = self.out.project_id
        for lo in range(0, len(stream), self.chunk):
            batch = [self._task(t) for t in stream[lo : lo + self.chunk]]
            self.manager.call("POST", f"/api/v1/projects/{pid}/tasks", {"tasks": batch})
            self.drain()
        while True:  # the runs may open more slots (dynamic overlap, bans): serve them
            settle(self.manager, pid)
            if not self.drain():
                break
        settle(self.manager, pid)
        self._score()
        self.out.seconds = time.monotonic() - start
        self.out.requests = self.manager.requests + sum(a.requests for a in self.sessions.values())
        for a in (self.manager, *self.sessions.values()):
            a.session.close()
        return self.out

    def _task(self, t: str) -> dict[str, Any]:
        item: dict[str, Any] = {"external_id": t, "data": {}}
        if self.arm.review is not None:
            label, confidence = self.s.prediction[t]
            item["prediction"] = {"model": MODEL, "label": label, "confidence": confidence}
        return item

    def _score(self) -> None:
        pid = self.out.project_id
        results: dict[str, str] = {}
        for page in self.manager.result_pages(pid):
            for row in page.results:
                if row.get("label") is not None:
                    results[str(row["external_id"])] = str(row["label"])
                self.out.accepted += row.get("label_source") == "model"
        self.out.results = results
        scored = self.s.scored
        self.out.accuracy = sum(results.get(t) == self.s.data.gold[t] for t in scored) / len(scored)
        if self.arm.review is not None:
            self.out.review_page = self.manager.call("GET", f"/api/v1/projects/{pid}/review").json()
        for row in self.manager.project_workers(pid):
            if row["status"] == "banned":
                name = str(row["name"]).split(" ", 1)[-1]
                (
                    self.out.stampers_banned
                    if name.startswith("stamper")
                    else self.out.honest_banned
                ).add(name)


def settle(api: Api, project_id: int, timeout: float = 900.0) -> None:
    """Ask for a run and wait until it (or a later one) has succeeded with nothing queued or
    running: a run then has read every answer given so far. (A run's ``answers`` leaves
    banned workers' answers out, so it cannot be compared with the answers sent.)"""
    path = f"/api/v1/projects/{project_id}/aggregations"
    asked = api.call("POST", path, ok=(202,)).json().get("run")
    floor = int(asked["id"]) if asked else None
    deadline = time.monotonic() + timeout
    while True:
        listed = api.call("GET", f"{path}?limit=20").json()["aggregations"]
        if floor is None:  # one was queued or running: the one after it reads every answer
            floor = max(int(r["id"]) for r in listed) + 1
        busy = any(r["status"] in ("queued", "running") for r in listed)
        done = [int(r["id"]) for r in listed if r["status"] == "succeeded"]
        if not busy and done and max(done) >= floor:
            return
        if not busy and (not done or max(done) < floor) and asked is None:
            asked = api.call("POST", path, ok=(202,)).json().get("run")
            floor = int(asked["id"]) if asked else floor
        if time.monotonic() > deadline:
            raise RuntimeError(f"project {project_id}: no run caught up within {timeout:.0f} s")
        time.sleep(0.3)


def create_project(api: Api, setup: Setup, arm: Arm) -> int:
    spec: dict[str, Any] = {
        "name": f"review {arm.name}",
        "labels": setup.data.labels,
        "overlap": 3,
        "gold_rate": 0.0,
        "lease_seconds": 600,
        "method": "ds",
        **arm.extra,
    }
    if arm.review is not None:
        spec["review"] = arm.review
    if arm.confidence_target is not None:
        spec.update(confidence_target=arm.confidence_target, max_overlap=3)
    if arm.qc_min_trap_catch is not None:
        spec["qc_min_trap_catch"] = arm.qc_min_trap_catch
    pid = int(api.call("POST", "/api/v1/projects", spec).json()["id"])
    gold = []
    for t in setup.gold:
        item: dict[str, Any] = {"external_id": t, "data": {}, "gold": setup.data.gold[t]}
        if arm.review is not None:
            label, confidence = setup.prediction[t]
            item["prediction"] = {"model": MODEL, "label": label, "confidence": confidence}
        gold.append(item)
    if gold:
        api.call("POST", f"/api/v1/projects/{pid}/tasks", {"tasks": gold})
    return pid


# --------------------------------------------------------------------------------------------
# Offline: what the model as a voter adds over plain DS, on the answers one project got.


def refits(setup: Setup, out: Outcome) -> dict[str, float]:
    """Accuracy on the scored tasks of cold fits of ``out``'s answers: plain DS (every answer
    as blind), DS with the review answers modelled, and both with the model as a voter."""
    labels = setup.data.labels
    index = {lab: i for i, lab in enumerate(labels)}
    tasks = sorted({t for t, *_ in out.log} | set(setup.gold))
    t_index = {t: i for i, t in enumerate(tasks)}
    workers = sorted({w for _, w, *_ in out.log})
    w_index = {w: i for i, w in enumerate(workers)}
    a_t = np.array([t_index[t] for t, *_ in out.log], dtype=np.int64)
    a_w = np.array([w_index[w] for _, w, *_ in out.log], dtype=np.int64)
    a_l = np.array([index[lab] for _, _, lab, _ in out.log], dtype=np.int64)
    a_p = np.array([p for *_, p in out.log], dtype=np.int64)
    ids = np.arange(a_t.size)
    g_t = np.array([t_index[t] for t in setup.gold], dtype=np.int64)
    g_l = np.array([index[setup.data.gold[t]] for t in setup.gold], dtype=np.int64)
    banned = {w_index[w] for w in out.stampers_banned | out.honest_banned if w in w_index}
    keep = ~np.isin(a_w, list(banned))  # the service leaves banned workers' answers out
    votes = ModelVotes(
        task_ids=np.arange(len(tasks), dtype=np.int64),
        models=np.zeros(len(tasks), dtype=np.int64),
        labels=np.array([index[setup.prediction[t][0]] for t in tasks], dtype=np.int64),
        names=(MODEL,),
    )
    scored = [t for t in setup.scored if t in t_index]
    truth = {t: setup.data.gold[t] for t in scored}
    found = {}
    for name, with_proposals, with_votes in (
        ("plain DS", False, False),
        ("DS + review model", True, False),
        ("DS + model voter", False, True),
        ("DS + both (the service)", True, True),
    ):
        fit = fit_run(ids[keep], a_t[keep], a_w[keep], a_l[keep], n_classes=len(labels),
                      gold_task_ids=g_t, gold_labels=g_l, method="ds",
                      proposals=a_p[keep] if with_proposals else None,
                      votes=votes if with_votes else None)  # fmt: skip
        got = {tasks[int(t)]: labels[int(c)] for t, c in zip(fit.task_ids, fit.labels, strict=True)}
        found[name] = sum(got.get(t) == g for t, g in truth.items()) / len(setup.scored)
    return found


# --------------------------------------------------------------------------------------------


def review_arm(
    args: argparse.Namespace, blind_below: float, accept_at: float | None, stampers: float
) -> Arm:
    """A review-lane project as the options say, at this ``blind_below`` and ``accept_at``."""
    review = {"overlap": 1, "max_overlap": 3, "blind_below": blind_below, "accept_at": accept_at,
              "audit_rate": args.audit_rate, "trap_rate": args.trap_rate}  # fmt: skip
    if args.onboarding_trap_rate is not None:
        review.update(onboarding_trap_rate=args.onboarding_trap_rate,
                      onboarding_traps=args.onboarding_traps)  # fmt: skip
    name = f"review b{blind_below:g}" + (f" a{accept_at:g}" if accept_at else "")
    if stampers:
        name += f" stampers {stampers:g}"
    return Arm(name, review, stampers, args.confidence_target, args.qc_min_trap_catch)


def run_arms(args: argparse.Namespace, setup: Setup, arms: list[Arm]) -> list[Outcome]:
    crowd_cmd = crowd_bin(args.crowd)
    logs = Path(tempfile.mkdtemp(prefix="crowd_review_"))
    rdb = redis_lib.Redis.from_url(args.redis)
    rdb.flushdb()
    done = []
    with (
        bench_database(args.postgres, args.keep_db, "bench_review") as url,
        contextlib.ExitStack() as up,
    ):
        up.callback(rdb.flushdb)
        services = start_services(crowd_cmd, url, args.redis, args.port, logs, name="review",
                                  workers=args.agg_workers)  # fmt: skip
        up.callback(services.stop)
        api = Api(services.base, services.requester)
        n_stampers = max(round(a.stampers * len(setup.data.workers)) for a in arms)
        names = [*setup.data.workers, *(f"stamper{i:03d}" for i in range(n_stampers))]
        tokens = {w: str(api.call("POST", "/api/v1/workers", {"name": f"zp {w}"}).json()["token"])
                  for w in names}  # fmt: skip
        stream = [t for t in setup.tasks if t not in set(setup.gold)]
        random.Random(args.seed).shuffle(stream)
        print(f"review: {len(setup.tasks)} tasks ({len(setup.gold)} gold), {len(names)} workers,"
              f" {args.agg_workers} aggregation workers, {os.cpu_count()} cores,"
              f" load {loadavg()}; logs in {logs}", flush=True)  # fmt: skip
        for arm in arms:
            replay = Replay(setup, arm, services.base, services.requester, tokens, args.anchor,
                            args.chunk, args.seed)  # fmt: skip
            replay.out.project_id = create_project(api, setup, arm)
            out = replay.run(stream)
            done.append(out)
            print(f"  {arm.name}: accuracy {out.accuracy:.4f}, {out.blind} blind + {out.review}"
                  f" review answers ({out.traps} traps), {out.accepted} auto-accepted,"
                  f" {out.requests} requests, {out.skips} skips,"
                  f" {out.stand_ins} stand-in answers, {out.seconds:.0f} s", flush=True)  # fmt: skip
    return done


def report(args: argparse.Namespace, setup: Setup, done: list[Outcome]) -> None:
    peer = done[0]
    print()
    print(f"{setup.data.name}: {len(setup.scored)} scored tasks, {len(setup.gold)} gold;"
          f" anchor {args.anchor}, trap_rate {args.trap_rate}, audit_rate {args.audit_rate},"
          f" confidence_target {args.confidence_target}, qc_min_trap_catch"
          f" {args.qc_min_trap_catch}, seed {args.seed}")  # fmt: skip
    print()
    print("| setting | accuracy | diff (points) | blind answers | review answers (traps) |"
          " auto-accepted | cost at 0.5 | cost at 1.0 | goal met |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for out in done:
        diff = 100 * (out.accuracy - peer.accuracy)
        shares = {c: out.cost(c) / peer.cost(c) for c in GOAL_COST}
        if out is peer:
            verdict = "(peer)"
        else:
            points = GOAL_POINTS_STAMPERS if out.arm.stampers else GOAL_POINTS
            marks = [diff >= -points] + [shares[c] <= GOAL_COST[c] for c in GOAL_COST]
            if out.arm.stampers:
                worst = max(out.stamper_answers.values(), default=0)
                marks += [len(out.stampers_banned) == len(out.stamper_answers)
                          and worst < GOAL_STAMPER_ANSWERS, not out.honest_banned]  # fmt: skip
            verdict = "yes" if all(marks) else "NO"
        print(f"| {out.arm.name} | {out.accuracy:.4f} | {diff:+.2f} | {out.blind} |"
              f" {out.review} ({out.traps}) | {out.accepted} | {100 * shares[0.5]:.1f}% |"
              f" {100 * shares[1.0]:.1f}% | {verdict} |")  # fmt: skip
    for out in done:
        if out.arm.stampers:
            counts = sorted(out.stamper_answers.values())
            print(f"\n{out.arm.name}: {len(out.stampers_banned)} of {len(out.stamper_answers)}"
                  f" stampers banned; answers each gave: median {int(np.median(counts))},"
                  f" max {counts[-1]}, {sum(c >= GOAL_STAMPER_ANSWERS for c in counts)} gave"
                  f" {GOAL_STAMPER_ANSWERS} or more; honest workers banned:"
                  f" {len(out.honest_banned)} {sorted(out.honest_banned)}")  # fmt: skip
        if out.arm.review is not None:
            acc = setup.accuracy
            print(f"{out.arm.name}: real workers banned: {len(out.honest_banned)}; their recorded"
                  " gold accuracy: "
                  + (", ".join(f"{acc[w]:.2f}" for w in sorted(out.honest_banned, key=acc.get))
                     or "-"))  # fmt: skip
        if out.review_page:
            audits = out.review_page.get("audits") or {}
            print(f"{out.arm.name}: auto-accepted {out.review_page.get('auto_accepted')},"
                  f" audits {audits}")  # fmt: skip
    if args.refit:
        print("\nCold refits of each review project's answers (offline, crowd.em, method ds),"
              " accuracy on the scored tasks:")  # fmt: skip
        print(
            "\n| setting | plain DS | DS + review model | DS + model voter | DS + both (the service) | published |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for out in done[1:]:
            found = refits(setup, out)
            print(f"| {out.arm.name} | " + " | ".join(f"{v:.4f}" for v in found.values())
                  + f" | {out.accuracy:.4f} |")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", type=Path, required=True, help="the zheng_product folder")
    p.add_argument("--tasks", type=int, default=None, help="a seeded sample of this many tasks")
    p.add_argument("--gold-share", type=float, default=0.05)
    p.add_argument("--anchor", type=float, default=0.2)
    p.add_argument("--stampers", type=float, nargs="+", default=[0.0],
                   help="share(s) of extra stamper accounts, one review project each")  # fmt: skip
    p.add_argument("--blind-below", type=float, default=0.5)
    p.add_argument("--accept-at", type=float, default=None)
    p.add_argument("--trap-rate", type=float, default=0.05)
    p.add_argument("--onboarding-trap-rate", type=float, default=None,
                   help="review.onboarding_trap_rate [default: none]")  # fmt: skip
    p.add_argument("--onboarding-traps", type=int, default=6)
    p.add_argument("--curve", action="store_true",
                   help="one review project per blind_below x accept_at of the grid")  # fmt: skip
    p.add_argument("--png", type=Path, default=None, help="plot accuracy against cost here")
    p.add_argument("--review-cost-plot", type=float, default=0.5)
    p.add_argument("--audit-rate", type=float, default=0.05)
    p.add_argument("--confidence-target", type=float, default=None)
    p.add_argument("--qc-min-trap-catch", type=float, default=0.5)
    p.add_argument("--chunk", type=int, default=100, help="tasks posted at a time")
    p.add_argument("--no-peer", dest="peer", action="store_false",
                   help="take the peer's figures from --peer-json (same tasks and seed)")  # fmt: skip
    p.add_argument("--peer-json", type=Path, default=None,
                   help="where the peer's figures are saved (with the peer) or read (--no-peer)")  # fmt: skip
    p.add_argument("--refit", action="store_true", help="also the offline refits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agg-workers", type=int, default=1)
    p.add_argument("--port", type=int, default=18100)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/1", help="flushed before and after")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)
    # A TERM (a background run stopped) unwinds like an error: services stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))

    data = load(args.data)
    setup = make_setup(data, args.data, args.tasks, args.gold_share, args.seed)
    arms = [Arm("blind 3 (peer)")] if args.peer else []
    if args.curve:
        for blind_below in CURVE_BLIND_BELOW:
            for accept_at in CURVE_ACCEPT_AT:
                arms.append(review_arm(args, blind_below, accept_at, 0.0))
    else:
        arms.extend(review_arm(args, args.blind_below, args.accept_at, x) for x in args.stampers)
    done = run_arms(args, setup, arms)
    key = {"tasks": len(setup.tasks), "gold": len(setup.gold), "seed": args.seed}
    if args.peer and args.peer_json is not None:
        peer = done[0]
        args.peer_json.write_text(json.dumps({**key, "accuracy": peer.accuracy,
                                              "blind": peer.blind, "seconds": peer.seconds}))  # fmt: skip
    elif not args.peer:
        if args.peer_json is None or not args.peer_json.exists():
            raise SystemExit("error: --no-peer needs --peer-json from an earlier run with the peer")
        saved = json.loads(args.peer_json.read_text())
        if {k: saved.get(k) for k in key} != key:
            raise SystemExit(f"error: {args.peer_json} is for {saved}, not {key}")
        peer = Outcome(Arm("blind 3 (peer, from --peer-json)"), accuracy=saved["accuracy"],
                       blind=saved["blind"], seconds=saved["seconds"])  # fmt: skip
        done.insert(0, peer)
    report(args, setup, done)
    if args.png is not None:
        plot(done, args.png, f"{setup.data.name}: {len(setup.scored)} scored tasks, anchor"
             f" {args.anchor}, review cost {args.review_cost_plot}", args.review_cost_plot)  # fmt: skip
        print(f"\nwrote {args.png}")
    return 0


def plot(done: list[Outcome], path: Path, title: str, review_cost: float) -> None:
    """Accuracy against cost (share of the peer's) for each review project, one line per
    ``blind_below``, points labelled by ``accept_at``; the peer as a reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peer = done[0]
    fig, ax = plt.subplots(figsize=(8, 5))
    lines: dict[float, list[tuple[float, float, str]]] = {}
    for out in done[1:]:
        review = out.arm.review or {}
        share = 100 * out.cost(review_cost) / peer.cost(review_cost)
        tag = f"accept {review['accept_at']:g}" if review.get("accept_at") else "no accept"
        lines.setdefault(float(review["blind_below"]), []).append((share, 100 * out.accuracy, tag))
    for blind_below, points in sorted(lines.items()):
        points.sort()
        ax.plot([x for x, *_ in points], [y for _, y, _ in points], marker="o",
                label=f"blind_below {blind_below:g}")  # fmt: skip
        for x, y, tag in points:
            ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(100 * peer.accuracy, color="grey", ls="--", label="blind overlap 3 (peer)")
    ax.axhline(100 * peer.accuracy - 100 * GOAL_POINTS / 100, color="grey", ls=":",
               label="peer - 0.5 point")  # fmt: skip
    ax.axvline(100 * GOAL_COST.get(review_cost, 1.0), color="red", ls=":",
               label=f"cost goal at review cost {review_cost:g}")  # fmt: skip
    ax.set_xlabel(f"cost, % of the peer's (a review answer costs {review_cost:g} of a blind one)")
    ax.set_ylabel("accuracy on gold, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
