"""The default method: hierarchical Dawid-Skene, or another method where the gold proves it better."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import bdtrc

from crowd.em._base import (
    Aggregator,
    ConvergenceWarning,
    FloatArray,
    Gold,
    as_index_array,
    check_answers,
    check_iterations,
    parse_gold,
)
from crowd.em._em import DSParams
from crowd.em.dawid_skene import DawidSkene
from crowd.em.hierarchical_ds import HierarchicalDawidSkene
from crowd.em.majority_vote import MajorityVote
from crowd.em.one_coin import OneCoinDawidSkene

#: The label-free methods, by the names the CLI and the API use.
LABEL_FREE: dict[str, type[Aggregator]] = {
    "mv": MajorityVote,
    "ds": DawidSkene,
    "onecoin": OneCoinDawidSkene,
    "hds": HierarchicalDawidSkene,
}

#: What :class:`AutoAggregator` uses without gold, or when the gold cannot tell it from the
#: others. On the 16 unseen real crowds of issue 15 it had the best mean of our methods
#: (0.8229, +0.40 point over Crowd-Kit's DS, against 0.8153 for ``ds``), and on the twelve
#: shared ones it is within 0.2 point of Crowd-Kit's DS (benchmarks/RESULTS.md). No rule that
#: chooses per crowd without gold did better on both the shared and seeded synthetic crowds:
#: held-out likelihood of answers, stacking, held-out agreement (benchmarks/label_free.py).
LABEL_FREE_DEFAULT = "hds"

#: One-sided significance level of the paired test that lets gold overrule the default.
#: With 3 alternatives the chance that noise alone switches the method is at most 3 x 0.05.
DEFAULT_ALPHA = 0.05


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact p-value that a method is right more often than another on paired tasks.

    ``wins``: tasks the challenger got right and the other wrong; ``losses``: the reverse
    (McNemar's exact test, i.e. a sign test on the discordant tasks:
    ``P(Binomial(wins + losses, 1/2) >= wins)``). 1.0 when they never disagree.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    return float(bdtrc(wins - 1, n, 0.5))  # the binomial's survival function, P(X > wins - 1)


@dataclass(frozen=True)
class Choice:
    """Which method :func:`choose_method` picked, and why.

    Attributes:
        method: a key of ``LABEL_FREE``.
        reason: why, in words, without the method's name (the run record's
            ``choice_reason``, ``crowd aggregate``'s stderr).
        n_gold: gold tasks with answers that the methods were compared on.
        gold_correct: ``{method: gold tasks its label-free fit labelled right}`` (empty
            without gold).
    """

    method: str
    reason: str
    n_gold: int
    gold_correct: dict[str, int]


def label_free_estimator(
    name: str,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    callback: Callable[[int, float], None] | None = None,
) -> Aggregator:
    """``LABEL_FREE[name]`` with the EM settings given (majority vote has none)."""
    if name == "mv":
        return MajorityVote()
    cls: Any = LABEL_FREE[name]
    estimator: Aggregator = cls(max_iter=max_iter, tol=tol, callback=callback)
    return estimator


def without_gold() -> Choice:
    """:func:`choose_method`'s choice when no gold task has answers: the label-free default
    (a caller that knows there is no such gold task can take it without passing the answers)."""
    reason = (
        "no gold task has answers, so none can show another method better: the label-free default"
    )
    return Choice(LABEL_FREE_DEFAULT, reason, 0, {})


def choose_method(
    tasks: ArrayLike,
    workers: ArrayLike,
    labels: ArrayLike,
    *,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
    gold: Gold | None = None,
    alpha: float = DEFAULT_ALPHA,
    max_iter: int = 100,
    tol: float = 1e-5,
    proposals: ArrayLike | None = None,
) -> Choice:
    """The method :class:`AutoAggregator` fits on these answers (see its docstring for the
    rule); arguments as :meth:`DawidSkene.fit`. Deterministic: it never depends on a warm
    start, so the service and ``crowd aggregate`` choose alike on the same answers and gold."""
    gold_tasks, gold_labels = parse_gold(gold)
    answers = check_answers(
        tasks,
        workers,
        labels,
        n_tasks=n_tasks,
        n_workers=n_workers,
        n_classes=n_classes,
        gold_tasks=gold_tasks,
        gold_labels=gold_labels,
    )
    answered = np.zeros(answers.n_tasks, dtype=bool)
    answered[answers.tasks] = True
    scored = answered[gold_tasks]
    n_gold = int(scored.sum())
    if n_gold == 0:
        return without_gold()
    right = {}
    for name in LABEL_FREE:
        model = label_free_estimator(name, max_iter=max_iter, tol=tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # still a fair candidate
            model.fit(
                answers.tasks,
                answers.workers,
                answers.labels,
                n_tasks=answers.n_tasks,
                n_workers=answers.n_workers,
                n_classes=answers.n_classes,
                proposals=proposals,
            )
        right[name] = model.labels_[gold_tasks[scored]] == gold_labels[scored]
    method, reason = compare(right, alpha)
    return Choice(method, reason, n_gold, {name: int(hit.sum()) for name, hit in right.items()})


def compare(right: dict[str, NDArray[np.bool_]], alpha: float) -> tuple[str, str]:
    """The method to use and why, from each method's hits on the same gold tasks.

    ``right``: ``{method: (n_gold,) bool}``, whether its label-free fit labelled each gold
    task right; it must hold ``LABEL_FREE_DEFAULT``. See :class:`AutoAggregator` for the rule.
    """
    base = right[LABEL_FREE_DEFAULT]
    n = int(base.size)
    tests = {}
    for name, hit in right.items():
        if name != LABEL_FREE_DEFAULT:
            wins, losses = int(np.sum(hit & ~base)), int(np.sum(~hit & base))
            tests[name] = (wins, losses, sign_test(wins, losses))
    significant = [name for name, (_w, _l, p) in tests.items() if p < alpha]
    if significant:
        best = max(significant, key=lambda name: int(right[name].sum()))
        wins, losses, p = tests[best]
        return best, (
            f"right on {int(right[best].sum())} of {n} gold tasks against "
            f"{int(base.sum())} for the default {LABEL_FREE_DEFAULT} (where they differ: {wins} "
            f"won, {losses} lost; one-sided sign test p = {p:.2g} < {alpha:g})"
        )
    if not tests:
        return LABEL_FREE_DEFAULT, "no other method to compare with"
    rival = min(tests, key=lambda name: (tests[name][2], -int(right[name].sum())))
    wins, losses, p = tests[rival]
    return LABEL_FREE_DEFAULT, (
        f"the default: on {n} gold tasks no method was right significantly more often "
        f"({LABEL_FREE_DEFAULT} {int(base.sum())} right; closest, "
        f"{rival}, {int(right[rival].sum())} right; where they differ: {wins} won, {losses} "
        f"lost; one-sided sign test p = {p:.2g} >= {alpha:g})"
    )


class AutoAggregator(Aggregator):
    r"""Hierarchical Dawid-Skene, or the method that the project's gold shows to be better.

    Without gold this is :class:`~crowd.em.HierarchicalDawidSkene` with its defaults (the
    label-free default, ``LABEL_FREE_DEFAULT``). With gold tasks that have answers, every
    label-free method (majority vote, one-coin DS, DS, hierarchical DS) is first fitted
    *without* the gold, so its label of a gold task is an honest prediction, and each
    alternative is compared with the default on the gold tasks by a paired test: with ``wins``
    the gold tasks the alternative labels right and the default wrong, and ``losses`` the
    reverse, the one-sided exact sign test (McNemar's exact test)
    ``p = P(Binomial(wins + losses, 1/2) >= wins)``. The default gives way only to an
    alternative with ``p < alpha``; among several, the one right on the most gold tasks (ties:
    the order of ``LABEL_FREE``). The chosen method is then fitted on all answers with the gold
    clamped (``init`` warm-starts that final fit).

    A handful of gold tasks cannot reach significance (at ``alpha=0.05`` an alternative needs
    at least 5 wins with no loss), so a project with little gold gets the default, with its
    gold clamped. On the twelve shared datasets with 10% of the gold revealed, picking the
    method with the most correct gold tasks *without* the test loses up to 1.7 points on some
    draws (dog), while the test never switched in 1,080 draws of 5, 10 or 19 gold tasks
    (benchmarks/RESULTS.md, "Accuracy: a default that generalises, and that uses the gold").

    Cost: without gold, one fit of the default; with gold, four label-free fits and the final
    one (2.5x one Dawid-Skene fit at 5M answers, benchmarks/auto_speed.py).

    Parameters:
        alpha: significance level of the one-sided test, in ``(0, 1]``.
        max_iter, tol: passed to every EM fit (as in :class:`~crowd.em.DawidSkene`).
        callback: ``callback(iteration, objective)`` during the final fit (EM methods only).

    Fitted attributes: those of the chosen method's final fit (``posteriors_``, ``labels_``,
    ``confusion_``, ``priors_``, ``worker_accuracy_``, ``n_iter_``, ``converged_``,
    ``objective_history_``); ``method_`` (the chosen method's name), ``reason_`` (a sentence
    saying why), ``n_gold_`` (gold tasks with answers that were compared) and ``gold_correct_``
    (``{method: gold tasks it labelled right without gold}``, empty without gold).
    """

    confusion_: FloatArray
    priors_: FloatArray
    worker_accuracy_: FloatArray
    stamp_rate_: FloatArray
    n_iter_: int
    converged_: bool
    objective_history_: list[float]
    method_: str
    reason_: str
    n_gold_: int
    gold_correct_: dict[str, int]

    def __init__(
        self,
        *,
        alpha: float = DEFAULT_ALPHA,
        max_iter: int = 100,
        tol: float = 1e-5,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback

    def _check_params(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        check_iterations(self.max_iter, self.tol)

    def fit(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        n_classes: int | None = None,
        gold: Gold | None = None,
        init: Any = None,
        proposals: ArrayLike | None = None,
        voters: int = 0,
    ) -> Self:
        """Choose the method (:func:`choose_method`), then fit it with the gold clamped.

        Arguments as :meth:`DawidSkene.fit`; ``init`` warm-starts the final fit only, so the
        choice never depends on it. With ``voters``, the method is chosen on the people's
        answers alone (which method suits the crowd), and the models vote in the final fit.
        Returns ``self``.
        """
        self._check_params()
        sizes = {"n_tasks": n_tasks, "n_workers": n_workers, "n_classes": n_classes}
        choice_args: tuple[ArrayLike, ArrayLike, ArrayLike] = (tasks, workers, labels)
        choice_proposals, people = proposals, n_workers
        if voters:
            w = as_index_array(workers, "workers")
            total = n_workers if n_workers is not None else int(w.max()) + 1 if w.size else 0
            keep = w < total - voters
            choice_args = (np.asarray(tasks)[keep], w[keep], np.asarray(labels)[keep])
            if proposals is not None:
                choice_proposals = np.asarray(proposals)[keep]
            people = total - voters
        choice = choose_method(
            choice_args[0],
            choice_args[1],
            choice_args[2],
            n_tasks=n_tasks,
            n_workers=people,
            n_classes=n_classes,
            gold=gold,
            alpha=self.alpha,
            max_iter=self.max_iter,
            tol=self.tol,
            proposals=choice_proposals,
        )
        final = label_free_estimator(
            choice.method, max_iter=self.max_iter, tol=self.tol, callback=self.callback
        )
        final.fit(
            tasks,
            workers,
            labels,
            gold=gold,
            init=init,
            proposals=proposals,
            voters=voters,
            **sizes,
        )
        self.posteriors_ = final.posteriors_
        self.labels_ = final.labels_
        for name in (
            "confusion_",
            "priors_",
            "worker_accuracy_",
            "stamp_rate_",
            "n_iter_",
            "converged_",
            "objective_history_",
        ):
            setattr(self, name, getattr(final, name))
        self.method_ = choice.method
        self.reason_ = choice.reason
        self.n_gold_ = choice.n_gold
        self.gold_correct_ = choice.gold_correct
        return self

    @property
    def params_(self) -> DSParams:
        """The fitted parameters as :class:`DSParams`, for warm-starting a later fit."""
        return DSParams(confusion=self.confusion_, priors=self.priors_)
