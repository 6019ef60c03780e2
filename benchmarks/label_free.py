"""Label-free rules for the default method, on real and synthetic crowds, against Crowd-Kit DS.

    python benchmarks/label_free.py --data ../shared/datasets [--synthetic-seeds 0 1 2]
                                    [--folds 5] [--out benchmarks/out/label_free.md]

Issue 15's first goal asks for a default that needs no gold and whose mean accuracy is at least
half a point above Crowd-Kit's DawidSkene (run in the same process, defaults), never more than a
point below it on any crowd, on the twelve shared datasets *and* on crowds the team keeps
unseen. Choices fitted to the twelve did not carry over, so every rule here decides per crowd
from the workers' answers alone, with no constant chosen on the twelve:

* ``hds``, ``ds``, ``onecoin``, ``mv``: one method (``hds`` is the current default).
* ``cv-strength``: ``hds`` with its row strength (pseudo-answers per confusion row toward the
  worker's one-coin matrix) picked from a fixed wide grid, 0.3-100, by held-out predictive
  likelihood of answers: ``--folds``-fold cross-validation over answers, each held-out answer
  scored ``log sum_k q_j(k) pi_w[k, l]`` with ``q`` and ``pi`` fitted on the other folds.
* ``stack``: posteriors of ``ds``, ``hds`` and ``onecoin`` averaged with the weights (on the
  simplex) that maximise the same held-out likelihood of the mixture (stacking).
* ``kappa``: of ``mv``, ``onecoin``, ``ds`` and ``hds``, the one whose labels fitted on the
  other folds agree best with the held-out answers, by Cohen's kappa (raw agreement rewards a
  method that predicts the classes workers over-use; kappa corrects for both marginals).
  Under conditionally independent workers, agreement with a held-out answer rises with the
  accuracy of the label it is compared to.
* ``vb-hds``: ``hds`` with a variational-Bayes E-step: ``exp E[log pi]`` under each row's
  Dirichlet posterior instead of its mean, so workers with few answers count for less.

Issue 15's third pass (no held-out folds, each one or two fits):

* ``hds-guess``: ``hds`` shrunk toward MACE's know-or-guess worker instead of the one-coin one
  (``HierarchicalDawidSkene(target="guess")``).
* ``usage-guess``: a cruder version: the guess distribution is the worker's share of each
  label (smoothed toward the crowd's) and the chance of knowing is solved from its expected
  accuracy.
* ``eb-strength``: ``hds`` whose row strength is re-chosen in every M-step by empirical Bayes:
  the value on a log grid (0.1-1000, 41 points) that maximises the Dirichlet-multinomial
  marginal likelihood of the expected counts around the one-coin targets.
* ``best-init``: ``hds`` from majority vote and ``hds`` warm-started from a one-coin fit; the
  one with the higher final log-likelihood (a guard against EM's local optima).
* ``tol-1e-3``: ``hds`` stopped when the log-likelihood per answer changes by less than 1e-3
  (its default is 1e-5): a looser convergence test, i.e. fewer iterations.

``--thin N`` also scores every real crowd thinned to at most ``N`` answers per task (each task
keeps a seeded random ``N`` of its answers), averaged over ``--thin-seeds``: the same crowds in
the sparser regime of a live project.

Synthetic crowds (``--synthetic-seeds``; accuracy against the generating truth on every task):
``ds`` (Dawid-Skene workers, ``benchmarks/_synthetic.py``: 2,000 tasks x 5, 100 workers, 4
classes, 15% spammers), ``sparse`` (3,000 x 3 from 600 workers, 2 classes: most workers answer
a handful of tasks), ``onecoin`` (symmetric errors, 3 classes), ``imbalanced`` (2 classes,
prior 0.85 / 0.15) and ``copier`` (every task has two fixed workers of accuracy ~0.7, the second
copying the first 70% of the time, plus 3 independent ones: the dependence that sinks full
confusions on zencrowd_us). Crowd-Kit 1.4.2 is the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import _distinct_workers, generate, worker_confusions
from accuracy import load

from crowd.em import (
    DawidSkene,
    HierarchicalDawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    encode,
)
from crowd.em._base import Aggregator, FloatArray
from crowd.em._em import EPS
from crowd.em._incidence import AnswerMatrix
from crowd.em.hierarchical_ds import one_coin_target

MEAN_GOAL = 0.005  # the default's mean >= Crowd-Kit DS's + half a point
FLOOR = -0.01  # and never more than a point below it
MOVE = 0.005  # a crowd "moves" against hds when it gains or loses more than half a point
STRENGTHS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # cv-strength's grid: 1/10 to 30x hds's 3
EB_GRID = np.exp(np.linspace(np.log(0.1), np.log(1000.0), 41))  # eb-strength's grid
RULES = (
    "mv",
    "onecoin",
    "ds",
    "hds",
    "cv-strength",
    "stack",
    "kappa",
    "vb-hds",
    "hds-guess",
    "usage-guess",
    "eb-strength",
    "best-init",
    "tol-1e-3",
)


@dataclass(frozen=True)
class Crowd:
    name: str
    tasks: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    n_tasks: int
    n_workers: int
    n_classes: int
    truth_tasks: np.ndarray  # tasks with a known true class (gold, or all for synthetic)
    truth: np.ndarray


class VariationalHDS(HierarchicalDawidSkene):
    """``hds`` whose E-step uses ``exp E[log pi]`` under each row's Dirichlet posterior."""

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        k = counts.shape[1]
        correct = np.einsum("wkk->w", counts)
        answers = counts.sum(axis=(1, 2))
        crowd = float(correct.sum() / max(answers.sum(), EPS))
        accuracy = (correct + self.accuracy_strength * crowd) / (answers + self.accuracy_strength)
        eye = np.eye(k)
        target = accuracy[:, None, None] * eye + ((1 - accuracy) / (k - 1))[:, None, None] * (
            1 - eye
        )
        alpha = np.maximum(counts + self.row_strength * target, EPS)
        return np.asarray(np.exp(digamma(alpha) - digamma(alpha.sum(axis=2, keepdims=True))))


class EmpiricalBayesHDS(HierarchicalDawidSkene):
    """``hds`` whose row strength maximises the marginal likelihood of the expected counts."""

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        target = np.maximum(one_coin_target(counts, self.accuracy_strength), 1e-6)
        rows = counts.sum(axis=2)

        def evidence(s: float) -> float:
            alpha = s * target
            total = alpha.sum(axis=2)
            return float(
                (gammaln(total) - gammaln(total + rows)).sum()
                + (gammaln(counts + alpha) - gammaln(alpha)).sum()
            )

        strength = max(EB_GRID, key=evidence)
        alpha = np.maximum(counts + strength * target, EPS)
        return np.asarray(alpha / alpha.sum(axis=2, keepdims=True))


class UsageGuessHDS(HierarchicalDawidSkene):
    """``hds`` shrunk toward ``b_w e_k + (1 - b_w) u_w``: ``u_w`` the worker's label shares."""

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        s0 = self.accuracy_strength
        k = counts.shape[1]
        correct = np.einsum("wkk->w", counts)
        answers = counts.sum(axis=(1, 2))
        used = counts.sum(axis=1)
        crowd = float(correct.sum() / max(answers.sum(), EPS))
        usage = (used + s0 * used.sum(axis=0) / max(used.sum(), EPS)) / np.maximum(
            answers + s0, EPS
        )[:, None]
        accuracy = (correct + s0 * crowd) / np.maximum(answers + s0, EPS)
        share = counts.sum(axis=2) / np.maximum(answers, EPS)[:, None]  # classes it saw
        chance = (share * usage).sum(axis=1)  # accuracy of pure guessing
        knows = np.clip((accuracy - chance) / np.maximum(1 - chance, EPS), 0.0, 1.0)
        target = knows[:, None, None] * np.eye(k) + (1 - knows)[:, None, None] * usage[:, None, :]
        alpha = np.maximum(counts + self.row_strength * target, EPS)
        return np.asarray(alpha / alpha.sum(axis=2, keepdims=True))


def fitted(
    crowd: Crowd,
    make: Callable[[], Aggregator],
    keep: np.ndarray | None = None,
    **fit_kwargs: Any,
) -> Any:
    """``make()`` fitted on the crowd's answers (those where ``keep`` is true), no gold;
    ``fit_kwargs`` (e.g. ``init``) go to ``fit``."""
    sl = slice(None) if keep is None else keep
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning still yields labels
        model.fit(
            crowd.tasks[sl],
            crowd.workers[sl],
            crowd.labels[sl],
            n_tasks=crowd.n_tasks,
            n_workers=crowd.n_workers,
            n_classes=crowd.n_classes,
            **fit_kwargs,
        )
    return model


MODELS: dict[str, Callable[[], Aggregator]] = {
    "mv": MajorityVote,
    "onecoin": OneCoinDawidSkene,
    "ds": DawidSkene,
    "hds": HierarchicalDawidSkene,
    "vb-hds": VariationalHDS,
    "hds-guess": lambda: HierarchicalDawidSkene(target="guess"),
    "usage-guess": UsageGuessHDS,
    "eb-strength": EmpiricalBayesHDS,
    "tol-1e-3": lambda: HierarchicalDawidSkene(tol=1e-3),
    **{
        f"hds@{s:g}": (lambda s=s: HierarchicalDawidSkene(row_strength=s))  # type: ignore[misc]
        for s in STRENGTHS
    },
}


class HeldOut:
    """Cross-validation over answers: for each model, every answer's held-out prediction."""

    def __init__(self, crowd: Crowd, folds: int, seed: int) -> None:
        self.crowd = crowd
        self.fold = np.random.default_rng(seed).integers(0, folds, crowd.tasks.size)
        self.folds = folds
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _run(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._cache:
            c = self.crowd
            prob = np.zeros(c.tasks.size)
            label = np.zeros(c.tasks.size, dtype=np.intp)
            for f in range(self.folds):
                test = self.fold == f
                model = fitted(c, MODELS[name], ~test)
                t, w, y = c.tasks[test], c.workers[test], c.labels[test]
                label[test] = model.labels_[t]
                if hasattr(model, "confusion_"):
                    prob[test] = np.einsum(
                        "ik,ik->i", model.posteriors_[t], model.confusion_[w, :, y]
                    )
            self._cache[name] = (np.maximum(prob, 1e-300), label)
        return self._cache[name]

    def log_likelihood(self, name: str) -> float:
        """Mean held-out log-likelihood per answer."""
        return float(np.log(self._run(name)[0]).mean())

    def probabilities(self, name: str) -> np.ndarray:
        return self._run(name)[0]

    def kappa(self, name: str) -> float:
        """Cohen's kappa between held-out labels and the held-out answers."""
        label, answer, k = self._run(name)[1], self.crowd.labels, self.crowd.n_classes
        observed = float(np.mean(label == answer))
        chance = float(
            np.sum(np.bincount(label, minlength=k) * np.bincount(answer, minlength=k))
        ) / (label.size**2)
        return (observed - chance) / (1 - chance) if chance < 1 else 0.0


def apply_rule(rule: str, crowd: Crowd, held: HeldOut) -> tuple[np.ndarray, str]:
    """Labels of every task under ``rule``, and what it chose."""
    if rule in MODELS:
        return fitted(crowd, MODELS[rule]).labels_, rule
    if rule == "best-init":
        cold = fitted(crowd, MODELS["hds"])
        start = fitted(crowd, MODELS["onecoin"])
        warm = fitted(crowd, MODELS["hds"], init=start)
        best = max((cold, warm), key=lambda m: m.objective_history_[-1])
        return best.labels_, "one-coin start" if best is warm else "majority-vote start"
    if rule == "cv-strength":
        best = max((f"hds@{s:g}" for s in STRENGTHS), key=held.log_likelihood)
        return fitted(crowd, MODELS[best]).labels_, best
    if rule == "kappa":
        best = max(("mv", "onecoin", "ds", "hds"), key=held.kappa)
        return fitted(crowd, MODELS[best]).labels_, best
    if rule == "stack":
        names = ("ds", "hds", "onecoin")
        probs = np.stack([held.probabilities(n) for n in names], axis=1)

        def loss(z: np.ndarray) -> float:
            w = np.exp(z - z.max())
            return float(-np.log(probs @ (w / w.sum())).mean())

        z = minimize(loss, np.zeros(len(names)), method="Nelder-Mead").x
        weights = np.exp(z - z.max())
        weights /= weights.sum()
        mixed = sum(
            w * fitted(crowd, MODELS[n]).posteriors_ for w, n in zip(weights, names, strict=True)
        )
        chose = " ".join(f"{n} {w:.2f}" for n, w in zip(names, weights, strict=True))
        return np.argmax(np.asarray(mixed), axis=1), chose
    raise ValueError(rule)


def crowdkit_ds(crowd: Crowd) -> np.ndarray:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene as CKDawidSkene

    frame = pd.DataFrame({"task": crowd.tasks, "worker": crowd.workers, "label": crowd.labels})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CKDawidSkene().fit_predict(frame)
    labels = np.full(crowd.n_tasks, -1)
    labels[result.index.to_numpy(dtype=np.intp)] = result.to_numpy(dtype=np.intp)
    return labels


def real(folder: Path) -> Crowd:
    data = load(folder)
    enc = encode(data.tasks, data.workers, data.labels)
    position = {t: i for i, t in enumerate(enc.task_index.tolist())}
    truth = np.full(data.gold_tasks.size, -1)  # a gold label no worker gave is never matched
    known = np.isin(data.gold_labels, enc.classes)
    truth[known] = enc.encode_labels(data.gold_labels[known])
    return Crowd(
        data.name,
        enc.tasks,
        enc.workers,
        enc.labels,
        enc.n_tasks,
        enc.n_workers,
        enc.n_classes,
        np.array([position[t] for t in data.gold_tasks]),
        truth,
    )


def thin(crowd: Crowd, per_task: int, seed: int) -> Crowd:
    """The crowd with at most ``per_task`` answers per task, drawn with ``seed``, renamed."""
    order = np.random.default_rng(seed).permutation(crowd.tasks.size)
    by_task = order[np.argsort(crowd.tasks[order], kind="stable")]
    tasks = crowd.tasks[by_task]
    first = np.r_[0, np.flatnonzero(np.diff(tasks)) + 1]
    rank = np.arange(tasks.size) - np.repeat(first, np.diff(np.r_[first, tasks.size]))
    keep = by_task[rank < per_task]
    return dataclasses.replace(
        crowd,
        name=f"{crowd.name} (thin {per_task})",
        tasks=crowd.tasks[keep],
        workers=crowd.workers[keep],
        labels=crowd.labels[keep],
    )


def simulate(
    rng: np.random.Generator,
    confusion: np.ndarray,
    priors: np.ndarray,
    n_tasks: int,
    per_task: int,
    fixed: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Answers from ``confusion`` (n_workers, K, K): the ``fixed`` workers answer every task,
    ``per_task`` others are drawn with log-normal activity. Returns tasks, workers, labels, truth."""
    n_workers, k, _ = confusion.shape
    pool = np.setdiff1d(np.arange(n_workers), fixed)
    activity = rng.lognormal(0.0, 0.75, size=pool.size)
    cdf = np.cumsum(activity / activity.sum())
    truth = rng.choice(k, size=n_tasks, p=priors)
    drawn = pool[_distinct_workers(rng, n_tasks, per_task, cdf)]
    workers = np.concatenate([np.tile(np.asarray(fixed, dtype=np.intp), (n_tasks, 1)), drawn], 1)
    rows = confusion[workers, truth[:, None]]  # (n_tasks, answers, K)
    labels = (rng.random(workers.shape)[..., None] > np.cumsum(rows, axis=2)).sum(axis=2)
    labels = np.minimum(labels, k - 1)
    tasks = np.repeat(np.arange(n_tasks), workers.shape[1])
    return tasks, workers.ravel(), labels.ravel(), truth


def synthetic(kind: str, seed: int) -> Crowd:
    rng = np.random.default_rng([seed, SYNTHETIC.index(kind)])
    if kind == "ds":
        s = generate(
            n_tasks=2000, answers_per_task=3, n_workers=100, n_classes=4, spammers=0.3, seed=seed
        )
        tasks, workers, labels, truth = s.tasks, s.workers, s.labels, s.true_labels
        k, n_workers = 4, 100
    elif kind == "sparse":
        s = generate(n_tasks=3000, answers_per_task=3, n_workers=600, n_classes=2, seed=seed)
        tasks, workers, labels, truth = s.tasks, s.workers, s.labels, s.true_labels
        k, n_workers = 2, 600
    elif kind == "onecoin":
        k, n_workers = 3, 80
        accuracy = 0.35 + 0.55 * rng.beta(2.0, 2.0, size=n_workers)
        eye = np.eye(k)
        confusion = accuracy[:, None, None] * eye + ((1 - accuracy) / (k - 1))[:, None, None] * (
            1 - eye
        )
        tasks, workers, labels, truth = simulate(rng, confusion, np.full(k, 1 / k), 2000, 3)
    elif kind == "imbalanced":
        k, n_workers = 2, 100
        confusion, _spam = worker_confusions(rng, n_workers, k, 0.15)
        tasks, workers, labels, truth = simulate(rng, confusion, np.array([0.85, 0.15]), 2000, 3)
    elif kind == "copier":
        k, n_workers = 2, 60
        confusion, _spam = worker_confusions(rng, n_workers, k, 0.1)
        confusion[:2] = [[0.68, 0.32], [0.36, 0.64]]  # the leader and the copier, ~0.66 accurate
        tasks, workers, labels, truth = simulate(
            rng, confusion, np.array([0.6, 0.4]), 2000, 3, (0, 1)
        )
        leader, copier = labels[workers == 0], labels[workers == 1]  # same task order
        copies = rng.random(copier.size) < 0.8
        labels = labels.copy()
        labels[np.flatnonzero(workers == 1)[copies]] = leader[copies]
    else:
        raise ValueError(kind)
    n_tasks = truth.size
    return Crowd(
        f"syn-{kind}-{seed}",
        np.asarray(tasks, dtype=np.intp),
        np.asarray(workers, dtype=np.intp),
        np.asarray(labels, dtype=np.intp),
        n_tasks,
        n_workers,
        k,
        np.arange(n_tasks),
        np.asarray(truth, dtype=np.intp),
    )


SYNTHETIC = ("ds", "sparse", "onecoin", "imbalanced", "copier")


def summary(
    group: str, names: list[str], rules: list[str], scores: dict[tuple[str, str], float]
) -> list[str]:
    ck = np.mean([scores[n, "CK DS"] for n in names])
    lines = [
        "",
        f"{group} ({len(names)} crowds): mean minus Crowd-Kit DS's mean ({ck:.4f}), goal "
        f"{MEAN_GOAL * 100:+.1f} point; crowds more than {-FLOOR * 100:.0f} point below CK DS:",
        "",
        "| rule | mean | vs CK DS | below the floor | vs `hds`: up > 0.5 point | down > 0.5 point |",
        "|---|---:|---:|---|---|---|",
    ]
    for rule in rules:
        mean = float(np.mean([scores[n, rule] for n in names]))
        below = [
            f"{n} {100 * (scores[n, rule] - scores[n, 'CK DS']):+.1f}"
            for n in names
            if scores[n, rule] - scores[n, "CK DS"] < FLOOR - 1e-12
        ]
        moved = {n: scores[n, rule] - scores[n, "hds"] for n in names if (n, "hds") in scores}
        up = [f"{n} {100 * d:+.1f}" for n, d in moved.items() if d > MOVE]
        down = [f"{n} {100 * d:+.1f}" for n, d in moved.items() if d < -MOVE]
        lines.append(
            f"| {rule} | {mean:.4f} | {100 * (mean - ck):+.2f} | {', '.join(below) or 'none'} "
            f"| {len(up)}: {', '.join(up) or '-'} | {len(down)}: {', '.join(down) or '-'} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--datasets", nargs="*", default=None, help="names (default: all)")
    parser.add_argument("--synthetic-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--rules", nargs="*", default=list(RULES), choices=RULES)
    parser.add_argument("--folds", type=int, default=5, help="folds over answers (held-out rules)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument(
        "--thin",
        type=int,
        default=None,
        metavar="N",
        help="also score the real crowds thinned to N answers per task (mean over --thin-seeds)",
    )
    parser.add_argument("--thin-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)

    folders = sorted(p for p in args.data.iterdir() if (p / "answers.csv").is_file())
    if args.datasets is not None:
        folders = [p for p in folders if p.name in set(args.datasets)]
    groups: dict[str, list[Callable[[], list[Crowd]]]] = {
        "real": [lambda p=p: [real(p)] for p in folders],  # type: ignore[misc]
        "synthetic": [
            lambda k=k, s=s: [synthetic(k, s)]  # type: ignore[misc]
            for s in args.synthetic_seeds
            for k in SYNTHETIC
        ],
    }
    if args.thin:
        groups[
            f"real, thinned to {args.thin} answers per task (mean of seeds "
            f"{', '.join(map(str, args.thin_seeds))})"
        ] = [
            lambda p=p: [thin(real(p), args.thin, s) for s in args.thin_seeds]  # type: ignore[misc]
            for p in folders
        ]
    rules = list(args.rules)
    scores: dict[tuple[str, str], float] = {}
    chosen: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for group, makers in groups.items():
        for make in makers:
            draws = make()  # one crowd, or the thinned draws of one (scores are their mean)
            start = time.perf_counter()
            name = draws[0].name
            for crowd in draws:
                held = HeldOut(crowd, args.folds, args.seed)
                for rule in rules:
                    labels, choice = apply_rule(rule, crowd, held)
                    right = float(np.mean(labels[crowd.truth_tasks] == crowd.truth))
                    scores[name, rule] = scores.get((name, rule), 0.0) + right / len(draws)
                    if choice != rule:
                        chosen.setdefault(name, []).append(f"{rule}: {choice}")
                right = float(np.mean(crowdkit_ds(crowd)[crowd.truth_tasks] == crowd.truth))
                scores[name, "CK DS"] = scores.get((name, "CK DS"), 0.0) + right / len(draws)
            names.setdefault(group, []).append(name)
            print(
                f"{name}: {draws[0].tasks.size} answers, {time.perf_counter() - start:.1f}s",
                file=sys.stderr,
            )

    keys = [*rules, "CK DS"]
    lines = [
        "| crowd | " + " | ".join(keys) + " | chosen |",
        "|---|" + "---:|" * len(keys) + ":---|",
    ]
    for group in groups:
        for name in names.get(group, []):
            cells = " | ".join(f"{scores[name, k]:.4f}" for k in keys)
            lines.append(f"| {name} | {cells} | {'; '.join(chosen.get(name, []))} |")
    for group in groups:
        if names.get(group):
            lines += summary(group, names[group], rules, scores)
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
