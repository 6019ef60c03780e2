"""Bradley-Terry for crowds: item scores from pairwise answers, with worker reliability and
a position bias, fitted jointly by maximum a posteriori."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit
from threadpoolctl import threadpool_limits

from crowd.em._base import (
    ConvergenceWarning,
    Estimator,
    FloatArray,
    IntArray,
    as_index_array,
    check_iterations,
    count,
    weighted_sum,
)

#: Known comparisons ``(left_items, right_items, outcomes)``, outcomes as in ``fit``.
PairwiseGold = tuple[ArrayLike, ArrayLike, ArrayLike]

#: Every worker starts at reliability 0.8 (log-odds 4): off the saddle at 0.5, where scores get
#: no gradient, and on the side of the faithful solution.
START_LOG_ODDS = float(np.log(4.0))

#: L-BFGS also stops once every component of the scaled gradient of the per-answer objective
#: is below this. Scaled, a parameter's curvature is about its answers' count, so per answer
#: the gradient is about (distance to the maximum in posterior sds) / n_answers: at 1e-8 a
#: fit on 1M answers could stop 0.06 sd short (measured for a warm start), at 1e-9 the
#: relative-change rule (``tol``) stops it first, 0.003 sd (cold) to 0.012 sd (warm) away.
GTOL = 1e-9

#: A warm start's reliabilities are clipped to [EDGE, 1 - EDGE] before their log-odds is taken.
EDGE = 1e-6


@dataclass(frozen=True)
class PairwiseParams:
    """Parameters of a :class:`CrowdBradleyTerry` fit, e.g. to warm-start a later fit.

    Attributes:
        scores: ``(n_items,)`` item scores; NaN for an item with no estimate (it starts at 0).
        position_bias: the left side's advantage, a log-odds.
        reliability: ``(n_workers,)`` probabilities of answering faithfully; NaN for a
            worker with no estimate (it starts at 0.8, as in a cold fit).
    """

    scores: FloatArray
    position_bias: float
    reliability: FloatArray


class CrowdBradleyTerry(Estimator):
    r"""Bradley-Terry scores with per-worker reliability and a shared position bias.

    Model (Crowd-BT with a position term). Item ``a`` has a score ``s_a``. When worker ``w``
    compares ``left`` with ``right`` it is *faithful* with probability ``eta_w`` (its
    ``reliability_``) and then reports the outcome of a Bradley-Terry contest in which the
    left item gets a bonus ``g`` (``position_bias_``, a log-odds)::

        P(left wins | faithful) = sigmoid(s_left - s_right + g)

    otherwise it reports the opposite outcome. So ``P(answer) = eta_w f + (1 - eta_w) (1 - f)``
    with ``f`` the faithful probability of that answer. A tie (outcome 0.5) counts as two
    answers of weight 1/2, one won by each side. Priors: ``s_a ~ N(0, score_prior)``
    and ``g ~ N(0, score_prior)``, which keep scores finite for an item that won (or lost)
    every comparison and fix each component's location; ``eta_w`` gets
    ``reliability_prior = (a, b)`` pseudo-answers, ``a`` faithful and ``b`` flipped (the
    log-density ``a log eta + b log(1 - eta)``), so a worker with few answers starts better
    than chance and the flipped solution (every score negated, every worker a liar) is ruled
    out. Known comparisons (``gold``) are answers of a perfectly reliable judge with no
    position bias.

    Fitting maximises the log-posterior per answer (``objective_``) over scores, bias and
    worker log-odds jointly with L-BFGS: the marginal likelihood is smooth and its gradient is
    three ``bincount`` passes over the answers, which converges in fewer passes than EM over the
    faithfulness indicators (both climb the same posterior, to a local maximum). ``n_iter_`` and ``converged_``
    report the optimiser.

    Ranking is only meaningful within a connected component of the comparison graph: items
    never compared (directly or through others) have no common scale, and the prior simply
    centres each component at 0. ``components_`` numbers the components (0 is the largest)
    and ``ranks_`` ranks within each (1 = highest score). ``score_std_`` is the Laplace
    approximation's posterior standard deviation from the diagonal of the Hessian (it ignores
    covariances, so it is a little too narrow for items compared with uncertain ones).

    A warm start (``fit``'s ``init``: the previous fit's :class:`PairwiseParams`, or a fitted
    estimator) starts L-BFGS there instead of at scores 0, bias 0 and reliability 0.8. It
    climbs the same posterior to the same stopping rule, so when the start lies in the basin
    of the cold fit's maximum (the earlier fit saw a subset of these answers) both stop at that
    maximum up to the optimiser's tolerance: a relative change of the per-answer objective
    below ``tol``, or a scaled gradient below :data:`GTOL`. On 1M answers (5,000 items, 1,000
    workers) a cold fit stopped within 0.003 posterior sd of the exact maximum (every score),
    a fit warm-started from 999,000 of the answers within 0.012 sd, in 8 iterations instead
    of 42. Ranks can differ between the two only among items whose scores are that close.

    Memory is ``O(n_answers + n_items + n_workers)``.

    X. Chen, P. N. Bennett, K. Collins-Thompson and E. Horvitz. Pairwise ranking aggregation in
    a crowdsourced setting. *WSDM* 2013, https://doi.org/10.1145/2433396.2433420 (Crowd-BT);
    R. A. Bradley and M. E. Terry, *Biometrika* 39(3/4):324-345, 1952.

    Parameters:
        score_prior: variance of the Gaussian prior on scores and on the position bias (> 0).
        reliability_prior: pseudo-answers ``(faithful, flipped)`` per worker (each >= 0).
        position_bias: fit the shared position bias; ``False`` holds it at 0.
        max_iter: maximum L-BFGS iterations.
        tol: stop when the relative change of the objective falls below this (or the
            scaled gradient below :data:`GTOL`).
    """

    scores_: FloatArray
    score_std_: FloatArray
    reliability_: FloatArray
    position_bias_: float
    components_: IntArray
    n_components_: int
    ranks_: IntArray
    comparisons_: IntArray
    objective_: float
    n_iter_: int
    converged_: bool

    def __init__(
        self,
        *,
        score_prior: float = 1.0,
        reliability_prior: tuple[float, float] = (2.0, 1.0),
        position_bias: bool = True,
        max_iter: int = 500,
        tol: float = 1e-9,
    ) -> None:
        self.score_prior = score_prior
        self.reliability_prior = reliability_prior
        self.position_bias = position_bias
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> tuple[float, float, float]:
        if not self.score_prior > 0:
            raise ValueError(f"score_prior must be > 0, got {self.score_prior!r}")
        a, b = self.reliability_prior
        if not (a >= 0 and b >= 0):
            raise ValueError(f"reliability_prior must be two numbers >= 0, got {(a, b)!r}")
        check_iterations(self.max_iter, self.tol)
        return 1.0 / self.score_prior, float(a), float(b)

    def fit(
        self,
        left: ArrayLike,
        right: ArrayLike,
        workers: ArrayLike,
        outcomes: ArrayLike,
        *,
        n_items: int | None = None,
        n_workers: int | None = None,
        gold: PairwiseGold | None = None,
        init: Any = None,
    ) -> Self:
        """Fit on answers ``(left[i], right[i], workers[i], outcomes[i])``; returns ``self``.

        Args:
            left, right: ``(n_answers,)`` item indices; an item is never compared with itself.
            workers: ``(n_answers,)`` worker indices.
            outcomes: ``(n_answers,)`` 1 when the left item won, 0 when the right one did,
                0.5 for a tie.
            n_items, n_workers: sizes; default to the largest index plus one.
            gold: known comparisons ``(left, right, outcomes)``, same encodings.
            init: :class:`PairwiseParams` or a fitted :class:`CrowdBradleyTerry` to warm-start
                from (see the class docstring); items and workers beyond its arrays, or NaN
                in them, start as in a cold fit. Not modified.
        """
        precision, a, b = self._check_params()
        lt, rt, wk, y = _check_pairs(left, right, outcomes, workers)
        g_left, g_right, g_y = _parse_gold(gold)
        both = np.concatenate([lt, rt, g_left, g_right])
        n = count(n_items, both, "n_items")
        n_w = count(n_workers, wk, "n_workers")
        rows = _Contests(lt, rt, y, wk, g_left, g_right, g_y, n_w)
        per_answer = 1.0 / max(y.size + g_y.size, 1)
        fit_bias = self.position_bias and y.size > 0

        # Parameters: n scores, the bias, then n_w worker log-odds of being faithful.
        def negative_objective(theta: FloatArray) -> tuple[float, FloatArray]:
            scores, bias, rho = theta[:n], theta[n], theta[n + 1 :]
            eta = expit(rho)
            faithful = np.append(eta, 1.0)[rows.judge]
            diff = scores[rows.winner] - scores[rows.loser]
            if fit_bias:
                diff += bias * rows.side
            f = expit(diff)
            twice = 2 * faithful - 1
            likelihood = (1 - faithful) + twice * f
            d_diff = rows.weight * twice * f * (1 - f) / likelihood
            d_scores = weighted_sum(rows.winner, d_diff, n) - weighted_sum(rows.loser, d_diff, n)
            d_scores -= precision * scores
            d_faithful = rows.weight * (2 * f - 1) / likelihood
            d_rho = weighted_sum(rows.judge, d_faithful, n_w + 1)[:n_w] * eta * (1 - eta)
            d_rho += a * (1 - eta) - b * eta
            d_bias = float(d_diff @ rows.side) - precision * bias if fit_bias else 0.0
            value = (
                rows.weight @ np.log(likelihood)
                - 0.5 * precision * (scores @ scores + bias * bias)
                + a * log_expit(rho).sum()
                + b * log_expit(-rho).sum()
            )
            gradient = np.concatenate([d_scores, [d_bias], d_rho])
            return -value * per_answer, -gradient * per_answer

        # L-BFGS runs on theta * scale, with scale ~ the square root of each parameter's
        # curvature (its weight of evidence), so an item seen 600 times and one seen twice
        # move at the same pace: several times fewer iterations than on theta itself.
        evidence = weighted_sum(rows.winner, rows.weight, n) + weighted_sum(
            rows.loser, rows.weight, n
        )
        scale = np.sqrt(
            np.concatenate(
                [
                    0.25 * evidence + precision,
                    [0.25 * y.size + precision],
                    0.25 * weighted_sum(wk, np.ones(y.size), n_w) + a + b + 1.0,
                ]
            )
        )

        def scaled(z: FloatArray) -> tuple[float, FloatArray]:
            value, gradient = negative_objective(z / scale)
            return value, gradient / scale

        start = _start(init, n, n_w, fit_bias)
        # One BLAS thread: L-BFGS-B's steps are small vector operations, which a threaded
        # BLAS spreads over threads that spin-wait for each other. On 2 cores shared with
        # PostgreSQL and the API that made every iteration milliseconds (a 10,000-answer fit
        # 0.65 s instead of 0.10 s here; benchmarks/types.py found the same for its peers).
        with threadpool_limits(limits=1, user_api="blas"):
            result = minimize(
                scaled,
                start * scale,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": GTOL},
            )
        theta = result.x / scale
        self.converged_ = bool(result.success)
        if not self.converged_:
            warnings.warn(
                f"CrowdBradleyTerry stopped before converging ({result.message}); "
                "raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        scores = theta[:n].copy()
        self.scores_ = scores
        self.position_bias_ = float(theta[n])
        self.reliability_ = expit(theta[n + 1 :])
        self.objective_ = -float(result.fun)
        self.n_iter_ = int(result.nit)
        self.score_std_ = _laplace_std(scores, rows.winner, rows.loser, rows.weight, precision)
        self.comparisons_ = np.bincount(np.concatenate([lt, rt]), minlength=n).astype(np.intp)
        self.components_, self.n_components_ = _components(rows.winner, rows.loser, n)
        self.ranks_ = _ranks(scores, self.components_)
        return self

    @property
    def params_(self) -> PairwiseParams:
        """The fitted parameters as :class:`PairwiseParams`, for warm-starting a later fit."""
        return PairwiseParams(self.scores_, self.position_bias_, self.reliability_)

    def fit_predict(
        self,
        left: ArrayLike,
        right: ArrayLike,
        workers: ArrayLike,
        outcomes: ArrayLike,
        *,
        n_items: int | None = None,
        n_workers: int | None = None,
        gold: PairwiseGold | None = None,
    ) -> FloatArray:
        """Fit, then return ``scores_``: shape ``(n_items,)``."""
        self.fit(left, right, workers, outcomes, n_items=n_items, n_workers=n_workers, gold=gold)
        return self.scores_


def _start(init: Any, n_items: int, n_workers: int, fit_bias: bool) -> FloatArray:
    """L-BFGS's starting point ``(scores, bias, worker log-odds)``: a cold start, overlaid
    with ``init``'s finite estimates (a new array; ``init`` is only read)."""
    start = np.zeros(n_items + 1 + n_workers)
    start[n_items + 1 :] = START_LOG_ODDS
    if init is None:
        return start
    if isinstance(init, CrowdBradleyTerry):
        init = init.params_
    if not isinstance(init, PairwiseParams):
        raise TypeError(
            f"init must be PairwiseParams or a fitted CrowdBradleyTerry, got {type(init).__name__}"
        )
    scores = np.asarray(init.scores, dtype=np.float64).reshape(-1)
    reliability = np.asarray(init.reliability, dtype=np.float64).reshape(-1)
    if scores.size > n_items or reliability.size > n_workers:
        raise ValueError(
            f"init describes {scores.size} items and {reliability.size} workers but"
            f" n_items={n_items}, n_workers={n_workers}; pass the sizes to keep the earlier"
            " fit's indices"
        )
    known = np.isfinite(scores)
    start[: scores.size][known] = scores[known]
    if fit_bias and np.isfinite(init.position_bias):
        start[n_items] = float(init.position_bias)
    known = np.isfinite(reliability)
    eta = np.clip(reliability[known], EDGE, 1 - EDGE)
    start[n_items + 1 : n_items + 1 + reliability.size][known] = np.log(eta) - np.log1p(-eta)
    return start


class _Contests:
    """Answers and known comparisons as weighted contests ``winner`` beat ``loser``.

    A tie becomes two half-weight contests, one won by each side. ``side`` is +1 when the
    winner was shown on the left, -1 on the right, 0 for a known comparison (no position).
    ``judge`` is the worker, or ``n_workers`` (a judge who is always faithful) for gold.
    """

    def __init__(
        self,
        left: IntArray,
        right: IntArray,
        outcomes: FloatArray,
        workers: IntArray,
        gold_left: IntArray,
        gold_right: IntArray,
        gold_outcomes: FloatArray,
        n_workers: int,
    ) -> None:
        tie = outcomes == 0.5
        gold_tie = gold_outcomes == 0.5
        left = np.concatenate([left, left[tie], gold_left, gold_left[gold_tie]])
        right = np.concatenate([right, right[tie], gold_right, gold_right[gold_tie]])
        left_won = np.concatenate(
            [outcomes >= 0.5, np.zeros(tie.sum(), bool), gold_outcomes >= 0.5]
        )
        left_won = np.concatenate([left_won, np.zeros(gold_tie.sum(), bool)])
        n_answer_rows = outcomes.size + int(tie.sum())
        self.winner: IntArray = np.where(left_won, left, right)
        self.loser: IntArray = np.where(left_won, right, left)
        self.side: FloatArray = np.where(left_won, 1.0, -1.0)
        self.side[n_answer_rows:] = 0.0
        self.weight: FloatArray = np.where(
            np.concatenate([tie, tie[tie], gold_tie, gold_tie[gold_tie]]), 0.5, 1.0
        )
        self.judge: IntArray = np.concatenate(
            [
                workers,
                workers[tie],
                np.full(gold_outcomes.size + int(gold_tie.sum()), n_workers, dtype=np.intp),
            ]
        )


def _check_outcomes(values: ArrayLike, size: int, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (size,):
        raise ValueError(f"{name} must have one entry per comparison, got shape {array.shape}")
    if not np.all(np.isin(array, (0.0, 0.5, 1.0))):
        raise ValueError(f"{name} must be 1 (left won), 0 (right won) or 0.5 (a tie)")
    return array


def _check_pairs(
    left: ArrayLike, right: ArrayLike, outcomes: ArrayLike, workers: ArrayLike | None = None
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    lt = as_index_array(left, "left")
    rt = as_index_array(right, "right")
    wk = as_index_array(workers, "workers") if workers is not None else lt
    if not lt.shape == rt.shape == wk.shape:
        raise ValueError(
            f"left, right and workers must have equal length, got {lt.size}, {rt.size}, {wk.size}"
        )
    if np.any(lt == rt):
        raise ValueError("an item cannot be compared with itself (left == right)")
    return lt, rt, wk, _check_outcomes(outcomes, lt.size, "outcomes")


def _parse_gold(gold: PairwiseGold | None) -> tuple[IntArray, IntArray, FloatArray]:
    if gold is None:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    left, right, _, y = _check_pairs(gold[0], gold[1], gold[2])
    return left, right, y


def _laplace_std(
    scores: FloatArray, left: IntArray, right: IntArray, weight: FloatArray, precision: float
) -> FloatArray:
    """Posterior sd per score from the diagonal of the Bradley-Terry Hessian plus the prior."""
    p = expit(scores[left] - scores[right])
    info = weight * p * (1 - p)
    n = scores.size
    diagonal = weighted_sum(left, info, n) + weighted_sum(right, info, n)
    return np.asarray(1.0 / np.sqrt(diagonal + precision))


def _components(left: IntArray, right: IntArray, n: int) -> tuple[IntArray, int]:
    """Connected components of the comparison graph, numbered by decreasing size."""
    if n == 0:
        return np.zeros(0, dtype=np.intp), 0
    graph = sp.coo_matrix((np.ones(left.size), (left, right)), shape=(n, n))
    n_components, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=n_components)
    order = np.lexsort((np.arange(n_components), -sizes))
    renumber = np.empty(n_components, dtype=np.intp)
    renumber[order] = np.arange(n_components)
    return renumber[labels], int(n_components)


def _ranks(scores: FloatArray, components: IntArray) -> IntArray:
    """Rank within each component, 1 = highest score; exact ties by lower item index."""
    n = scores.size
    order = np.lexsort((np.arange(n), -scores, components))
    ranks = np.empty(n, dtype=np.intp)
    sorted_components = components[order]
    starts = np.flatnonzero(np.r_[True, sorted_components[1:] != sorted_components[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n])) if n else starts
    ranks[order] = np.arange(n) - first + 1
    return ranks
