"""Aggregation accuracy on real crowds: every crowd.em method against Crowd-Kit, same run.

    python benchmarks/accuracy.py --data ../shared/datasets [--methods ds onecoin ...]
                                  [--crowdkit MV DS ...] [--goal-method auto]
                                  [--out benchmarks/out/accuracy.md]

Each dataset folder holds ``answers.csv`` (``task,worker,label``) and ``gold.csv``
(``task,label``). Accuracy = correct / rows of ``gold.csv``; gold is never shown to a fit.
Labels are read as strings and put in crowd.em's class order (numeric when every label is a
number), so ties go to the same class as in the service.

Crowd-Kit (the ``bench`` extra: crowd-kit==1.4.2, pandas, scikit-learn<1.8) runs MV, Wawa,
DS, OneCoinDS, GLAD and MACE with their defaults. GLAD and MACE are skipped (a dash) on
datasets with more than ``--slow-limit`` answers, where they take minutes.

Printed: one row per dataset, the mean row (GLAD/MACE means cover only the datasets they
ran on), then the two accuracy goals of issue 3 for our default method (or ``--goal-method``):
its mean against the best Crowd-Kit mean (goal: +1 point), and per dataset its margin over
Crowd-Kit's DS (goal: no dataset below -0.5 point).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowd import datasets
from crowd.em import DEFAULT_METHOD, METHODS, encode

CROWDKIT_METHODS = ("MV", "Wawa", "DS", "OneCoinDS", "GLAD", "MACE")
SLOW_CROWDKIT = ("GLAD", "MACE")
MEAN_GOAL = 0.01  # default's mean must beat the best Crowd-Kit mean by one point
FLOOR = -0.005  # and stay within half a point of Crowd-Kit DS on every dataset


@dataclass(frozen=True)
class Dataset:
    name: str
    tasks: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    gold_tasks: np.ndarray
    gold_labels: np.ndarray


def load(folder: Path) -> Dataset:
    found = datasets.read(folder)
    tasks, workers, labels = np.array(found.answers, dtype=str).reshape(-1, 3).T
    gold_tasks = np.array(list(found.gold), dtype=str)
    gold_labels = np.array(list(found.gold.values()), dtype=str)
    return Dataset(found.name, tasks, workers, labels, gold_tasks, gold_labels)


def accuracy(data: Dataset, predicted: dict[str, str]) -> float:
    """Share of gold rows whose task was predicted as the gold label (missing = wrong)."""
    hits = sum(
        predicted.get(t) == g for t, g in zip(data.gold_tasks, data.gold_labels, strict=True)
    )
    return hits / len(data.gold_tasks)


def run_ours(data: Dataset, method: str) -> tuple[float, float]:
    """Fit ``METHODS[method]`` with its defaults; returns (accuracy, seconds)."""
    enc = encode(data.tasks, data.workers, data.labels)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning still yields labels to score
        labels = METHODS[method]().fit_predict(
            enc.tasks,
            enc.workers,
            enc.labels,
            n_tasks=enc.n_tasks,
            n_workers=enc.n_workers,
            n_classes=enc.n_classes,
        )
    seconds = time.perf_counter() - start
    predicted = dict(zip(enc.task_index.tolist(), enc.decode_labels(labels).tolist(), strict=True))
    return accuracy(data, predicted), seconds


def crowdkit_runner() -> Callable[[Dataset, str], tuple[float, float]]:
    try:
        import pandas as pd
        from crowdkit import aggregation as ck
    except ImportError as error:
        raise SystemExit(
            f"Crowd-Kit is needed for the comparison ({error.name} is missing): "
            "pip install -e '.[bench]'  (crowd-kit==1.4.2, pandas, scikit-learn<1.8), "
            "or pass --crowdkit with no names to run our methods only"
        ) from error

    factories: dict[str, Callable[[], Any]] = {
        "MV": ck.MajorityVote,
        "Wawa": ck.Wawa,
        "DS": ck.DawidSkene,
        "OneCoinDS": ck.OneCoinDawidSkene,
        "GLAD": ck.GLAD,
        "MACE": ck.MACE,
    }

    def run(data: Dataset, method: str) -> tuple[float, float]:
        frame = pd.DataFrame({"task": data.tasks, "worker": data.workers, "label": data.labels})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = factories[method]().fit_predict(frame)
        seconds = time.perf_counter() - start
        predicted = {str(t): str(label) for t, label in result.items()}
        return accuracy(data, predicted), seconds

    return run


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def mean_of(values: Sequence[float | None]) -> tuple[float | None, int]:
    present = [v for v in values if v is not None]
    return (float(np.mean(present)) if present else None), len(present)


def report(
    names: list[str],
    ours: list[str],
    theirs: list[str],
    scores: dict[tuple[str, str], float | None],
    goal_method: str = DEFAULT_METHOD,
) -> str:
    columns = [*ours, *(f"CK {m}" for m in theirs)]
    keys = [*ours, *(f"CK {m}" for m in theirs)]
    lines = [
        "| dataset | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in names:
        cells = [fmt(scores[name, key]) for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means: dict[str, float | None] = {}
    mean_cells = []
    for key in keys:
        value, count = mean_of([scores[name, key] for name in names])
        means[key] = value if count == len(names) else None
        suffix = "" if count == len(names) else f" ({count} sets)"
        mean_cells.append(fmt(value) + suffix)
    lines.append("| **mean** | " + " | ".join(mean_cells) + " |")

    full_ck = {k: v for k, v in means.items() if k.startswith("CK ") and v is not None}
    if goal_method in ours and means[goal_method] is not None:
        default_mean = means[goal_method]
        assert default_mean is not None
        lines.append("")
        if full_ck:
            best = max(full_ck, key=lambda k: full_ck[k] or 0.0)
            best_mean = full_ck[best]
            assert best_mean is not None
            diff = default_mean - best_mean
            verdict = (
                "met" if diff >= MEAN_GOAL - 1e-12 else f"NOT met (short by {MEAN_GOAL - diff:.4f})"
            )
            lines.append(
                f"`{goal_method}` mean {default_mean:.4f} vs best Crowd-Kit mean "
                f"{best_mean:.4f} ({best}): {diff:+.4f}; goal +{MEAN_GOAL:.2f}: {verdict}."
            )
        if "DS" in theirs:
            lines += [
                "",
                f"| dataset | `{goal_method}` - CK DS | ≥ {FLOOR:+.3f} |",
                "|---|---:|:---:|",
            ]
            failures = 0
            for name in names:
                ours_score, ds_score = scores[name, goal_method], scores[name, "CK DS"]
                if ours_score is None or ds_score is None:
                    continue
                margin = ours_score - ds_score
                ok = margin >= FLOOR - 1e-12
                failures += not ok
                lines.append(f"| {name} | {margin:+.4f} | {'yes' if ok else 'NO'} |")
            lines.append("")
            lines.append(
                f"Per-dataset floor (`{goal_method}` ≥ CK DS {FLOOR:+.3f}): "
                + (
                    "met on every dataset."
                    if failures == 0
                    else f"NOT met on {failures} dataset(s)."
                )
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/datasets"),
        help="folder of dataset folders (answers.csv + gold.csv each)",
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        default=None,
        choices=sorted(METHODS),
        help="crowd.em methods to run (default: all in METHODS)",
    )
    parser.add_argument(
        "--crowdkit",
        nargs="*",
        default=list(CROWDKIT_METHODS),
        choices=CROWDKIT_METHODS,
        help="Crowd-Kit methods (none: skip Crowd-Kit)",
    )
    parser.add_argument("--datasets", nargs="*", default=None, help="dataset names (default: all)")
    parser.add_argument(
        "--slow-limit",
        type=int,
        default=60_000,
        help="skip GLAD/MACE on datasets with more answers than this",
    )
    parser.add_argument(
        "--goal-method",
        default=DEFAULT_METHOD,
        choices=sorted(METHODS),
        help=f"our method checked against the issue-3 goals (default: {DEFAULT_METHOD})",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: not a folder; point it at shared/datasets")
    folders = sorted(p for p in args.data.iterdir() if (p / "answers.csv").is_file())
    if args.datasets:
        folders = [p for p in folders if p.name in set(args.datasets)]
    if not folders:
        raise SystemExit(f"--data {args.data}: no dataset folder with answers.csv found")
    ours = list(args.methods) if args.methods else list(METHODS)
    theirs = list(args.crowdkit)
    run_ck = crowdkit_runner() if theirs else None

    scores: dict[tuple[str, str], float | None] = {}
    for folder in folders:
        data = load(folder)
        timing = []
        for method in ours:
            scores[data.name, method], seconds = run_ours(data, method)
            timing.append(f"{method} {seconds:.2f}s")
        for method in theirs:
            assert run_ck is not None
            if method in SLOW_CROWDKIT and len(data.tasks) > args.slow_limit:
                scores[data.name, f"CK {method}"] = None
                continue
            scores[data.name, f"CK {method}"], seconds = run_ck(data, method)
            timing.append(f"CK {method} {seconds:.2f}s")
        print(f"{data.name}: {len(data.tasks)} answers; " + ", ".join(timing), file=sys.stderr)

    table = report([p.name for p in folders], ours, theirs, scores, args.goal_method)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
