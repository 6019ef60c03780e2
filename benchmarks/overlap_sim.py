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

Options that measure how far any stopping rule could go (benchmarks/RESULTS.md uses them):

* ``--equal-budget``: fixed overlap ``k`` (the first ``k`` workers to reach each task, the same
  crowd and order) for every ``k`` below the largest, and the one whose answers are nearest
  dynamic overlap's: dynamic against fixed at the same number of answers;
* ``--oracle``: dynamic overlap with a rule that knows the answer: a task closes, once it has
  ``--overlap`` answers, as soon as its label equals the label fixed overlap gives it with
  every answer. No rule that only decides when to stop can close fewer tasks wrongly;
* ``--random-subsets N``: the method on ``N`` random draws of 70% of each task's answers (no
  adaptivity at all);
* ``--control SHARE``: that share of the gold tasks (seeded) posted as control tasks in both
  settings, as ``gold`` in the service: clamped in the fit, answered by every worker who has a
  recorded answer, never closed, and left out of the accuracy.
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

    def __init__(
        self,
        data: Dataset,
        overlap: int,
        target: float,
        method: str,
        control: Sequence[str] = (),
    ) -> None:
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
        #: Control tasks (task indices, sorted) and their gold classes: every worker answers
        #: them, they never close, and they are not scored.
        self.control = np.asarray(sorted(self.task_of[t] for t in control), dtype=np.int64)
        self.control_labels = np.asarray(
            [self.class_of[data.gold[data.tasks[t]]] for t in self.control], dtype=np.int64
        )
        self.slots[self.control] = self.cap
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
            ids, task, worker, label, n_classes=self.k, gold_task_ids=self.control,
            gold_labels=self.control_labels, method=self.method, decide=decide,
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
        self.done[self.control] = False

    def scored(self) -> dict[str, str]:
        """The gold tasks accuracy is computed on: every one but the control tasks."""
        left_out = {self.data.tasks[t] for t in self.control.tolist()}
        return {t: g for t, g in self.data.gold.items() if t not in left_out}

    def accuracy(self) -> float:
        result = self.fit(decide=False)
        labels = result.labels
        got = {self.data.tasks[int(t)]: self.data.labels[int(c)]
               for t, c in zip(result.task_ids, labels, strict=True)}  # fmt: skip
        gold = self.scored()
        return sum(got.get(t) == g for t, g in gold.items()) / len(gold)


def fixed_sim(data: Dataset, method: str, control: Sequence[str]) -> Sim:
    """Fixed overlap: every recorded answer."""
    fixed = Sim(data, data.max_per_task, 0.0, method, control)
    wid = {w: i for i, w in enumerate(data.workers)}
    for w, mine in data.answers.items():
        for t, label in mine.items():
            fixed.rows.append((fixed.task_of[t], wid[w], fixed.class_of[label]))
    return fixed


def oracle(fixed: Sim) -> Callable[[Sim, RunResult], np.ndarray]:
    """A decider that closes a task (decision 1) whenever its label is the one ``fixed``
    gives it: the best any rule that only chooses when to stop can do."""
    result = fixed.fit(decide=False)
    final = np.full(len(fixed.data.tasks), -1, dtype=np.int64)
    final[result.task_ids] = result.labels

    def decide(sim: Sim, run: RunResult) -> np.ndarray:
        return (run.labels == final[run.task_ids]).astype(np.float64)

    return decide


def random_subsets(fixed: Sim, share: float, draws: int) -> list[float]:
    """Accuracy of the method on ``draws`` random ``share`` of each task's answers (rounded,
    at least one), control tasks keeping all theirs."""
    rows = np.asarray(fixed.rows, dtype=np.int64)
    by_task = np.argsort(rows[:, 0], kind="stable")
    starts = np.searchsorted(rows[by_task, 0], np.arange(len(fixed.data.tasks) + 1))
    control = set(fixed.control.tolist())
    out = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        keep: list[int] = []
        for j in range(len(fixed.data.tasks)):
            mine = by_task[starts[j] : starts[j + 1]]
            if j in control or mine.size == 0:
                keep += mine.tolist()
                continue
            take = max(1, round(share * mine.size))
            keep += rng.choice(mine, take, replace=False).tolist()
        sub = Sim(fixed.data, fixed.overlap, 0.0, fixed.method)
        sub.control, sub.control_labels = fixed.control, fixed.control_labels
        sub.rows = [tuple(r) for r in rows[np.sort(keep)].tolist()]
        out.append(sub.accuracy())
    return out


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


def equal_budget(dynamic: Sim, seed: int, d_acc: float) -> str:
    """Fixed overlap k for every k below the largest, over the same crowd and order; the one
    nearest ``dynamic``'s answers against it."""
    data = dynamic.data
    curve = []
    for k in range(min(dynamic.overlap, data.max_per_task - 1), data.max_per_task):
        fixed_k = Sim(data, k, 0.0, dynamic.method, [data.tasks[t] for t in dynamic.control])
        fixed_k.cap = k  # target 0: every task closes at its k answers, none grows
        simulate(fixed_k, seed, 10**12)
        curve.append((k, len(fixed_k.rows), fixed_k.accuracy()))
    k, n, acc = min(curve, key=lambda c: abs(c[1] - len(dynamic.rows)))
    shown = " ".join(f"{c[0]}:{c[2]:.4f}/{100 * c[1] / data.n_answers:.0f}%" for c in curve)
    return (
        f"equal budget: fixed overlap {k} {acc:.4f} with {n} answers; dynamic"
        f" {100 * (d_acc - acc):+.2f} points against it  (k:accuracy/answers {shown})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="datasets folder, or one dataset's")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--overlap", type=int, default=3)
    p.add_argument("--targets", type=float, nargs="*", default=[0.99])
    p.add_argument(
        "--method", default="ds", help="the projects' method (the service's default: ds)"
    )
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="worker-order seeds")
    p.add_argument("--run-every", type=int, default=30, help="answers between two runs")
    p.add_argument("--control", type=float, default=0.0, help="share of gold posted as control")
    p.add_argument("--oracle", action="store_true", help="stop by a rule that knows the answer")
    p.add_argument("--equal-budget", action="store_true", help="fixed overlap k, every k")
    p.add_argument("--random-subsets", type=int, default=0, metavar="N", help="70%% draws")
    args = p.parse_args(argv)
    for folder in dataset_folders(args.data, args.datasets, False):
        data = load(folder)
        control: list[str] = []
        if args.control:
            draw = random.Random(f"control:{data.name}")
            control = sorted(draw.sample(sorted(data.gold), round(args.control * len(data.gold))))
        fixed = fixed_sim(data, args.method, control)
        f_acc = fixed.accuracy()
        if args.random_subsets:
            accs = random_subsets(fixed, GOAL_SHARE, args.random_subsets)
            print(
                f"{data.name:12s} random {100 * GOAL_SHARE:.0f}% of each task's answers,"
                f" {len(accs)} draws: {100 * (float(np.mean(accs)) - f_acc):+.2f} points"
                f" (from {100 * (min(accs) - f_acc):+.2f} to {100 * (max(accs) - f_acc):+.2f})"
                f" against all, {f_acc:.4f}",
                flush=True,
            )
        rule = oracle(fixed) if args.oracle else None
        targets = [0.5] if args.oracle else args.targets
        for target in targets:
            name = "oracle   " if rule else f"@{target:<8g}"
            diffs, shares = [], []
            for seed in args.seeds:
                began = time.monotonic()
                sim = Sim(data, args.overlap, target, args.method, control)
                sim.decider = rule
                sim = simulate(sim, seed, args.run_every)
                d_acc = sim.accuracy()
                share = len(sim.rows) / data.n_answers
                diff = d_acc - f_acc
                diffs.append(diff)
                shares.append(share)
                met = diff >= -GOAL_POINTS - 1e-12 and share <= GOAL_SHARE
                print(
                    f"{data.name:12s} {name} seed {seed}  fixed {f_acc:.4f}"
                    f"  dynamic {d_acc:.4f} ({100 * diff:+.2f})  answers {len(sim.rows)}"
                    f"/{data.n_answers} ({100 * share:.1f}%)  {'yes' if met else 'NO '}"
                    f"  runs {sim.runs}  {time.monotonic() - began:.0f} s",
                    flush=True,
                )
                if args.equal_budget:
                    print("    " + equal_budget(sim, seed, d_acc), flush=True)
            if len(args.seeds) > 1:
                print(
                    f"{data.name:12s} {name} mean of {len(args.seeds)} seeds:"
                    f" {100 * float(np.mean(diffs)):+.2f} points with"
                    f" {100 * float(np.mean(shares)):.1f}% of the answers",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
