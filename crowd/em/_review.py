"""Review answers: answers given while a model's proposed label was shown.

A reviewer who sees a proposal either looks at the task or accepts what is shown. The model
(see :class:`~crowd.em.DawidSkene`'s ``proposals``): worker ``w`` reviewing a task of true
class ``k`` with proposal ``p`` stamps it with probability ``s_w`` (answers ``p`` whatever
``k`` is), and otherwise answers from the same confusion matrix as its blind answers::

    P(l | k, p) = s_w [l = p] + (1 - s_w) pi[w, k, l]

A confirmation from a worker with ``s_w`` near 1 then moves a task's posterior hardly at all
(its likelihood is nearly the same under every class), so ten confirmations from stampers
are not ten votes; a correction (``l != p``) has likelihood ``(1 - s_w) pi[w, k, l]``, whose
``1 - s_w`` is the same for every class: as much evidence as a blind answer.

EM treats "stamped or not" as a latent indicator per answer: given the task's class ``k`` the
answer was stamped with probability ``r_ik = s_w [l = p] / P(l | k, p)``. The M-step adds
``q_j(k) (1 - r_ik)`` to the worker's confusion counts and sets ``s_w`` to the MAP under a
Beta prior with mean ``STAMP_PRIOR`` worth ``STAMP_PRIOR_WEIGHT`` answers. ``s_w`` is learnt
where the proposal was wrong (traps, model errors that others or gold reveal): on tasks whose
proposal is right a stamp and an honest confirmation look alike.

Everything here is a pure function of arrays: nothing is mutated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from crowd.em._base import FloatArray, IntArray

#: Prior mean of a worker's stamp rate: before a worker's reviews show otherwise, a
#: confirmation counts as 0.8 of a blind answer in the mixture (the anchoring the issue's
#: benchmark assumes for honest reviewers, ``--anchor 0.2``).
STAMP_PRIOR = 0.2

#: Weight of that prior, in review answers: a worker's own reviews outweigh it after a few.
STAMP_PRIOR_WEIGHT = 5.0


@dataclass(frozen=True)
class ReviewAnswers:
    """The review answers of a fit, shape ``(n_review,)`` each, and their workers' count.

    ``confirms[i]`` is ``labels[i] == proposals[i]``.
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    proposals: IntArray
    confirms: np.ndarray
    n_tasks: int
    n_workers: int

    @property
    def per_worker(self) -> FloatArray:
        """Review answers per worker, ``(n_workers,)``."""
        return np.bincount(self.workers, minlength=self.n_workers).astype(np.float64)


def check_proposals(proposals: ArrayLike, n_answers: int, n_classes: int) -> IntArray:
    """``proposals`` as ``(n_answers,)`` intp: a class index, or ``-1`` for a blind answer."""
    array = np.asarray(proposals)
    if array.shape != (n_answers,):
        raise ValueError(
            f"proposals must have one entry per answer, shape ({n_answers},), got {array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"proposals must hold class indices or -1, got dtype {array.dtype}")
    array = array.astype(np.intp, copy=False)
    if array.size and (array.min() < -1 or array.max() >= n_classes):
        raise ValueError(f"proposals must be -1 (blind) or a class index below {n_classes}")
    return array


def split(
    tasks: IntArray,
    workers: IntArray,
    labels: IntArray,
    proposals: IntArray,
    *,
    n_tasks: int,
    n_workers: int,
) -> tuple[np.ndarray, ReviewAnswers | None]:
    """``(blind mask (n_answers,), review answers or None when there are none)``."""
    review = proposals >= 0
    if not review.any():
        return ~review, None
    rev = ReviewAnswers(
        tasks=tasks[review],
        workers=workers[review],
        labels=labels[review],
        proposals=proposals[review],
        confirms=labels[review] == proposals[review],
        n_tasks=n_tasks,
        n_workers=n_workers,
    )
    return ~review, rev


def _mixture(rev: ReviewAnswers, confusion: FloatArray, stamp: FloatArray) -> FloatArray:
    """``P(l_i | k, p_i)`` for every review answer and class, ``(n_review, K)``."""
    s = stamp[rev.workers][:, None]
    honest = confusion[rev.workers, :, rev.labels]  # (n_review, K): pi[w_i, k, l_i]
    return np.where(rev.confirms[:, None], s, 0.0) + (1.0 - s) * honest


def task_sums(rev: ReviewAnswers, confusion: FloatArray, stamp: FloatArray) -> FloatArray:
    """E-step: ``out[k, t] = sum over review answers i of t of log P(l_i | k, p_i)``, class-major
    ``(K, n_tasks)``; ``confusion`` ``(n_workers, K, K)``, ``stamp`` ``(n_workers,)``."""
    with np.errstate(divide="ignore"):
        logs = np.log(_mixture(rev, confusion, stamp))
    k = confusion.shape[1]
    out = np.empty((k, rev.n_tasks))
    for c in range(k):
        out[c] = np.bincount(rev.tasks, weights=logs[:, c], minlength=rev.n_tasks)
    return out


def m_step_counts(
    rev: ReviewAnswers,
    posteriors: FloatArray,
    confusion: FloatArray | None,
    stamp: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """M-step sums of the review answers.

    ``posteriors`` class-major ``(K, n_tasks)``; ``confusion`` and ``stamp`` the parameters the
    posteriors were computed with (``confusion`` None on a first M-step from vote shares: then
    a confirmation is a stamp with probability ``stamp``). Returns ``(counts (n_workers, K, K)``
    to add to the blind answers' confusion counts, ``stamped (n_workers,)`` expected stamps).
    """
    k = posteriors.shape[0]
    q = posteriors[:, rev.tasks].T  # (n_review, K)
    s = stamp[rev.workers][:, None]
    if confusion is None:
        resp = np.where(rev.confirms[:, None], s, 0.0) * np.ones((1, k))
    else:
        mixture = _mixture(rev, confusion, stamp)
        resp = np.where(rev.confirms[:, None], s / np.maximum(mixture, 1e-300), 0.0)
    stamped = np.bincount(rev.workers, weights=(q * resp).sum(axis=1), minlength=rev.n_workers)
    honest = q * (1.0 - resp)  # (n_review, K): mass of true class k on a non-stamped answer
    cells = rev.workers * k + rev.labels
    flat = np.empty((rev.n_workers * k, k))
    for c in range(k):
        flat[:, c] = np.bincount(cells, weights=honest[:, c], minlength=rev.n_workers * k)
    counts = flat.reshape(rev.n_workers, k, k).transpose(0, 2, 1)  # (w, given, true) -> (w, k, l)
    return np.ascontiguousarray(counts), stamped.astype(np.float64)


def stamp_rates(rev: ReviewAnswers, stamped: FloatArray) -> FloatArray:
    """MAP stamp rate per worker ``(n_workers,)`` from expected stamps; the prior mean for
    workers without review answers."""
    weight = STAMP_PRIOR_WEIGHT
    rate = (stamped + weight * STAMP_PRIOR) / (rev.per_worker + weight)
    return np.clip(rate, 1e-6, 1.0 - 1e-6)


def log_prior(rev: ReviewAnswers, stamp: FloatArray) -> float:
    """Log-density (up to a constant) of the Beta prior on the stamp rates of the workers
    with review answers; EM's objective adds it so that it never decreases."""
    reviewed = rev.per_worker > 0
    s = stamp[reviewed]
    a = STAMP_PRIOR_WEIGHT * STAMP_PRIOR
    b = STAMP_PRIOR_WEIGHT * (1.0 - STAMP_PRIOR)
    return float(a * np.log(s).sum() + b * np.log1p(-s).sum())


def used_cells(rev: ReviewAnswers, k: int) -> np.ndarray:
    """``(n_workers, K)`` bool: worker ``w`` gave label ``l`` in a review answer."""
    used = np.zeros(rev.n_workers * k, dtype=bool)
    used[rev.workers * k + rev.labels] = True
    return used.reshape(rev.n_workers, k)
