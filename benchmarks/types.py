"""Multi-label, numeric and pairwise aggregation: crowd.em against Crowd-Kit and simple peers.

    python benchmarks/types.py --data ../shared/datasets [--speed-answers 1000000]
                               [--pairwise-items 5000] [--noisy-bt-answers 20000]
                               [--skip-accuracy] [--skip-speed] [--seed 0]

Accuracy, on the real crowds of ``<data>/{pairwise,numeric,multilabel}/`` (formats and
Crowd-Kit's own figures in ``TYPES.md`` there); no gold is shown to any fit:

* pairwise ``chen2013_readability``: Spearman and Kendall tau-b of item scores against the
  gold reading levels, for ``CrowdBradleyTerry`` (and its fitted position bias), the win rate,
  Crowd-Kit ``BradleyTerry(n_iter=100)`` and ``NoisyBradleyTerry()`` (random_state=0);
* numeric ``snow_emotion`` and ``snow_wordsim``: MAE and RMSE of ``NumericEM``, the per-task
  mean and median (Crowd-Kit has no aggregator for numbers). Where the folder has an
  ``items.csv`` with a ``dimension`` column (snow_emotion's seven scales), ``NumericEM`` is
  also fitted once per dimension, as a service project per scale would be;
* multilabel ``snow_affect``: F1 macro over labels, exact match and label-wise accuracy of
  ``MultilabelDawidSkene``, Crowd-Kit ``BinaryRelevance(MajorityVote())`` and
  ``BinaryRelevance(DawidSkene(n_iter=100, tol=1e-5))``.

Speed, on seeded synthetic crowds with a known truth, one fit each in this process with the
methods' defaults (wall clock, ``time.perf_counter``; input conversion not timed):

* multilabel: ``--speed-answers`` answers (5 per task, 6 labels, 1,000 workers) for
  ``MultilabelDawidSkene`` and ``BinaryRelevance(DawidSkene(n_iter=100, tol=1e-5))``;
* pairwise: ``--speed-answers`` comparisons among ``--pairwise-items`` items (300 workers)
  for ``CrowdBradleyTerry`` and ``BradleyTerry(n_iter=100)`` (which builds a dense
  items x items win matrix, so its cost grows with the square of the items), and
  ``--noisy-bt-answers`` comparisons for ``CrowdBradleyTerry`` and ``NoisyBradleyTerry()``,
  whose fit at 1M answers takes far too long here.

Crowd-Kit is in the ``bench`` extra: ``.venv/bin/pip install -e '.[dev,bench]'``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import kendalltau, spearmanr

from crowd import datasets
from crowd.em import CrowdBradleyTerry, MultilabelDawidSkene, NumericEM

_MISSING_CROWDKIT = (
    "error: this benchmark compares against Crowd-Kit, which is not installed.\n"
    "Install the benchmark extra:  .venv/bin/pip install -e '.[dev,bench]'"
)


def timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit()
    return result, time.perf_counter() - started


def codes(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids, inverse = np.unique(np.array(values, dtype=str), return_inverse=True)
    return inverse.astype(np.intp), ids


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# ----------------------------------------------------------------------------- pairwise


def pairwise_accuracy(folder: Path, ck: Any) -> None:
    import pandas as pd

    answer_columns, _ = datasets.TYPE_COLUMNS["pairwise"]
    answers = datasets.read_csv(folder / "answers.csv", answer_columns)
    gold = dict(datasets.read_csv(folder / "gold.csv", ("item", "score")))
    left_ids, right_ids, worker_ids, winner_ids = (list(c) for c in zip(*answers, strict=True))
    items, both = np.unique(np.array(left_ids + right_ids, dtype=str), return_inverse=True)
    n = len(answers)
    left, right = both[:n], both[n:]
    workers, _ = codes(worker_ids)
    outcomes = (np.array(winner_ids) == np.array(left_ids)).astype(float)
    truth = np.array([float(gold[i]) for i in items])

    def scored(scores: np.ndarray) -> list[str]:
        return [
            f"{spearmanr(scores, truth).statistic:.4f}",
            f"{kendalltau(scores, truth).statistic:.4f}",
        ]

    rows = []
    model, seconds = timed(lambda: CrowdBradleyTerry().fit(left, right, workers, outcomes))
    rows.append(["ours CrowdBradleyTerry", *scored(model.scores_), f"{seconds:.3f}"])
    wins = np.bincount(np.where(outcomes == 1, left, right), minlength=len(items))
    shown = np.bincount(np.concatenate([left, right]), minlength=len(items))
    rows.append(["win rate", *scored(wins / np.maximum(shown, 1)), "-"])
    frame = pd.DataFrame(
        {"worker": worker_ids, "left": left_ids, "right": right_ids, "label": winner_ids}
    )
    for name, make in [
        ("CK BradleyTerry(n_iter=100)", lambda: ck.BradleyTerry(n_iter=100)),
        ("CK NoisyBradleyTerry()", lambda: ck.NoisyBradleyTerry(random_state=0)),
    ]:
        fitted, seconds = timed(lambda make=make: make().fit_predict(frame))
        rows.append([name, *scored(fitted.reindex(items).to_numpy()), f"{seconds:.3f}"])
    print(f"### pairwise: {folder.name} ({n:,} answers, {len(items)} items)\n")
    table(["method", "Spearman", "Kendall tau-b", "time (s)"], rows)
    print(
        f"Fitted position bias: {model.position_bias_:+.4f} (log-odds for the left item; "
        f"left won {outcomes.mean():.4f} of answers). Components: {model.n_components_}. "
        f"Mean worker reliability {model.reliability_.mean():.3f}.\n"
    )


# ----------------------------------------------------------------------------- numeric


def numeric_accuracy(folder: Path) -> None:
    answer_columns, gold_columns = datasets.TYPE_COLUMNS["numeric"]
    answers = datasets.read_csv(folder / "answers.csv", answer_columns)
    gold = dict(datasets.read_csv(folder / "gold.csv", gold_columns))
    task_ids, worker_ids, raw = (list(c) for c in zip(*answers, strict=True))
    tasks, task_index = codes(task_ids)
    workers, _ = codes(worker_ids)
    values = np.array(raw, dtype=float)
    truth = np.array([float(gold[t]) for t in task_index])
    n = len(task_index)

    def scored(estimate: np.ndarray) -> list[str]:
        error = estimate - truth
        return [f"{np.abs(error).mean():.4f}", f"{np.sqrt((error**2).mean()):.4f}"]

    rows = []
    model, seconds = timed(lambda: NumericEM().fit(tasks, workers, values))
    rows.append(["ours NumericEM", *scored(model.values_), f"{seconds:.3f}"])
    dimension_of = _dimensions(folder)
    if dimension_of:
        dims = np.array([dimension_of[t] for t in task_index])
        per_dimension = np.empty(n)
        started = time.perf_counter()
        for dim in np.unique(dims):
            chosen = np.flatnonzero(dims == dim)
            keep = np.isin(tasks, chosen)
            sub_tasks = np.searchsorted(chosen, tasks[keep])
            sub_workers = np.unique(workers[keep], return_inverse=True)[1]
            per_dimension[chosen] = NumericEM().fit(sub_tasks, sub_workers, values[keep]).values_
        rows.append(
            [
                "ours NumericEM, one fit per dimension",
                *scored(per_dimension),
                f"{time.perf_counter() - started:.3f}",
            ]
        )
    mean = np.bincount(tasks, values, minlength=n) / np.bincount(tasks, minlength=n)
    rows.append(["mean per task", *scored(mean), "-"])
    order = np.lexsort((values, tasks))
    median = np.array(
        [np.median(v) for v in np.split(values[order], np.cumsum(np.bincount(tasks))[:-1])]
    )
    rows.append(["median per task", *scored(median), "-"])
    inside = (truth >= model.interval_[:, 0]) & (truth <= model.interval_[:, 1])
    print(f"### numeric: {folder.name} ({len(values):,} answers, {n} tasks)\n")
    table(["method", "MAE", "RMSE", "time (s)"], rows)
    print(
        f"Gold inside NumericEM's 90% interval: {inside.mean():.3f} of tasks (gold is an "
        f"expert mean, not the truth). Worker bias sd {model.bias_scale_:.3f}.\n"
    )


def _dimensions(folder: Path) -> dict[str, str]:
    path = folder / "items.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if "dimension" not in (reader.fieldnames or []):
            return {}
        return {row["task"]: row["dimension"] for row in reader}


# ----------------------------------------------------------------------------- multilabel


def label_sets(column: list[str]) -> list[list[str]]:
    return [[label for label in value.split("|") if label] for value in column]


def multilabel_scores(predicted: np.ndarray, truth: np.ndarray) -> list[str]:
    f1 = []
    for k in range(truth.shape[1]):
        tp = np.sum(predicted[:, k] & truth[:, k])
        wrong = np.sum(predicted[:, k] != truth[:, k])
        f1.append(2 * tp / (2 * tp + wrong) if tp else 0.0)
    return [
        f"{np.mean(f1):.4f}",
        f"{np.mean(np.all(predicted == truth, axis=1)):.4f}",
        f"{np.mean(predicted == truth):.4f}",
    ]


def multilabel_accuracy(folder: Path, ck: Any) -> None:
    import pandas as pd

    answer_columns, gold_columns = datasets.TYPE_COLUMNS["multilabel"]
    answers = datasets.read_csv(folder / "answers.csv", answer_columns)
    gold = dict(datasets.read_csv(folder / "gold.csv", gold_columns))
    task_ids, worker_ids, raw = (list(c) for c in zip(*answers, strict=True))
    tasks, task_index = codes(task_ids)
    workers, _ = codes(worker_ids)
    sets = label_sets(raw)
    names = sorted({label for s in sets for label in s})
    ticked = np.array([[name in s for name in names] for s in sets], dtype=np.int8)
    truth = np.array([[name in gold[t].split("|") for name in names] for t in task_index])

    rows = []
    model, seconds = timed(lambda: MultilabelDawidSkene().fit(tasks, workers, ticked))
    rows.append(
        ["ours MultilabelDawidSkene", *multilabel_scores(model.labels_, truth), f"{seconds:.3f}"]
    )
    frame = pd.DataFrame({"task": task_ids, "worker": worker_ids, "label": sets})
    for name, make in [
        ("CK BinaryRelevance(MajorityVote())", lambda: ck.BinaryRelevance(ck.MajorityVote())),
        (
            "CK BinaryRelevance(DawidSkene(n_iter=100))",
            lambda: ck.BinaryRelevance(ck.DawidSkene(n_iter=100, tol=1e-5)),
        ),
    ]:
        fitted, seconds = timed(lambda make=make: make().fit_predict(frame))
        chosen = np.array(
            [[name in fitted.get(t, []) for name in names] for t in task_index], dtype=bool
        )
        rows.append([name, *multilabel_scores(chosen, truth), f"{seconds:.3f}"])
    print(f"### multilabel: {folder.name} ({len(tasks):,} answers, {len(task_index)} tasks)\n")
    table(["method", "F1 macro", "exact match", "label accuracy", "time (s)"], rows)


# ----------------------------------------------------------------------------- speed


def synthetic_multilabel(n_answers: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n_tasks, n_labels, n_workers = n_answers // 5, 6, 1000
    truth = rng.random((n_tasks, n_labels)) < 0.35
    sensitivity = rng.uniform(0.4, 0.95, n_workers)
    specificity = rng.uniform(0.8, 0.99, n_workers)
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = rng.integers(0, n_workers, tasks.size)
    rows = truth[tasks]
    p_tick = np.where(rows, sensitivity[workers, None], 1 - specificity[workers, None])
    ticked = (rng.random(rows.shape) < p_tick).astype(np.int8)
    return tasks, workers, ticked, truth


def synthetic_pairwise(n_answers: int, n_items: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, n_items)
    left = rng.integers(0, n_items, n_answers)
    right = (left + rng.integers(1, n_items, n_answers)) % n_items
    n_workers = 300
    reliability = rng.uniform(0.6, 1.0, n_workers)
    workers = rng.integers(0, n_workers, n_answers)
    left_wins = rng.random(n_answers) < expit(scores[left] - scores[right] + 0.2)
    faithful = rng.random(n_answers) < reliability[workers]
    return left, right, workers, np.where(faithful, left_wins, ~left_wins).astype(float), scores


def speed(args: argparse.Namespace, ck: Any) -> None:
    import pandas as pd

    rows = []
    n = args.speed_answers
    tasks, workers, ticked, truth = synthetic_multilabel(n, args.seed)
    ours, ours_s = timed(lambda: MultilabelDawidSkene().fit(tasks, workers, ticked))
    names = [f"l{k}" for k in range(ticked.shape[1])]
    labels = [[names[k] for k in np.flatnonzero(row)] for row in ticked]
    frame = pd.DataFrame({"task": tasks, "worker": workers, "label": labels})
    theirs, theirs_s = timed(
        lambda: ck.BinaryRelevance(ck.DawidSkene(n_iter=100, tol=1e-5)).fit_predict(frame)
    )
    theirs_sets = np.array(
        [[name in theirs.get(t, []) for name in names] for t in range(truth.shape[0])]
    )
    rows.append(
        [
            f"multilabel, {n:,} answers",
            f"MultilabelDawidSkene {ours_s:.2f} s (label acc {np.mean(ours.labels_ == truth):.4f})",
            f"BinaryRelevance(DawidSkene) {theirs_s:.2f} s "
            f"(label acc {np.mean(theirs_sets == truth):.4f})",
            f"{theirs_s / ours_s:.1f}x",
        ]
    )

    def pairwise_row(n_answers: int, n_items: int, peer: str, make: Callable[[], Any]) -> None:
        left, right, wk, outcomes, scores = synthetic_pairwise(n_answers, n_items, args.seed)
        ours, ours_s = timed(lambda: CrowdBradleyTerry().fit(left, right, wk, outcomes))
        frame = pd.DataFrame(
            {
                "worker": wk,
                "left": left,
                "right": right,
                "label": np.where(outcomes == 1, left, right),
            }
        )
        fitted, theirs_s = timed(lambda: make().fit_predict(frame))
        theirs_scores = fitted.reindex(np.arange(n_items)).to_numpy()
        rows.append(
            [
                f"pairwise, {n_answers:,} answers, {n_items:,} items",
                f"CrowdBradleyTerry {ours_s:.2f} s "
                f"(Spearman {spearmanr(ours.scores_, scores).statistic:.4f})",
                f"{peer} {theirs_s:.2f} s "
                f"(Spearman {spearmanr(theirs_scores, scores, nan_policy='omit').statistic:.4f})",
                f"{theirs_s / ours_s:.1f}x",
            ]
        )

    pairwise_row(
        n, args.pairwise_items, "BradleyTerry(n_iter=100)", lambda: ck.BradleyTerry(n_iter=100)
    )
    pairwise_row(
        args.noisy_bt_answers,
        min(args.pairwise_items, args.noisy_bt_answers // 20),
        "NoisyBradleyTerry()",
        lambda: ck.NoisyBradleyTerry(random_state=0),
    )
    print(f"### speed: seeded synthetic crowds (seed {args.seed})\n")
    table(["data", "ours", "Crowd-Kit", "speed-up"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--speed-answers", type=int, default=1_000_000)
    parser.add_argument("--pairwise-items", type=int, default=5_000)
    parser.add_argument("--noisy-bt-answers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    try:
        from crowdkit import aggregation as ck
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(_MISSING_CROWDKIT, file=sys.stderr)
        return 2
    # One BLAS thread for every method: on a small machine shared with other jobs, threaded
    # BLAS spin-waits and turns L-BFGS's tiny vector steps into milliseconds each (100x here).
    with threadpool_limits(1):
        return run(args, ck)


def run(args: argparse.Namespace, ck: Any) -> int:
    if not args.skip_accuracy:
        for path, run in [
            (args.data / "pairwise" / "chen2013_readability", lambda p: pairwise_accuracy(p, ck)),
            (args.data / "numeric" / "snow_emotion", numeric_accuracy),
            (args.data / "numeric" / "snow_wordsim", numeric_accuracy),
            (args.data / "multilabel" / "snow_affect", lambda p: multilabel_accuracy(p, ck)),
        ]:
            if not path.is_dir():
                print(
                    f"error: {path} not found; pass --data <shared datasets folder>",
                    file=sys.stderr,
                )
                return 2
            run(path)
            sys.stdout.flush()
    if not args.skip_speed:
        speed(args, ck)
    return 0


if __name__ == "__main__":
    sys.exit(main())
