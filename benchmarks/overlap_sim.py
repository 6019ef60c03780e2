"""Offline simulator of dynamic overlap: the replay's protocol without HTTP, in seconds.

    .venv/bin/python benchmarks/overlap_sim.py --data ../shared/datasets --datasets bluebirds

Not a measured figure (benchmarks/replay.py, over the real service, is): a tool for trying
stopping rules. It calls :func:`crowd.em.live.fit_run` (cold, as the service fits projects of
up to 100k answers; its ``decision`` is what dynamic overlap compares with the target, unless
a script sets ``Sim.decider`` to try another rule) and mimics the service around it:

* assignment as ``crowd.store.assignments.reserve`` hands it out: a worker is offered the open
  tasks (fewer answers than their ``target``, not closed) it has not seen, most answered first,
  then in creation order; it answers those it has a recorded answer for and skips the others;
* the crowd as ``benchmarks/replay.py`` runs it: rounds over the real workers in the same
  seeded random order, a worker leaving once it has given all its recorded answers, until a
  round brings nothing after the runs caught up;
* an aggregation run after every ``--run-every`` answers (the service runs whenever answers
  arrived since the last run; at replay speed a run covers a few dozen answers) and at the end
  of every round, taking effect at once; each run applies ``crowd.store.runs.apply_overlap``'s
  rule: a task with >= ``overlap`` answers whose decision reaches the target is closed, one
  whose slots are all answered and whose decision is below the target gets one more slot, up
  to ``max_overlap``.

Printed per dataset: fixed overlap's accuracy (the project's method on every answer) and
dynamic overlap's answers (% of fixed), accuracy and difference in points, against the issue's
goal (within 0.5 point with <= 70% of the answers).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import GOAL_POINTS, GOAL_SHARE, Dataset, dataset_folders, load

from crowd.em.live import RunResult, fit_run

NONE = np.zeros(0, dtype=np.int64)


class Sim:
    """One dynamic-overlap project over one dataset, as integer arrays."""

    def __init__(self, data: Dataset, overlap: int, target: float, method: str) -> None:
        self.data = data
        self.k = len(data.labels)
        self.class_of = {label: i for i, label in enumerate(data.labels)}
        self.task_of = {t: i for i, t in enumerate(data.tasks)}
        self.overlap = min(overlap, data.max_per_task)
        self.cap = data.max_per_task
        self.target = target
        self.method = method
        n = len(data.tasks)
        self.slots = np.full(n, self.overlap, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.count = np.zeros(n, dtype=np.int64)
        self.rows: list[tuple[int, int, int]] = []  # (task, worker, label)
        self.runs = 0
        #: ``decider(sim, run_result) -> (n_tasks,)`` decision probabilities, to try another
        #: stopping rule than the service's; None: ``run_result.decision``.
        self.decider: Callable[[Sim, RunResult], np.ndarray] | None = None

    def arrays(self) -> tuple[np.ndarray, ...]:
        a = np.asarray(self.rows, dtype=np.int64).reshape(-1, 3)
        return np.arange(len(a), dtype=np.int64), a[:, 0], a[:, 1], a[:, 2]

    def fit(self, decide: bool) -> RunResult:
        ids, task, worker, label = self.arrays()
        return fit_run(
            ids, task, worker, label, n_classes=self.k, gold_task_ids=NONE,
            gold_labels=NONE, method=self.method, decide=decide,
        )  # fmt: skip

    def run(self) -> None:
        """One aggregation run and the overlap rule on what it decided."""
        self.runs += 1
        result = self.fit(decide=True)
        t = result.task_ids
        n = result.task_answers
        decision = result.decision if self.decider is None else self.decider(self, result)
        reached = decision >= self.target
        self.done[t] = (n >= self.overlap) & reached
        grow = (n >= self.slots[t]) & ~reached & (self.slots[t] < self.cap)
        self.slots[t[grow]] += 1

    def accuracy(self) -> float:
        result = self.fit(decide=False)
        labels = result.labels
        got = {self.data.tasks[int(t)]: self.data.labels[int(c)]
               for t, c in zip(result.task_ids, labels, strict=True)}  # fmt: skip
        return sum(got.get(t) == g for t, g in self.data.gold.items()) / len(self.data.gold)


def simulate(sim: Sim, seed: int, run_every: int) -> Sim:
    data = sim.data
    workers = data.workers
    wid = {w: i for i, w in enumerate(workers)}
    remaining = {w: {sim.task_of[t] for t in data.answers[w]} for w in workers}
    seen = {w: set() for w in workers}  # type: dict[str, set[int]]
    rng = random.Random(f"{seed}:{data.name}")
    since = 0
    settled = False
    while True:
        new = 0
        order = list(workers)
        rng.shuffle(order)
        for w in order:
            if not remaining[w]:
                continue
            while remaining[w]:
                open_ = np.flatnonzero((sim.count < sim.slots) & ~sim.done)
                mine = [t for t in open_.tolist() if t in remaining[w] and t not in seen[w]]
                if not mine:
                    break
                # The service hands out the most answered open task first; the worker skips
                # every task it has no answer for, so it ends up with the first of its own.
                t = min(mine, key=lambda j: (-sim.count[j], j))
                seen[w].add(t)
                remaining[w].discard(t)
                label = data.answers[w][data.tasks[t]]
                sim.rows.append((t, wid[w], sim.class_of[label]))
                sim.count[t] += 1
                new += 1
                since += 1
                if since >= run_every:
                    sim.run()
                    since = 0
        if new:
            settled = False
            continue
        if settled:
            break
        if since or not sim.runs:
            sim.run()
            since = 0
        settled = True
    return sim


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="datasets folder, or one dataset's")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--overlap", type=int, default=3)
    p.add_argument("--targets", type=float, nargs="*", default=[0.99])
    p.add_argument("--method", default="ds", help="the projects' method (the service's default: ds)")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="worker-order seeds")
    p.add_argument("--run-every", type=int, default=30, help="answers between two runs")
    args = p.parse_args(argv)
    for folder in dataset_folders(args.data, args.datasets, False):
        data = load(folder)
        fixed = Sim(data, data.max_per_task, 0.0, args.method)
        for w, mine in data.answers.items():
            for t, label in mine.items():
                fixed.rows.append((fixed.task_of[t], data.workers.index(w), fixed.class_of[label]))
        f_acc = fixed.accuracy()
        for target in args.targets:
            diffs, shares = [], []
            for seed in args.seeds:
                began = time.monotonic()
                sim = simulate(Sim(data, args.overlap, target, args.method), seed, args.run_every)
                d_acc = sim.accuracy()
                share = len(sim.rows) / data.n_answers
                diff = d_acc - f_acc
                diffs.append(diff)
                shares.append(share)
                met = diff >= -GOAL_POINTS - 1e-12 and share <= GOAL_SHARE
                print(
                    f"{data.name:12s} @{target:<8g} seed {seed}  fixed {f_acc:.4f}"
                    f"  dynamic {d_acc:.4f} ({100 * diff:+.2f})  answers {len(sim.rows)}"
                    f"/{data.n_answers} ({100 * share:.1f}%)  {'yes' if met else 'NO '}"
                    f"  runs {sim.runs}  {time.monotonic() - began:.0f} s",
                    flush=True,
                )
            if len(args.seeds) > 1:
                print(
                    f"{data.name:12s} @{target:<8g} mean of {len(args.seeds)} seeds:"
                    f" {100 * float(np.mean(diffs)):+.2f} points with"
                    f" {100 * float(np.mean(shares)):.1f}% of the answers",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
