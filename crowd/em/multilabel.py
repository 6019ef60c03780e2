"""Multi-label answers (any subset of N labels): Dawid-Skene with a worker's two coins shared
across labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crowd.em._base import (
    Estimator,
    FloatArray,
    IntArray,
    as_index_array,
    check_iterations,
    count,
    iterate,
    weighted_sum,
)
from crowd.em._em import EPS

#: Known label sets: ``{task_index: label indices}`` or ``(task_indices, (n_gold, n_labels))``.
MultilabelGold = Mapping[int, Iterable[int]] | tuple[ArrayLike, ArrayLike]

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class MultilabelParams:
    """Parameters of a :class:`MultilabelDawidSkene` fit, e.g. to warm-start a later fit.

    Attributes:
        sensitivity, specificity: ``(n_workers,)`` each worker's two coins; NaN for a worker
            with no estimate (it starts at the known workers' mean).
        priors: ``(n_labels,)`` each label's share of tasks.
    """

    sensitivity: FloatArray
    specificity: FloatArray
    priors: FloatArray


class MultilabelDawidSkene(Estimator):
    r"""Label sets by EM, each worker with one sensitivity and one specificity for all labels.

    Model. Task ``j`` carries label ``l`` (``z_jl = 1``) with probability ``p_l``
    (``priors_``), independently across labels. Worker ``w`` ticks a label the task carries
    with probability ``se_w`` (``sensitivity_``) and leaves unticked a label it does not
    carry with probability ``sp_w`` (``specificity_``), whatever the label::

        P(answers, z) = prod_{j, l} p_l^{z_jl} (1 - p_l)^{1 - z_jl}
            prod_{i in j} [se_w^{y_il} (1 - se_w)^{1 - y_il}]^{z_jl}
                          [(1 - sp_w)^{y_il} sp_w^{1 - y_il}]^{1 - z_jl}

    This is per-label two-class Dawid-Skene (Crowd-Kit's ``BinaryRelevance(DawidSkene)``)
    with each worker's confusion shared by the labels: how thoroughly a worker ticks boxes and
    how often it ticks wrong ones are traits of the worker, seen in every label of every
    answer, so they are estimated from ``N`` times the evidence. An empty answer (no label) is
    informative: ``N`` unticked boxes.

    EM as in :class:`~crowd.em.DawidSkene`: start from the per-label vote shares, iterate
    M-step (``se_w`` = expected ticked positives / expected positives over the worker's
    answers, ``sp_w`` likewise, ``p_l`` = mean posterior, each floored at ``1e-10`` from 0
    and 1) then E-step (``probabilities_``, the posterior of every ``z_jl``), stop when the
    log-likelihood per answer changes by less than ``tol``. Gold tasks are held at their
    label sets. ``labels_`` is ``probabilities_ > 0.5``. Tasks without answers get
    ``priors_``.

    A warm start (``fit``'s ``init``: an earlier fit's :class:`MultilabelParams`, or the
    fitted estimator) replaces the vote shares by an E-step from its coins and priors, then
    iterates the same EM to the same stopping rule: from an earlier fit on most of these
    answers it stops at the same fixed point within the rule's tolerance, in a few
    iterations instead of a cold start's dozen or more.

    A. P. Dawid and A. M. Skene, *JRSS-C* 28(1):20-28, 1979; the two-coin worker of V. C.
    Raykar et al., Learning from crowds, *JMLR* 11:1297-1322, 2010 (section 2).

    Parameters:
        max_iter: maximum number of EM iterations (>= 1).
        tol: stop when the log-likelihood per answer changes by less than this.
        callback: called as ``callback(iteration, objective)`` after every iteration.
    """

    probabilities_: FloatArray
    labels_: BoolArray
    priors_: FloatArray
    sensitivity_: FloatArray
    specificity_: FloatArray
    n_iter_: int
    converged_: bool
    objective_history_: list[float]

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback

    def fit(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        gold: MultilabelGold | None = None,
        init: Any = None,
    ) -> Self:
        """Fit by EM; returns ``self``.

        Args:
            tasks, workers: ``(n_answers,)`` non-negative int indices.
            labels: ``(n_answers, n_labels)`` 0/1 (or bool): the labels each answer ticked.
            n_tasks, n_workers: sizes; default to the largest index plus one.
            gold: ``{task: label indices}`` or ``(task_indices, (n_gold, n_labels) 0/1)``.
            init: :class:`MultilabelParams` or a fitted :class:`MultilabelDawidSkene` to
                warm-start from (see the class docstring); not modified.
        """
        check_iterations(self.max_iter, self.tol)
        t = as_index_array(tasks, "tasks")
        w = as_index_array(workers, "workers")
        y = np.asarray(labels)
        if y.ndim != 2 or y.shape[0] != t.size:
            raise ValueError(
                f"labels must be a 2-D array with one row per answer, got shape {y.shape}"
            )
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must hold 0/1 (or bool) values")
        if t.shape != w.shape:
            raise ValueError(f"tasks and workers must have equal length, got {t.size}, {w.size}")
        n_labels = y.shape[1]
        gold_tasks, gold_sets = _parse_gold(gold, n_labels)
        n = count(n_tasks, np.concatenate([t, gold_tasks]), "n_tasks")
        n_w = count(n_workers, w, "n_workers")
        per_answer = 1.0 / max(t.size, 1)

        # Every sum runs over answers or over ticked boxes only (cell = task * n_labels + label).
        tick_answer, tick_label = np.nonzero(y)
        tick_worker = w[tick_answer]
        tick_task = t[tick_answer]
        tick_cell = tick_task * n_labels + tick_label
        answers_of_task = np.bincount(t, minlength=n)
        answers_of_worker = np.bincount(w, minlength=n_w).astype(np.float64)
        ticks_of_worker = np.bincount(tick_worker, minlength=n_w).astype(np.float64)
        observed = answers_of_task > 0
        observed[gold_tasks] = True
        all_observed = bool(observed.all())
        free = answers_of_task > 0
        free[gold_tasks] = False
        all_free = bool(free.all())
        clamped = gold_tasks[answers_of_task[gold_tasks] > 0]
        clamped_sets = gold_sets[answers_of_task[gold_tasks] > 0] > 0

        def m_step(q: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
            positives = weighted_sum(w, q.sum(axis=1)[t], n_w)
            hits = weighted_sum(tick_worker, q.reshape(-1)[tick_cell], n_w)
            negatives = answers_of_worker * n_labels - positives
            sensitivity = _rate(hits, positives)
            specificity = _rate(negatives - (ticks_of_worker - hits), negatives)
            if all_observed:
                mass = q.mean(axis=0)
            else:
                mass = q[observed].mean(axis=0) if observed.any() else np.full(n_labels, 0.5)
            return sensitivity, specificity, np.clip(mass, EPS, 1 - EPS)

        def e_step(
            sensitivity: FloatArray, specificity: FloatArray, priors: FloatArray
        ) -> tuple[FloatArray, float]:
            log_sp, log_fp = np.log(specificity), np.log1p(-specificity)
            log_se, log_fn = np.log(sensitivity), np.log1p(-sensitivity)
            # Log-odds of z = 1 per task and label: every answer's blank-box term, corrected
            # on the ticked boxes.
            log_odds = weighted_sum(
                tick_cell, (log_se - log_fn - log_fp + log_sp)[tick_worker], n * n_labels
            ).reshape(n, n_labels)
            log_odds += weighted_sum(t, (log_fn - log_sp)[w], n)[:, None]
            log_odds += np.log(priors) - np.log1p(-priors)
            q, softplus = _sigmoid_softplus(log_odds)
            q[gold_tasks] = gold_sets
            # Log-likelihood: log P(z=0, answers) + log(1 + odds) over answered cells, or the
            # clamped class's term for gold tasks. log P(answers | z=0) is only needed summed
            # over a task's labels: n_labels blank boxes per answer, corrected where ticked.
            log0 = n_labels * weighted_sum(t, log_sp[w], n)
            log0 += weighted_sum(tick_task, (log_fp - log_sp)[tick_worker], n)
            log_off = float(np.log1p(-priors).sum())
            if all_free:
                total = log0.sum() + n * log_off + softplus.sum()
            else:
                total = log0[free].sum() + free.sum() * log_off
                total += softplus[free].sum()
                if clamped.size:
                    total += log0[clamped].sum() + clamped.size * log_off
                    total += np.where(clamped_sets, log_odds[clamped], 0.0).sum()
            return q, float(total) * per_answer

        start = _start(init, n_w, n_labels)
        if start is not None:
            q, _ = e_step(*start)
        else:
            q = weighted_sum(tick_cell, np.ones(tick_cell.size), n * n_labels).reshape(n, n_labels)
            with np.errstate(invalid="ignore"):
                q /= answers_of_task[:, None]
            q[answers_of_task == 0] = 0.5
            q[gold_tasks] = gold_sets
        sensitivity = specificity = priors = np.zeros(0)

        def step() -> float:
            nonlocal q, sensitivity, specificity, priors
            sensitivity, specificity, priors = m_step(q)
            q, objective = e_step(sensitivity, specificity, priors)
            return objective

        history, converged = iterate(
            step,
            name=type(self).__name__,
            max_iter=self.max_iter,
            tol=self.tol,
            callback=self.callback,
        )
        unanswered = (answers_of_task == 0) & ~np.isin(np.arange(n), gold_tasks)
        q[unanswered] = priors
        self.probabilities_ = q
        self.labels_ = q > 0.5
        self.priors_ = priors
        self.sensitivity_ = sensitivity
        self.specificity_ = specificity
        self.n_iter_ = len(history)
        self.converged_ = converged
        self.objective_history_ = history
        return self

    @property
    def params_(self) -> MultilabelParams:
        """The fitted parameters as :class:`MultilabelParams`, for warm-starting a later fit."""
        return MultilabelParams(self.sensitivity_, self.specificity_, self.priors_)

    def fit_predict(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        gold: MultilabelGold | None = None,
    ) -> BoolArray:
        """Fit, then return ``labels_``: shape ``(n_tasks, n_labels)``, bool."""
        self.fit(tasks, workers, labels, n_tasks=n_tasks, n_workers=n_workers, gold=gold)
        return self.labels_

    def fit_predict_proba(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        gold: MultilabelGold | None = None,
    ) -> FloatArray:
        """Fit, then return ``probabilities_``: shape ``(n_tasks, n_labels)``."""
        self.fit(tasks, workers, labels, n_tasks=n_tasks, n_workers=n_workers, gold=gold)
        return self.probabilities_


def _start(
    init: Any, n_workers: int, n_labels: int
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """A warm start's ``(sensitivity, specificity, priors)`` for ``n_workers`` workers, NaN
    (unknown) workers at the known ones' mean; None: no start (no ``init``, or it knows no
    worker). New arrays; ``init`` is only read."""
    if init is None:
        return None
    if isinstance(init, MultilabelDawidSkene):
        init = init.params_
    if not isinstance(init, MultilabelParams):
        raise TypeError(
            "init must be MultilabelParams or a fitted MultilabelDawidSkene, got"
            f" {type(init).__name__}"
        )
    se = np.asarray(init.sensitivity, dtype=np.float64).reshape(-1)
    sp = np.asarray(init.specificity, dtype=np.float64).reshape(-1)
    priors = np.asarray(init.priors, dtype=np.float64).reshape(-1)
    if se.shape != sp.shape or se.size > n_workers or priors.shape != (n_labels,):
        raise ValueError(
            f"init has {se.size} sensitivities, {sp.size} specificities and {priors.size}"
            f" priors; expected at most n_workers={n_workers} of each coin and"
            f" n_labels={n_labels} priors"
        )
    known = np.isfinite(se) & np.isfinite(sp)
    if not known.any() or not np.all(np.isfinite(priors)):
        return None
    full = np.empty((2, n_workers))
    full[0], full[1] = se[known].mean(), sp[known].mean()
    full[0, : se.size][known], full[1, : sp.size][known] = se[known], sp[known]
    full = np.clip(full, EPS, 1 - EPS)
    return full[0], full[1], np.clip(priors, EPS, 1 - EPS)


def _sigmoid_softplus(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(1 / (1 + exp(-x)), log(1 + exp(x)))`` from one ``exp`` and one ``log1p``, stably."""
    e = np.exp(-np.abs(x))
    softplus = np.log1p(e)
    softplus += np.maximum(x, 0.0)
    e /= 1.0 + e  # now sigmoid(-|x|)
    sigmoid = np.where(x >= 0, 1.0 - e, e)
    return sigmoid, softplus


def _rate(hits: FloatArray, trials: FloatArray) -> FloatArray:
    """``hits / trials`` kept inside ``[1e-10, 1 - 1e-10]``; 0.5 where there are no trials."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(trials > 0, hits / trials, 0.5)
    return np.clip(rate, EPS, 1 - EPS)


def _parse_gold(gold: MultilabelGold | None, n_labels: int) -> tuple[IntArray, FloatArray]:
    """Gold as ``(task indices, (n_gold, n_labels) 0/1 floats)``."""
    if gold is None:
        return np.zeros(0, dtype=np.intp), np.zeros((0, n_labels))
    if isinstance(gold, Mapping):
        tasks = as_index_array(np.fromiter(gold.keys(), dtype=np.int64, count=len(gold)), "gold")
        sets = np.zeros((len(gold), n_labels))
        for row, chosen in enumerate(gold.values()):
            indices = as_index_array(np.fromiter(chosen, dtype=np.int64), "gold labels")
            if indices.size and indices.max() >= n_labels:
                raise ValueError(f"a gold label index is >= n_labels={n_labels}")
            sets[row, indices] = 1.0
    else:
        tasks = as_index_array(gold[0], "gold tasks")
        sets = np.asarray(gold[1], dtype=np.float64)
        if sets.shape != (tasks.size, n_labels) or not np.all((sets == 0) | (sets == 1)):
            raise ValueError(
                f"gold label sets must be a ({tasks.size}, {n_labels}) array of 0/1 values"
            )
    unique, first, inverse = np.unique(tasks, return_index=True, return_inverse=True)
    if np.any(sets != sets[first][inverse]):
        raise ValueError("a gold task is given two different label sets")
    return unique, sets[first]
