"""One-coin Dawid-Skene: one accuracy per worker, errors spread evenly over the other classes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from crowd.em._base import FloatArray
from crowd.em._em import EPS, ConfusionEM
from crowd.em._incidence import AnswerMatrix
from crowd.em.dawid_skene import DEFAULT_SMOOTHING


class OneCoinDawidSkene(ConfusionEM):
    r"""Dawid-Skene with a one-parameter ("one-coin") worker model.

    Model: worker ``w`` is right with probability ``a_w`` whatever the true class, and a wrong
    answer is uniform over the other ``K - 1`` classes::

        pi[w, k, l] = a_w                   if l == k
                    = (1 - a_w) / (K - 1)   otherwise

    EM is the same as :class:`~crowd.em.DawidSkene` (same E-step, priors, gold clamping, warm
    start, stopping rule and objective) with the M-step restricted to this family. With ``c_w``
    the expected number of correct answers of ``w`` (``sum_i q_{j_i}(l_i)``) and ``n_w`` its
    answers, the MAP update under the same symmetric Dirichlet(``1 + smoothing``) prior on every
    confusion row is ``a_w = (c_w + K s) / (n_w + K^2 s)``, clipped to ``[1e-10, 1 - 1e-10]``.
    ``worker_accuracy_`` equals ``a_w``. A warm start from a full confusion keeps its tensor for
    the first E-step; the first M-step projects onto this family.

    D. Zhou, Q. Liu, J. C. Platt, C. Meek and N. B. Shah. Regularized minimax conditional entropy
    for crowdsourcing. arXiv:1503.07240, 2015 (the "one-coin" model, section 2); the one-coin
    simplification of A. P. Dawid and A. M. Skene, JRSS-C 28(1):20-28, 1979.

    Parameters:
        max_iter: maximum number of EM iterations (>= 1).
        tol: stop when the per-answer objective changes by less than this in one iteration.
        callback: called as ``callback(iteration, objective)`` after every iteration (progress
            reporting); ``None`` for none.
        smoothing: Dirichlet pseudo-count ``s`` per confusion cell and prior class.
    """

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        smoothing: float = DEFAULT_SMOOTHING,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol, smoothing=smoothing, callback=callback)

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        """Expected counts ``(n_workers, K, K)`` -> one-coin confusion, same shape."""
        _n_workers, k, _ = counts.shape
        if k == 1:
            return np.ones_like(counts)
        s = self.smoothing
        correct = np.einsum("wkk->w", counts)
        total = counts.sum(axis=(1, 2))
        accuracy = np.clip((correct + k * s) / np.maximum(total + k * k * s, EPS), EPS, 1 - EPS)
        confusion = np.repeat(((1.0 - accuracy) / (k - 1))[:, None, None], k, axis=1)
        confusion = np.repeat(confusion, k, axis=2)
        diagonal = np.arange(k)
        confusion[:, diagonal, diagonal] = accuracy[:, None]
        return confusion
