"""Cost of the default method, ``auto``, against one Dawid-Skene fit, on the same answers.

    python benchmarks/auto_speed.py [--tasks 1000000] [--answers-per-task 5] [--gold 0.1]
                                    [--repeat 3] [--seed 0]

Synthetic answers as in ``benchmarks/em_speed.py`` (``benchmarks/_synthetic.py``: 1M tasks x
5 answers = 5M answers, 1,000 workers, 4 classes, 15% spammers). Timed in one process, each
fit the median of ``--repeat``: ``DawidSkene()`` with its defaults (the peer: "a single ds
fit"), ``AutoAggregator()`` without gold (= hierarchical DS), and ``AutoAggregator()`` with a
seeded ``--gold`` share of the tasks given as gold (four label-free fits to compare on the
gold, then the chosen method's fit with the gold clamped). Issue 15's goal: ``auto`` within
20x of the single ``ds`` fit. Accuracy against the generating truth is printed for
information (on the tasks that are not gold). ``--guess`` also times
``HierarchicalDawidSkene(target="guess")`` without gold (the opt-in target of issue 15's third
pass, not the default) next to the default ``HierarchicalDawidSkene()``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import generate

from crowd.em import AutoAggregator, DawidSkene, HierarchicalDawidSkene

GOAL = 20.0


def timed(fit: Callable[[], object], repeat: int) -> tuple[float, object]:
    seconds = []
    model: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        model = fit()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--answers-per-task", type=int, default=5)
    parser.add_argument("--gold", type=float, default=0.1, help="share of tasks given as gold")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--guess", action="store_true", help="also time hds and hds with target='guess'"
    )
    args = parser.parse_args(argv)

    crowd = generate(n_tasks=args.tasks, answers_per_task=args.answers_per_task, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    gold_tasks = np.sort(rng.choice(crowd.n_tasks, round(args.gold * crowd.n_tasks), replace=False))
    gold = (gold_tasks, crowd.true_labels[gold_tasks])
    rest = np.ones(crowd.n_tasks, dtype=bool)
    rest[gold_tasks] = False
    data = (crowd.tasks, crowd.workers, crowd.labels)
    sizes = {"n_tasks": crowd.n_tasks, "n_workers": crowd.n_workers, "n_classes": crowd.n_classes}

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer, ds = timed(lambda: DawidSkene().fit(*data, **sizes), args.repeat)
        for label, given in (("auto, no gold", None), (f"auto, {args.gold:.0%} gold", gold)):
            seconds, model = timed(
                lambda given=given: AutoAggregator().fit(*data, gold=given, **sizes), args.repeat
            )
            rows.append((label, seconds, model))
        if args.guess:
            for label, target in (("hds", "one-coin"), ("hds, target=guess", "guess")):
                seconds, model = timed(
                    lambda target=target: HierarchicalDawidSkene(target=target).fit(*data, **sizes),
                    args.repeat,
                )
                rows.append((label, seconds, model))

    def accuracy(model: object) -> float:
        return float(np.mean(model.labels_[rest] == crowd.true_labels[rest]))  # type: ignore[attr-defined]

    print(
        f"{crowd.n_answers:,} answers ({crowd.n_tasks:,} tasks x {args.answers_per_task}, "
        f"{crowd.n_workers:,} workers, {crowd.n_classes} classes), seed {args.seed}, "
        f"median of {args.repeat}\n"
    )
    print("| fit | seconds | x one ds fit | goal <= 20x | chose | accuracy (non-gold) |")
    print("|---|---:|---:|:---:|---|---:|")
    print(f"| ds (peer) | {peer:.2f} | 1.0 | | | {accuracy(ds):.4f} |")
    for label, seconds, model in rows:
        ratio = seconds / peer
        print(
            f"| {label} | {seconds:.2f} | {ratio:.1f} | {'met' if ratio <= GOAL else 'NOT met'} "
            f"| {getattr(model, 'method_', '')} | {accuracy(model):.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
