"""Stretch goal: the model's prediction as each task's prior in the Dawid-Skene E-step.

    .venv/bin/python benchmarks/model_prior.py --data ../shared/datasets/zheng_product

Offline, no service: thins zheng_product's real answers to one or two per task (half the
tasks each, seeded), fits crowd.em's Dawid-Skene on them (the peer: plain Dawid-Skene, class
priors), trains the project model on its posteriors with 5-fold cross-fitting (a task's prior
never comes from a model that saw its own labels) and recomputes the posteriors with the
model's probabilities as task priors (crowd.learn.posteriors_with_prior, Raykar et al. 2010).
The model reads ``--input features`` (product-pair similarities, as in
benchmarks/active_learning.py; a bag-of-words model does not beat the majority class on this
dataset) or ``text``. Prints accuracy on gold for tasks with 1 and with 2 answers, each
method's error and the error ratio, averaged over ``--seeds`` thinnings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_learning import read_items, task_data
from replay import Dataset, load

from crowd import learn
from crowd.em import DawidSkene, encode

FOLDS = 5


def thin(data: Dataset, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """Keep 1 or 2 answers per task (each with probability 1/2): ``(tasks, workers, labels)``."""
    per_task: dict[str, list[tuple[str, str]]] = {}
    for worker in data.workers:
        for task, label in data.answers[worker].items():
            per_task.setdefault(task, []).append((worker, label))
    tasks, workers, labels = [], [], []
    for task in data.tasks:
        answers = per_task[task]
        keep = rng.permutation(len(answers))[: int(rng.integers(1, 3))]
        for i in keep:
            tasks.append(task)
            workers.append(answers[i][0])
            labels.append(answers[i][1])
    return tasks, workers, labels


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="a dataset folder with items.csv")
    p.add_argument("--input", choices=("text", "features"), default="features")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)

    data = load(args.data)
    items = read_items(args.data)
    spec = learn.ModelSpec(args.input, "text" if args.input == "text" else "x")
    key = spec.field
    scores: dict[tuple[str, int], list[float]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        tasks, workers, labels = thin(data, rng)
        enc = encode(tasks, workers, labels)
        k = len(enc.classes)
        ds = DawidSkene().fit(enc.tasks, enc.workers, enc.labels)
        task_ids = [str(t) for t in enc.task_index]
        values = [task_data(items.get(t), args.input).get(key) for t in task_ids]
        usable, _, dim = learn.extract(spec, values)
        prior = np.array(ds.priors_)[None, :].repeat(len(task_ids), axis=0)
        rows = np.flatnonzero(usable)
        fold = rng.integers(0, FOLDS, rows.size)
        for f in range(FOLDS):
            train, test = rows[fold != f], rows[fold == f]
            model = learn.fit(spec, learn.extract(spec, [values[i] for i in train], dim)[1],
                              ds.posteriors_[train])  # fmt: skip
            test_X = learn.extract(spec, [values[i] for i in test], dim)[1]
            prior[test] = learn.predict(model, test_X, k)
        combined = learn.posteriors_with_prior(
            enc.tasks, enc.workers, enc.labels, ds.confusion_, prior
        )
        counts = np.bincount(enc.tasks, minlength=len(task_ids))
        gold = data.gold
        label_of = {str(v): i for i, v in enumerate(enc.classes)}
        has_gold = np.array([t in gold for t in task_ids])
        truth = np.array([label_of.get(gold.get(t, ""), -1) for t in task_ids])
        for n in (1, 2):
            mask = has_gold & (counts == n)
            for name, post in (("ds", ds.posteriors_), ("ds+model prior", combined)):
                accuracy = float(np.mean(post[mask].argmax(axis=1) == truth[mask]))
                scores.setdefault((name, n), []).append(accuracy)
    print(f"{data.name}: answers thinned to 1-2 per task, {args.seeds} seeds, model input"
          f" {args.input}, {FOLDS}-fold cross-fitted priors")  # fmt: skip
    print()
    print(
        "| answers per task | Dawid-Skene (peer) | DS + model prior | error ratio (ours / peer) |"
    )
    print("|---:|---:|---:|---:|")
    for n in (1, 2):
        peer = float(np.mean(scores[("ds", n)]))
        ours = float(np.mean(scores[("ds+model prior", n)]))
        print(f"| {n} | {peer:.4f} | {ours:.4f} | {(1 - ours) / (1 - peer):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
