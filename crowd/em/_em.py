"""EM template shared by the confusion-matrix models (full Dawid-Skene, one-coin).

The models differ only in how the M-step turns expected counts into a confusion tensor; the
E-step, priors, gold clamping, warm start, stopping rule and bookkeeping are here, in the shape
of scikit-learn's ``mixture/_base.py``: iterate M-step then E-step, stop when the objective
changes by less than ``tol``, and finish on an E-step so ``labels_`` agree with the parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from crowd.em import _review
from crowd.em._base import (
    Aggregator,
    Answers,
    FloatArray,
    Gold,
    IntArray,
    argmax_lowest,
    check_answers,
    check_iterations,
    clamp_gold,
    iterate,
    normalize_log_columns,
    parse_gold,
)
from crowd.em._incidence import AnswerMatrix, log_table

#: Floor applied to expected counts (and priors) before normalising, as Crowd-Kit does, so that
#: a cell nobody used gets a tiny probability instead of ``log(0) = -inf``.
EPS = 1e-10


@dataclass(frozen=True)
class DSParams:
    """Parameters of a confusion-matrix model, e.g. to warm-start a later fit.

    Attributes:
        confusion: ``(n_workers, K, K)``; ``confusion[w, k, l]`` = P(worker w says l | true k).
        priors: ``(K,)`` class priors.
    """

    confusion: FloatArray
    priors: FloatArray


def _normalize(counts: FloatArray) -> FloatArray:
    """Floor at :data:`EPS` and normalise along the last axis; returns a new array."""
    floored = np.maximum(counts, EPS)
    return floored / floored.sum(axis=-1, keepdims=True)


def majority_shares(matrix_tasks: IntArray, labels: IntArray, n_tasks: int, k: int) -> FloatArray:
    """Vote shares ``(n_tasks, K)``, one vote per answer; unanswered tasks get uniform rows."""
    votes = np.bincount(matrix_tasks * k + labels, minlength=n_tasks * k).astype(np.float64)
    votes = votes.reshape(n_tasks, k)
    totals = votes.sum(axis=1, keepdims=True)
    votes[totals[:, 0] == 0] = 1.0
    totals[totals == 0] = k
    votes /= totals
    return votes


class ConfusionEM(Aggregator):
    """Base for models with a per-worker confusion tensor; see :class:`DawidSkene`.

    Subclasses implement :meth:`_m_step`. Fitted attributes: ``posteriors_``, ``labels_``,
    ``confusion_``, ``priors_``, ``worker_accuracy_``, ``n_iter_``, ``converged_``,
    ``objective_history_``, and ``stamp_rate_`` ``(n_workers,)``: each worker's estimated
    probability of accepting whatever is proposed, NaN for workers without review answers
    (see :mod:`crowd.em._review`).
    """

    confusion_: FloatArray
    priors_: FloatArray
    worker_accuracy_: FloatArray
    stamp_rate_: FloatArray
    n_iter_: int
    converged_: bool
    objective_history_: list[float]

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        smoothing: float = 0.0,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.callback = callback

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        """Expected counts ``(n_workers, K, K)`` -> confusion ``(n_workers, K, K)``, rows sum to 1."""
        raise NotImplementedError

    def _log_prior(self, confusion: FloatArray, priors: FloatArray) -> float:
        """Log-density (up to a constant) of the symmetric Dirichlet prior on rows and priors."""
        if self.smoothing == 0:
            return 0.0
        return float(self.smoothing * (np.log(confusion).sum() + np.log(priors).sum()))

    def _check_params(self) -> None:
        check_iterations(self.max_iter, self.tol)
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing!r}")

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
        """Fit by EM on answers ``(tasks[i], workers[i], labels[i])``; returns ``self``.

        Args:
            tasks, workers, labels: 1-D non-negative int arrays of shape ``(n_answers,)``.
            n_tasks, n_workers, n_classes: sizes; default to the largest index plus one.
            gold: ``{task: class}`` or ``(task_indices, classes)``; those tasks' posteriors are
                held one-hot through EM.
            init: :class:`DSParams` or a fitted confusion-matrix estimator to warm-start from;
                workers beyond its ``confusion`` start from its mean confusion.
            proposals: ``(n_answers,)`` ints: the label a model proposed to the worker when it
                answered (a review answer), or -1 for a blind answer. Review answers get the
                stamp model of :mod:`crowd.em._review`; without any, the fit is the plain one.
            voters: the last ``voters`` workers are models (:mod:`crowd.em.voters`): each gets
                a full confusion matrix by the plain Dawid-Skene M-step whatever the method
                (a model wrong on one class needs a full matrix to say so), and is left out of
                the method's pooling across workers (``hds``'s crowd accuracy).
        """
        self._check_params()
        if not (isinstance(voters, int | np.integer) and voters >= 0):
            raise ValueError(f"voters must be a non-negative integer, got {voters!r}")
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
        k = answers.n_classes
        rev = None
        if proposals is not None:
            checked = _review.check_proposals(proposals, answers.n_answers, k)
            blind, rev = _review.split(
                answers.tasks,
                answers.workers,
                answers.labels,
                checked,
                n_tasks=answers.n_tasks,
                n_workers=answers.n_workers,
            )
        matrix = AnswerMatrix(answers) if rev is None else _blind_matrix(answers, blind, rev)
        if voters > answers.n_workers:
            raise ValueError(f"voters={voters} but there are only {answers.n_workers} workers")
        people_matrix = matrix
        if voters:
            people_matrix = copy.copy(matrix)
            people_matrix.used_cells = matrix.used_cells[: answers.n_workers - voters]
        observed = matrix.answered.copy()
        if rev is not None:
            observed[rev.tasks] = True
        observed[gold_tasks] = True
        all_observed = bool(observed.all())
        observed_weight = observed.astype(np.float64)
        per_answer = 1.0 / max(answers.n_answers, 1)
        gold_mask = None
        if gold_tasks.size:
            gold_mask = np.full((k, gold_tasks.size), -np.inf)
            gold_mask[gold_labels, np.arange(gold_tasks.size)] = 0.0

        # Inside the loop posteriors are class-major, (K, n_tasks); see normalize_log_columns.
        # ``stamp`` (n_workers,) is only used with review answers.
        def m_step(
            posteriors: FloatArray, last: tuple[FloatArray, FloatArray] | None
        ) -> tuple[FloatArray, FloatArray, FloatArray]:
            mass = posteriors.sum(axis=1) if all_observed else posteriors @ observed_weight
            priors = _normalize(mass + self.smoothing)
            counts = matrix.cell_sums(posteriors)
            stamp = no_stamp
            if rev is not None:
                confusion, stamp = last if last is not None else (None, start_stamp)
                extra, stamped = _review.m_step_counts(rev, posteriors, confusion, stamp)
                counts = counts + extra
                stamp = _review.stamp_rates(rev, stamped)
            if not voters:
                return self._m_step(counts, matrix), priors, stamp
            people = answers.n_workers - voters
            return (
                np.concatenate(
                    [self._m_step(counts[:people], people_matrix), _normalize(counts[people:])]
                ),
                priors,
                stamp,
            )

        def e_step(
            confusion: FloatArray, priors: FloatArray, stamp: FloatArray
        ) -> tuple[FloatArray, float]:
            log_joint = matrix.task_sums(log_table(confusion), np.log(priors))
            log_prior = self._log_prior(confusion, priors)
            if rev is not None:
                log_joint += _review.task_sums(rev, confusion, stamp)
                log_prior += _review.log_prior(rev, stamp)
            if gold_mask is not None:
                log_joint[:, gold_tasks] += gold_mask
            posteriors, log_likelihood = normalize_log_columns(log_joint)
            objective = (log_likelihood + log_prior) * per_answer
            return posteriors, objective

        no_stamp = np.zeros(0)
        start_stamp = np.full(answers.n_workers, _review.STAMP_PRIOR)
        start = None if init is None else _params_from_init(init, answers.n_workers, k)
        last: tuple[FloatArray, FloatArray] | None = None
        if start is None:
            shares = majority_shares(answers.tasks, answers.labels, answers.n_tasks, k)
            clamp_gold(shares, gold_tasks, gold_labels)
            posteriors = np.ascontiguousarray(shares.T)
            previous = -np.inf
        else:
            posteriors, previous = e_step(start.confusion, start.priors, start_stamp)
            last = (start.confusion, start_stamp)

        confusion = priors = stamp = np.zeros(0)

        def step() -> float:
            nonlocal posteriors, confusion, priors, stamp, last
            confusion, priors, stamp = m_step(posteriors, last)
            last = (confusion, stamp)
            posteriors, objective = e_step(confusion, priors, stamp)
            return objective

        history, converged = iterate(
            step,
            name=type(self).__name__,
            max_iter=self.max_iter,
            tol=self.tol,
            callback=self.callback,
            previous=previous,
        )

        self.posteriors_ = np.ascontiguousarray(posteriors.T)
        self.labels_ = argmax_lowest(self.posteriors_)
        self.confusion_ = confusion
        self.priors_ = priors
        self.worker_accuracy_ = np.einsum("k,wkk->w", priors, confusion)
        self.stamp_rate_ = np.full(answers.n_workers, np.nan)
        if rev is not None:
            reviewed = rev.per_worker > 0
            self.stamp_rate_[reviewed] = stamp[reviewed]
        self.n_iter_ = len(history)
        self.converged_ = converged
        self.objective_history_ = history
        return self

    @property
    def params_(self) -> DSParams:
        """The fitted parameters as :class:`DSParams`, for warm-starting a later fit."""
        return DSParams(confusion=self.confusion_, priors=self.priors_)


def _blind_matrix(answers: Answers, blind: np.ndarray, rev: _review.ReviewAnswers) -> AnswerMatrix:
    """The incidence matrix of the blind answers, with ``used_cells`` counting the labels the
    workers gave in review answers too (the M-step's floor applies to those cells)."""
    matrix = AnswerMatrix(
        Answers(
            tasks=answers.tasks[blind],
            workers=answers.workers[blind],
            labels=answers.labels[blind],
            n_tasks=answers.n_tasks,
            n_workers=answers.n_workers,
            n_classes=answers.n_classes,
        )
    )
    used = matrix.used_cells.copy()
    used[matrix.worker_answers == 0] = False
    used |= _review.used_cells(rev, answers.n_classes)
    used[~used.any(axis=1)] = True
    matrix.used_cells = used
    return matrix


def _params_from_init(init: Any, n_workers: int, k: int) -> DSParams | None:
    """Read and check a warm start; ``None`` means "no usable information, start cold"."""
    if isinstance(init, DSParams):
        confusion, priors = init.confusion, init.priors
    elif hasattr(init, "confusion_") and hasattr(init, "priors_"):
        confusion, priors = init.confusion_, init.priors_
    else:
        raise TypeError(
            f"init must be DSParams or a fitted estimator with confusion_ and priors_, "
            f"got {type(init).__name__}"
        )
    confusion = np.asarray(confusion, dtype=np.float64)
    priors = np.asarray(priors, dtype=np.float64)
    if confusion.ndim != 3 or confusion.shape[1:] != (k, k) or priors.shape != (k,):
        raise ValueError(
            f"init has confusion shape {confusion.shape} and priors shape {priors.shape}; "
            f"expected (n_workers, {k}, {k}) and ({k},)"
        )
    if confusion.shape[0] > n_workers:
        raise ValueError(
            f"init describes {confusion.shape[0]} workers but n_workers={n_workers}; "
            "pass n_workers to keep the worker indices of the earlier fit"
        )
    if confusion.shape[0] == 0:
        return None
    if confusion.shape[0] < n_workers:
        newcomer = confusion.mean(axis=0)
        pad = np.broadcast_to(newcomer, (n_workers - confusion.shape[0], k, k))
        confusion = np.concatenate([confusion, pad])
    return DSParams(confusion=_normalize(confusion), priors=_normalize(priors))
