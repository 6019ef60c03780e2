"""Dawid-Skene with each worker's confusion shrunk toward a one-coin matrix of its own accuracy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from crowd.em._base import FloatArray
from crowd.em._em import EPS, ConfusionEM
from crowd.em._incidence import AnswerMatrix

#: Pseudo-answers per confusion row pulling it toward the worker's one-coin matrix, and
#: pseudo-answers pulling the worker's accuracy toward the crowd's. Chosen on the twelve shared
#: datasets (accuracy on gold, no gold in the fit; see benchmarks/RESULTS.md, "Accuracy"):
#: row strength 1 / 3 / 10 / 30 gave means 0.826 / 0.830 / 0.826 / 0.815 with accuracy
#: strength 3, and accuracy strength 0 / 3 / 10 moved the mean by at most 0.001. Checks that do
#: not lean on those twelve means: leaving each dataset out and choosing the row strength
#: (0.3-100) on the other eleven picks 3 every time, and without any gold, 5-fold held-out
#: likelihood of the workers' answers peaks at 3 on 7 of the 12 (issue 15, RESULTS.md).
DEFAULT_ROW_STRENGTH = 3.0
DEFAULT_ACCURACY_STRENGTH = 3.0


class HierarchicalDawidSkene(ConfusionEM):
    r"""Dawid-Skene whose confusion rows are shrunk toward a one-coin matrix (two-level prior).

    Model: as :class:`~crowd.em.DawidSkene` (latent class ``z_j ~ Cat(p)``, worker ``w`` says
    ``l`` on a class-``k`` task with probability ``pi[w, k, l]``), plus a two-level prior in the
    spirit of SageMaker Ground Truth's "modified Dawid-Skene", which smooths each worker toward
    its own accuracy and toward the mean accuracy of all workers::

        a_w            ~ Beta centred on the crowd accuracy a, strength s0 (pseudo-answers)
        pi[w, k, :]    ~ Dirichlet(s * m_wk),   m_wk = a_w e_k + (1 - a_w) / (K - 1) (1 - e_k)

    so a worker with few answers looks like a one-coin worker of the crowd's accuracy, and one
    with many answers keeps its full confusion. EM as in Dawid-Skene; with ``c[w, k, l]`` the
    expected counts (``sum_{i: w_i = w, l_i = l} q_{j_i}(k)``), ``n_w`` the answers of ``w`` and
    ``d_w = sum_k c[w, k, k]`` its expected correct answers, the M-step takes posterior means::

        a   = sum_w d_w / sum_w n_w
        a_w = (d_w + s0 a) / (n_w + s0)
        pi[w, k, l] = (c[w, k, l] + s m_wk[l]) / (sum_l c[w, k, l] + s)

    The class priors are the maximum-likelihood ``p_k ∝ sum_j q_j(k)``. ``objective_history_``
    is the log-likelihood per answer; because the M-step is a posterior mean and not its
    maximiser, EM does not guarantee it never decreases, and the stopping rule (change below
    ``tol``) is the same as Dawid-Skene's. On the twelve shared datasets this model scores
    within 0.2 point of Crowd-Kit's DawidSkene on average (see benchmarks/RESULTS.md); it is
    steadier than plain DS on workers with few answers, not more accurate overall.

    With ``row_strength=0`` it is plain maximum-likelihood Dawid-Skene; as ``row_strength``
    grows it tends to the one-coin model.

    A. P. Dawid and A. M. Skene. Maximum likelihood estimation of observer error-rates using
    the EM algorithm. JRSS-C 28(1):20-28, 1979. Amazon SageMaker Ground Truth, "Annotation
    consolidation: modified Dawid-Skene" (developer guide, sms-annotation-consolidation).

    Parameters:
        row_strength: ``s``, pseudo-answers per confusion row toward the one-coin matrix.
        accuracy_strength: ``s0``, pseudo-answers pulling ``a_w`` toward the crowd accuracy.
        max_iter: maximum number of EM iterations (>= 1).
        tol: stop when the per-answer objective changes by less than this in one iteration.
        callback: called as ``callback(iteration, objective)`` after every iteration.
    """

    def __init__(
        self,
        *,
        row_strength: float = DEFAULT_ROW_STRENGTH,
        accuracy_strength: float = DEFAULT_ACCURACY_STRENGTH,
        max_iter: int = 100,
        tol: float = 1e-5,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol, smoothing=0.0, callback=callback)
        self.row_strength = row_strength
        self.accuracy_strength = accuracy_strength

    def _check_params(self) -> None:
        super()._check_params()
        if not self.row_strength >= 0:
            raise ValueError(f"row_strength must be >= 0, got {self.row_strength!r}")
        if not self.accuracy_strength >= 0:
            raise ValueError(f"accuracy_strength must be >= 0, got {self.accuracy_strength!r}")

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        """Expected counts ``(n_workers, K, K)`` -> shrunk confusion, same shape."""
        return shrunk_confusion(counts, self.row_strength, self.accuracy_strength)


def shrunk_confusion(
    counts: FloatArray, row_strength: float, accuracy_strength: float
) -> FloatArray:
    """Posterior-mean confusion ``(n_workers, K, K)`` from expected counts of the same shape.

    See :class:`HierarchicalDawidSkene` for the formulas. Rows sum to 1 and every cell is at
    least ``EPS`` before normalising, so no answer gets probability 0. A new array is returned.
    """
    _n_workers, k, _ = counts.shape
    if k == 1:
        return np.ones_like(counts)
    correct = np.einsum("wkk->w", counts)
    answers = counts.sum(axis=(1, 2))
    crowd = float(correct.sum() / answers.sum()) if answers.sum() > 0 else 1.0 / k
    accuracy = (correct + accuracy_strength * crowd) / np.maximum(answers + accuracy_strength, EPS)
    accuracy = np.where(answers + accuracy_strength > 0, accuracy, crowd)
    eye = np.eye(k)
    target = accuracy[:, None, None] * eye + ((1.0 - accuracy) / (k - 1))[:, None, None] * (1 - eye)
    shrunk = np.maximum(counts + row_strength * target, EPS)
    return shrunk / shrunk.sum(axis=2, keepdims=True)
