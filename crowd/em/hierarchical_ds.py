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

#: The shrinkage targets: ``"one-coin"`` (a wrong answer is uniform over the other classes) and
#: ``"guess"`` (MACE's worker: knows the answer, or guesses from a distribution of its own).
TARGETS = ("one-coin", "guess")

#: The default target, and so ``auto``'s without gold. ``"guess"`` scored +0.3 point over
#: ``"one-coin"`` on the twelve shared crowds (no crowd down by more than 0.5 point), +0.26 on
#: them thinned to 3 answers per task (zencrowd_us -1.0) and -0.09 on fifteen seeded synthetic
#: ones (benchmarks/RESULTS.md, issue 15's third pass). It stays opt-in until it is checked on
#: crowds that did not take part in choosing it.
DEFAULT_TARGET = "one-coin"

#: Fixed-point steps of MACE's EM on the expected counts per M-step (``target="guess"``). A
#: fixed number, from a fixed start, so a fit is a deterministic function of its answers.
GUESS_STEPS = 10


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

    ``target="guess"`` replaces the one-coin target by MACE's worker model: worker ``w`` knows
    the answer with probability ``b_w`` and otherwise guesses label ``l`` with probability
    ``g_w[l]``, whatever the class, so ``m_wk = b_w e_k + (1 - b_w) g_w``. A worker who, when
    unsure, says the same label is then expected to over-use it even on tasks of other
    classes, and its votes for that label count for less. The one-coin target is the special
    case of uniform guesses. ``b_w`` and ``g_w`` are the posterior means (``s0``
    pseudo-answers toward the crowd's) after :data:`GUESS_STEPS` fixed-point steps of MACE's
    EM on the expected counts ``c[w]``: each cell is split into known and guessed answers in
    the ratio ``b_w [k = l] : (1 - b_w) g_w[l]``. Not the default; measured in
    benchmarks/RESULTS.md (issue 15, "third pass").

    A. P. Dawid and A. M. Skene. Maximum likelihood estimation of observer error-rates using
    the EM algorithm. JRSS-C 28(1):20-28, 1979. Amazon SageMaker Ground Truth, "Annotation
    consolidation: modified Dawid-Skene" (developer guide, sms-annotation-consolidation).
    D. Hovy, T. Berg-Kirkpatrick, A. Vaswani and E. Hovy. Learning whom to trust with MACE.
    NAACL-HLT 2013, 1120-1130 (the ``"guess"`` target).

    Parameters:
        row_strength: ``s``, pseudo-answers per confusion row toward the target matrix.
        accuracy_strength: ``s0``, pseudo-answers pulling ``a_w`` (or ``b_w`` and ``g_w``)
            toward the crowd's.
        target: ``"one-coin"`` (the default, ``DEFAULT_TARGET``) or ``"guess"``, the matrix
            each row is shrunk toward (see above).
        max_iter: maximum number of EM iterations (>= 1).
        tol: stop when the per-answer objective changes by less than this in one iteration.
        callback: called as ``callback(iteration, objective)`` after every iteration.
    """

    def __init__(
        self,
        *,
        row_strength: float = DEFAULT_ROW_STRENGTH,
        accuracy_strength: float = DEFAULT_ACCURACY_STRENGTH,
        target: str = DEFAULT_TARGET,
        max_iter: int = 100,
        tol: float = 1e-5,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol, smoothing=0.0, callback=callback)
        self.row_strength = row_strength
        self.accuracy_strength = accuracy_strength
        self.target = target

    def _check_params(self) -> None:
        super()._check_params()
        if not self.row_strength >= 0:
            raise ValueError(f"row_strength must be >= 0, got {self.row_strength!r}")
        if not self.accuracy_strength >= 0:
            raise ValueError(f"accuracy_strength must be >= 0, got {self.accuracy_strength!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")

    def _m_step(self, counts: FloatArray, matrix: AnswerMatrix) -> FloatArray:
        """Expected counts ``(n_workers, K, K)`` -> shrunk confusion, same shape."""
        return shrunk_confusion(
            counts, self.row_strength, self.accuracy_strength, target=self.target
        )


def shrunk_confusion(
    counts: FloatArray,
    row_strength: float,
    accuracy_strength: float,
    *,
    target: str = "one-coin",
) -> FloatArray:
    """Posterior-mean confusion ``(n_workers, K, K)`` from expected counts of the same shape.

    See :class:`HierarchicalDawidSkene` for the formulas and ``target``. Rows sum to 1 and
    every cell is at least ``EPS`` before normalising, so no answer gets probability 0. A new
    array is returned.
    """
    _n_workers, k, _ = counts.shape
    if k == 1:
        return np.ones_like(counts)
    make_target = guess_target if target == "guess" else one_coin_target
    shrunk = np.maximum(counts + row_strength * make_target(counts, accuracy_strength), EPS)
    return shrunk / shrunk.sum(axis=2, keepdims=True)


def one_coin_target(counts: FloatArray, strength: float) -> FloatArray:
    """The one-coin confusion ``a_w e_k + (1 - a_w) / (K - 1) (1 - e_k)`` per worker,
    ``(n_workers, K, K)``, ``K >= 2``.

    ``a_w`` is the worker's expected accuracy in ``counts`` with ``strength`` pseudo-answers
    toward the crowd's; a worker with no weight at all gets the crowd's. A new array.
    """
    _n_workers, k, _ = counts.shape
    correct = np.einsum("wkk->w", counts)
    answers = counts.sum(axis=(1, 2))
    crowd = float(correct.sum() / answers.sum()) if answers.sum() > 0 else 1.0 / k
    accuracy = (correct + strength * crowd) / np.maximum(answers + strength, EPS)
    accuracy = np.where(answers + strength > 0, accuracy, crowd)
    eye = np.eye(k)
    return np.asarray(
        accuracy[:, None, None] * eye + ((1.0 - accuracy) / (k - 1))[:, None, None] * (1 - eye)
    )


def guess_target(counts: FloatArray, strength: float) -> FloatArray:
    """MACE's confusion ``b_w e_k + (1 - b_w) g_w`` per worker, ``(n_workers, K, K)``.

    ``counts``: expected counts ``c[w, k, l]``. Starting from each worker's chance-corrected
    accuracy and its label shares, :data:`GUESS_STEPS` steps split every cell into known and
    guessed answers (``b_w [k = l] : (1 - b_w) g_w[l]``) and re-estimate ``b_w`` and ``g_w`` as
    posterior means with ``strength`` pseudo-answers toward the crowd's known share and guess
    distribution. Workers without answers get the crowd's. Rows sum to 1; a new array.
    """
    _n_workers, k, _ = counts.shape
    eye = np.eye(k)
    answers = counts.sum(axis=(1, 2))
    used = counts.sum(axis=1)  # (n_workers, K): how often each worker gave each label
    total = float(answers.sum())
    if total <= 0:
        return np.broadcast_to(np.full(k, 1.0 / k), counts.shape).copy()
    crowd_used = used.sum(axis=0) / total
    weight = np.maximum(answers + strength, EPS)
    guess = (used + strength * crowd_used) / weight[:, None]
    guess[answers + strength <= 0] = crowd_used
    share = (np.einsum("wkk->w", counts) + strength * np.trace(counts.sum(axis=0)) / total) / weight
    known = np.clip((share - 1.0 / k) / (1.0 - 1.0 / k), 0.05, 0.95)
    diagonal = np.einsum("wkk->wk", counts)  # only cells with l = k can be known answers
    for _ in range(GUESS_STEPS):
        knew = (
            diagonal
            * known[:, None]
            / np.maximum(known[:, None] + (1.0 - known)[:, None] * guess, EPS)
        )
        guessed = used - knew  # (n_workers, K): guessed answers per label
        knew_w = knew.sum(axis=1)
        crowd_known = float(knew_w.sum()) / total
        crowd_guess = guessed.sum(axis=0)
        crowd_guess = (
            crowd_guess / crowd_guess.sum() if crowd_guess.sum() > 0 else np.full(k, 1.0 / k)
        )
        known = (knew_w + strength * crowd_known) / weight
        known[answers + strength <= 0] = crowd_known
        guess_weight = guessed.sum(axis=1) + strength
        guess = (guessed + strength * crowd_guess) / np.maximum(guess_weight, EPS)[:, None]
        guess[guess_weight <= 0] = crowd_guess
    return known[:, None, None] * eye + (1.0 - known)[:, None, None] * guess[:, None, :]
