"""What a requester model adds as a voter, over plain Dawid-Skene on the same answers.

    .venv/bin/python benchmarks/model_voter.py --data ../shared/datasets/zheng_product

Offline, no service, through the function a live run calls (``crowd.em.live.fit_run``,
method ``--method``, default ``ds``). zheng_product's real answers are kept whole (3 per task) or thinned to 1 or
2 per task (half the tasks each, seeded, as benchmarks/model_prior.py does). The "requester
model" is the features model (product-pair similarities, benchmarks/active_learning.py)
trained with 5-fold cross-fitting on the plain fit's posteriors, so a task's prediction never
comes from a model that saw its own answers; it posts its argmax label, as a requester would.

Printed, accuracy on gold (averaged over ``--seeds``), for tasks with 1, 2 and 3 answers:

* the peer: plain Dawid-Skene on the answers;
* DS + model prior: the model's probabilities as each task's prior in the same fit's E-step
  (``crowd.learn.posteriors_with_prior``, benchmarks/model_prior.py's method);
* DS + model voter: the model as one more voter with its own confusion matrix (ours);
* the model alone;

each without gold and with ``--gold-share`` of the gold revealed (clamped; scored on the rest),
and the error ratio ours / peer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_learning import read_items, task_data
from model_prior import FOLDS, thin
from replay import Dataset, load

from crowd import learn
from crowd.em import encode
from crowd.em.live import fit_run
from crowd.em.voters import ModelVotes


def whole(data: Dataset) -> tuple[list[str], list[str], list[str]]:
    tasks, workers, labels = [], [], []
    for worker in data.workers:
        for task, label in data.answers[worker].items():
            tasks.append(task)
            workers.append(worker)
            labels.append(label)
    return tasks, workers, labels


def cross_fitted(
    items: dict[str, dict[str, str]],
    task_names: list[str],
    posteriors: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_tasks, K)`` predicted probabilities, each task's from a model fitted on the
    other folds' posteriors (uniform where the task has no features)."""
    spec = learn.ModelSpec("features", "x")
    values = [task_data(items.get(t), "features").get("x") for t in task_names]
    usable, _, dim = learn.extract(spec, values)
    proba = np.full((len(task_names), k), 1.0 / k)
    rows = np.flatnonzero(usable)
    fold = rng.integers(0, FOLDS, rows.size)
    for f in range(FOLDS):
        train, test = rows[fold != f], rows[fold == f]
        X = learn.extract(spec, [values[i] for i in train], dim)[1]
        model = learn.fit(spec, X, posteriors[train])
        proba[test] = learn.predict(
            model, learn.extract(spec, [values[i] for i in test], dim)[1], k
        )
    return proba


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="a dataset folder with items.csv")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--gold-share", type=float, default=0.1, help="gold revealed in the fit")
    p.add_argument("--method", default="ds", help="the fit's method (ds, hds, onecoin, auto)")
    args = p.parse_args(argv)

    data = load(args.data)
    items = read_items(args.data)
    scores: dict[tuple[str, str, int], list[float]] = {}
    for seed in range(args.seeds):
        for answers in ("thinned", "whole"):
            rng = np.random.default_rng(seed)
            tasks, workers, labels = thin(data, rng) if answers == "thinned" else whole(data)
            enc = encode(tasks, workers, labels)
            k = len(enc.classes)
            names = [str(t) for t in enc.task_index]
            label_of = {str(v): i for i, v in enumerate(enc.classes)}
            truth = np.array([label_of.get(data.gold.get(t, ""), -1) for t in names])
            counts = np.bincount(enc.tasks, minlength=len(names))
            ids = np.arange(enc.tasks.size)
            none = np.zeros(0, dtype=np.int64)
            plain = fit_run(ids, enc.tasks, enc.workers, enc.labels, n_classes=k,
                            gold_task_ids=none, gold_labels=none, method=args.method)  # fmt: skip
            proba = cross_fitted(items, names, plain.posteriors, k, rng)
            votes = ModelVotes(
                task_ids=np.arange(len(names), dtype=np.int64),
                models=np.zeros(len(names), dtype=np.int64),
                labels=proba.argmax(axis=1).astype(np.int64),
                names=("features",),
            )
            revealed = np.flatnonzero((truth >= 0) & (rng.random(len(names)) < args.gold_share))
            for gold in ("no gold", f"{args.gold_share:.0%} gold"):
                g_tasks = none if gold == "no gold" else revealed
                g_labels = truth[g_tasks]
                peer = fit_run(ids, enc.tasks, enc.workers, enc.labels, n_classes=k,
                               gold_task_ids=g_tasks, gold_labels=g_labels, method=args.method)  # fmt: skip
                ours = fit_run(ids, enc.tasks, enc.workers, enc.labels, n_classes=k,
                               gold_task_ids=g_tasks, gold_labels=g_labels, votes=votes,
                               method=args.method)  # fmt: skip
                prior = learn.posteriors_with_prior(
                    enc.tasks, enc.workers, enc.labels, peer.confusion, proba
                )
                scored = (truth >= 0) & ~np.isin(np.arange(len(names)), g_tasks)
                for n in (1, 2, 3):
                    mask = scored & (counts == n)
                    if not mask.any():
                        continue
                    for method, post in (
                        ("peer", peer.posteriors),
                        ("prior", prior),
                        ("voter", ours.posteriors),
                        ("model", proba),
                    ):
                        hit = float(np.mean(post[mask].argmax(axis=1) == truth[mask]))
                        scores.setdefault((gold, method, n), []).append(hit)
    print(f"{data.name}, method {args.method}: {args.seeds} seeds; the features model {FOLDS}-fold cross-fitted on the"
          " plain fit's posteriors; accuracy on gold not revealed to the fit")  # fmt: skip
    print()
    print(
        "| gold in the fit | answers per task | plain fit (peer) | + model prior"
        " | + model voter (ours) | model alone | error ratio (ours / peer) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for gold in ("no gold", f"{args.gold_share:.0%} gold"):
        for n in (1, 2, 3):
            if (gold, "peer", n) not in scores:
                continue
            row = {
                m: float(np.mean(scores[(gold, m, n)])) for m in ("peer", "prior", "voter", "model")
            }
            ratio = (1 - row["voter"]) / max(1 - row["peer"], 1e-12)
            print(
                f"| {gold} | {n} | {row['peer']:.4f} | {row['prior']:.4f} | {row['voter']:.4f}"
                f" | {row['model']:.4f} | {ratio:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
