"""Aggregation accuracy on real crowds: every crowd.em method against Crowd-Kit, same run.

    python benchmarks/accuracy.py --data ../shared/datasets [--methods ds onecoin ...]
                                  [--crowdkit MV DS ...] [--goal-method auto]
                                  [--reveal-gold 0.1 --seed 0 1 2 [--little-gold 15]]
                                  [--out benchmarks/out/accuracy.md]

Each dataset folder holds ``answers.csv`` (``task,worker,label``) and ``gold.csv``
(``task,label``). Accuracy = correct / gold rows scored. Labels are read as strings and put in
crowd.em's class order (numeric when every label is a number), so ties go to the same class as
in the service.

Crowd-Kit (the ``bench`` extra: crowd-kit==1.4.2, pandas, scikit-learn<1.8) runs MV, Wawa,
DS, OneCoinDS, GLAD and MACE with their defaults, never with gold. GLAD and MACE are skipped (a
dash) on datasets with more than ``--slow-limit`` answers, where they take minutes.

Without ``--reveal-gold`` no fit sees gold and every gold row is scored. Printed: one row per
dataset, the mean row, then issue 15's label-free goal for ``--goal-method`` (our default):
mean >= Crowd-Kit DS's + 0.5 point, and no dataset more than 1 point below Crowd-Kit DS.

With ``--reveal-gold F --seed S ...``, for every seed a share ``F`` of each dataset's gold rows
(drawn with ``numpy.random.default_rng(S)``) is revealed: our methods fit once without gold and
once with the revealed rows clamped (``gold=``), and every score, label-free or not, is on the
*other* rows only (revealed gold is never scored). Tables are means over the seeds. Printed:
the label-free goal on those rows; the with-gold goal for ``--goal-method`` (mean >= its
label-free mean + 1 point, and within 0.5 point of the per-dataset oracle: the best of our
label-free methods, each fitted with the same revealed gold); and, with ``--little-gold N``,
the same method given only ``N`` revealed rows per draw, which must never be more than 0.5
point below its label-free score.
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
from crowd.em import DEFAULT_METHOD, LABEL_FREE, METHODS, encode

CROWDKIT_METHODS = ("MV", "Wawa", "DS", "OneCoinDS", "GLAD", "MACE")
SLOW_CROWDKIT = ("GLAD", "MACE")
MEAN_GOAL = 0.005  # label-free: the default's mean >= Crowd-Kit DS's + half a point
FLOOR = -0.01  # and no dataset more than a point below Crowd-Kit DS
GOLD_GAIN = 0.01  # with gold: the mean >= the same method's label-free mean + 1 point
ORACLE_GAP = -0.005  # and within half a point of the per-dataset oracle
LITTLE_FLOOR = -0.005  # with little gold: never more than half a point below label-free


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


def hits(data: Dataset, predicted: dict[str, str]) -> np.ndarray:
    """Whether each gold row's task was predicted as its gold label, shape (n_gold,)."""
    return np.array(
        [predicted.get(t) == g for t, g in zip(data.gold_tasks, data.gold_labels, strict=True)]
    )


@dataclass(frozen=True)
class Fit:
    right: np.ndarray  # (n_gold,) bool: each gold row labelled right
    seconds: float
    chosen: str | None  # the method `auto` chose


def run_ours(data: Dataset, method: str, revealed: np.ndarray | None = None) -> Fit:
    """Fit ``METHODS[method]`` with its defaults, the gold rows ``revealed`` (indices) clamped."""
    enc = encode(data.tasks, data.workers, data.labels)
    gold = None
    if revealed is not None:
        known = np.isin(data.gold_labels[revealed], enc.classes)  # a label no worker gave
        rows = revealed[known]
        gold = (enc.encode_tasks(data.gold_tasks[rows]), enc.encode_labels(data.gold_labels[rows]))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning still yields labels to score
        model = METHODS[method]()
        labels = model.fit_predict(
            enc.tasks,
            enc.workers,
            enc.labels,
            n_tasks=enc.n_tasks,
            n_workers=enc.n_workers,
            n_classes=enc.n_classes,
            gold=gold,
        )
    seconds = time.perf_counter() - start
    predicted = dict(zip(enc.task_index.tolist(), enc.decode_labels(labels).tolist(), strict=True))
    return Fit(hits(data, predicted), seconds, getattr(model, "method_", None))


def crowdkit_runner() -> Callable[[Dataset, str], Fit]:
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

    def run(data: Dataset, method: str) -> Fit:
        frame = pd.DataFrame({"task": data.tasks, "worker": data.workers, "label": data.labels})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = factories[method]().fit_predict(frame)
        seconds = time.perf_counter() - start
        predicted = {str(t): str(label) for t, label in result.items()}
        return Fit(hits(data, predicted), seconds, None)

    return run


def reveal(n_gold: int, share: float, seed: int) -> np.ndarray:
    """Gold rows revealed for ``seed``: a share of them, at least one, in a seeded order."""
    order = np.random.default_rng(seed).permutation(n_gold)
    return order[: max(1, round(share * n_gold))]


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def mean_of(values: Sequence[float | None]) -> tuple[float | None, int]:
    present = [v for v in values if v is not None]
    return (float(np.mean(present)) if present else None), len(present)


Scores = dict[tuple[str, str], float | None]


def table(
    names: list[str], keys: list[str], scores: Scores
) -> tuple[list[str], dict[str, float | None]]:
    """Markdown rows of ``scores[name, key]`` and the mean row; returns (lines, full means)."""
    lines = ["| dataset | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(fmt(scores.get((name, k))) for k in keys) + " |")
    means: dict[str, float | None] = {}
    cells = []
    for key in keys:
        value, count = mean_of([scores.get((name, key)) for name in names])
        means[key] = value if count == len(names) else None
        cells.append(fmt(value) + ("" if count == len(names) else f" ({count} sets)"))
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    return lines, means


def verdict(ok: bool, short: float) -> str:
    return "met" if ok else f"NOT met (short by {short:.4f})"


def label_free_goal(names: list[str], goal_method: str, scores: Scores) -> list[str]:
    """Issue 15's label-free goal for ``goal_method`` against Crowd-Kit DS."""
    pairs = [(n, scores.get((n, goal_method)), scores.get((n, "CK DS"))) for n in names]
    pairs_ok = [(n, a, b) for n, a, b in pairs if a is not None and b is not None]
    if len(pairs_ok) != len(names):
        return []
    ours = float(np.mean([a for _n, a, _b in pairs_ok]))
    theirs = float(np.mean([b for _n, _a, b in pairs_ok]))
    diff = ours - theirs
    lines = [
        "",
        f"Label-free: `{goal_method}` mean {ours:.4f} vs CK DS {theirs:.4f}: {diff:+.4f}; "
        f"goal {MEAN_GOAL:+.3f}: {verdict(diff >= MEAN_GOAL - 1e-12, MEAN_GOAL - diff)}.",
        "",
        f"| dataset | `{goal_method}` - CK DS | ≥ {FLOOR:+.3f} |",
        "|---|---:|:---:|",
    ]
    failures = 0
    for name, a, b in pairs_ok:
        assert a is not None and b is not None
        ok = a - b >= FLOOR - 1e-12
        failures += not ok
        lines.append(f"| {name} | {a - b:+.4f} | {'yes' if ok else 'NO'} |")
    lines += [
        "",
        f"Per-dataset floor (`{goal_method}` ≥ CK DS {FLOOR:+.3f}): "
        + ("met on every dataset." if failures == 0 else f"NOT met on {failures} dataset(s)."),
    ]
    return lines


def report(
    names: list[str],
    ours: list[str],
    theirs: list[str],
    scores: Scores,
    goal_method: str = DEFAULT_METHOD,
) -> str:
    """Label-free accuracy of every method, and the label-free goal."""
    lines, _means = table(names, [*ours, *(f"CK {m}" for m in theirs)], scores)
    if goal_method in ours:
        lines += label_free_goal(names, goal_method, scores)
    return "\n".join(lines)


def report_gold(
    names: list[str],
    ours: list[str],
    free: Scores,
    gold: Scores,
    chosen: dict[str, list[str | None]],
    little: dict[str, list[float]],
    goal_method: str,
    share: float,
    seeds: Sequence[int],
) -> str:
    """With-gold accuracy of our methods, the oracle, and the with-gold goal."""
    oracle_keys = [m for m in ours if m in LABEL_FREE]
    for name in names:
        values = [gold.get((name, m)) for m in oracle_keys]
        present = [v for v in values if v is not None]
        gold[name, "oracle"] = max(present) if present else None
    lines = [
        f"With {share:.0%} of each dataset's gold revealed and clamped (seeds "
        f"{', '.join(map(str, seeds))}); oracle = the best of {', '.join(oracle_keys)} per dataset:",
        "",
    ]
    rows, means = table(names, [*ours, "oracle"], gold)
    if goal_method in ours:
        rows[0] = rows[0][:-2] + f" | `{goal_method}` chose |"
        rows[1] += ":---|"
        for i, name in enumerate(names, start=2):
            rows[i] += " " + ", ".join(str(c) for c in chosen.get(name, [])) + " |"
        rows[-1] += " |"
    lines += rows
    with_gold, without = (
        means.get(goal_method),
        mean_of([free.get((n, goal_method)) for n in names])[0],
    )
    oracle = means.get("oracle")
    if with_gold is None or without is None or oracle is None:
        return "\n".join(lines)
    gain, gap = with_gold - without, with_gold - oracle
    lines += [
        "",
        f"With gold: `{goal_method}` mean {with_gold:.4f} vs its label-free {without:.4f}: "
        f"{gain:+.4f}; goal {GOLD_GAIN:+.3f}: {verdict(gain >= GOLD_GAIN - 1e-12, GOLD_GAIN - gain)}.",
        f"Against the oracle {oracle:.4f}: {gap:+.4f}; goal ≥ {ORACLE_GAP:+.3f}: "
        f"{verdict(gap >= ORACLE_GAP - 1e-12, ORACLE_GAP - gap)}.",
    ]
    if little:
        worst = min((d, n) for n, ds in little.items() for d in ds)
        lines += [
            f"Little gold (worst draw of `{goal_method}` with few revealed rows minus its "
            f"label-free score, every dataset and seed): {worst[0]:+.4f} ({worst[1]}); goal ≥ "
            f"{LITTLE_FLOOR:+.3f}: {verdict(worst[0] >= LITTLE_FLOOR - 1e-12, LITTLE_FLOOR - worst[0])}."
        ]
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
        help=f"our method checked against the issue-15 goals (default: {DEFAULT_METHOD})",
    )
    parser.add_argument(
        "--reveal-gold",
        type=float,
        default=None,
        metavar="SHARE",
        help="reveal this share of each dataset's gold to our fits and score the rest",
    )
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0, 1, 2], help="seeds of the revealed gold"
    )
    parser.add_argument(
        "--little-gold",
        type=int,
        default=None,
        metavar="N",
        help="with --reveal-gold: also fit --goal-method with only N revealed rows",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: not a folder; point it at shared/datasets")
    if args.reveal_gold is not None and not 0 < args.reveal_gold < 1:
        raise SystemExit(f"--reveal-gold {args.reveal_gold}: give a share between 0 and 1")
    folders = sorted(p for p in args.data.iterdir() if (p / "answers.csv").is_file())
    if args.datasets:
        folders = [p for p in folders if p.name in set(args.datasets)]
    if not folders:
        raise SystemExit(f"--data {args.data}: no dataset folder with answers.csv found")
    ours = list(args.methods) if args.methods else list(METHODS)
    theirs = list(args.crowdkit)
    run_ck = crowdkit_runner() if theirs else None
    seeds = args.seed if args.reveal_gold is not None else []

    free: Scores = {}
    gold: Scores = {}
    chosen: dict[str, list[str | None]] = {}
    little: dict[str, list[float]] = {}
    for folder in folders:
        data = load(folder)
        n_gold = len(data.gold_tasks)
        revealed = {s: reveal(n_gold, args.reveal_gold, s) for s in seeds}
        scored = [np.ones(n_gold, dtype=bool)] if not seeds else []
        for s in seeds:
            rest = np.ones(n_gold, dtype=bool)
            rest[revealed[s]] = False
            scored.append(rest)

        def score(right: np.ndarray, masks: list[np.ndarray] = scored) -> float:
            return float(np.mean([right[m].mean() for m in masks]))

        timing = []
        label_free: dict[str, np.ndarray] = {}
        for method in ours:
            fit = run_ours(data, method)
            label_free[method] = fit.right
            free[data.name, method] = score(fit.right)
            timing.append(f"{method} {fit.seconds:.2f}s")
        for method in theirs:
            assert run_ck is not None
            if method in SLOW_CROWDKIT and len(data.tasks) > args.slow_limit:
                free[data.name, f"CK {method}"] = None
                continue
            fit = run_ck(data, method)
            free[data.name, f"CK {method}"] = score(fit.right)
            timing.append(f"CK {method} {fit.seconds:.2f}s")
        for method in ours if seeds else []:
            fits = [run_ours(data, method, revealed[s]) for s in seeds]
            gold[data.name, method] = float(
                np.mean([f.right[m].mean() for f, m in zip(fits, scored, strict=True)])
            )
            if method == args.goal_method:
                chosen[data.name] = [f.chosen for f in fits]
            timing.append(f"{method}+gold {np.mean([f.seconds for f in fits]):.2f}s")
        if seeds and args.little_gold and args.goal_method in label_free:
            base = label_free[args.goal_method]
            for s, rest in zip(seeds, scored, strict=True):
                few = run_ours(data, args.goal_method, revealed[s][: args.little_gold])
                little.setdefault(data.name, []).append(few.right[rest].mean() - base[rest].mean())
        print(f"{data.name}: {len(data.tasks)} answers; " + ", ".join(timing), file=sys.stderr)

    names = [p.name for p in folders]
    text = report(names, ours, theirs, free, args.goal_method)
    if seeds:
        text = (
            f"Label-free, scored on the gold rows not revealed (mean over seeds "
            f"{', '.join(map(str, seeds))}):\n\n"
            + text
            + "\n\n"
            + report_gold(
                names, ours, free, gold, chosen, little, args.goal_method, args.reveal_gold, seeds
            )
        )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
