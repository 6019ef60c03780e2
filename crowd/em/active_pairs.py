"""Active pairwise selection: which comparisons to ask for next, given a Bradley-Terry fit.

Pure numerics: item scores and their posterior standard deviations in (for instance
:class:`crowd.em.pairwise.CrowdBradleyTerry`'s ``scores_`` and ``score_std_``), item pairs
out. Nothing here reads or writes anything else, and no argument is modified.

How a pair is scored. Under the Laplace approximation the difference ``d = s_i - s_j`` has
mean ``mu = s_i - s_j`` and variance ``v = sd_i^2 + sd_j^2`` (the diagonal approximation: the
covariance of the two scores is left out). One more comparison of ``i`` with ``j`` carries
Fisher information ``I = p (1 - p)`` about ``d``, with ``p`` the predictive probability that
``i`` wins (the probit approximation ``p = sigmoid(mu / sqrt(1 + pi v / 8))``, which averages
the Bradley-Terry curve over the uncertainty of ``d``). The expected information gain about
``d`` is then ``log(1 + v I) / 2`` nats (a Gaussian whose precision grows from ``1 / v`` to
``1 / v + I``). It is large when the order of ``i`` and ``j`` is in doubt (``mu`` small
against ``sqrt(v)``: ``p`` near one half) and the scores themselves are uncertain (``v``
large); a far apart, well measured pair scores near zero.

Candidates are not all ``n (n - 1) / 2`` pairs: each item is paired with its ``neighbours``
next items in the current ranking (where orders are in doubt) and with ``random_partners``
items drawn at random (which keeps the comparison graph well connected, so that scores far
apart in the ranking stay on one scale). That is ``O(n (neighbours + random_partners))``
candidates.

A batch is chosen greedily: the best pair is taken, the two items' variances shrink by its
expected information (``1 / sd^2 += I``, as the Laplace approximation would after the
answer), the pairs touching those items are scored again, and so on. Scores only fall as
variances shrink, so the scoring is lazy (a pair is re-scored only when it reaches the top
of the queue after one of its items changed): ``O(C log C)`` for ``C`` candidates.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from crowd.em._base import Estimator, FloatArray, IntArray

#: pi / 8, the probit approximation's constant.
_PROBIT = np.pi / 8.0


def pair_gain(
    score_i: ArrayLike,
    score_j: ArrayLike,
    var_i: ArrayLike,
    var_j: ArrayLike,
    reliability: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Expected information gain (nats) about ``s_i - s_j`` of one more comparison of the
    two items, and that comparison's Fisher information ``I`` (see the module docstring).
    Elementwise over broadcastable arrays.

    ``reliability``: the answering worker's probability of reporting the contest's outcome
    faithfully (Crowd-BT's ``eta``, see :class:`crowd.em.pairwise.CrowdBradleyTerry`). The
    answer is then won by ``i`` with ``q = eta p + (1 - eta) (1 - p)``, and carries
    ``I = (2 eta - 1)^2 (p (1 - p))^2 / (q (1 - q))``: ``p (1 - p)`` when ``eta = 1``, and
    with a noisy crowd a lopsided comparison is worth even less against a close one.
    """
    mu = np.asarray(score_i, dtype=np.float64) - np.asarray(score_j, dtype=np.float64)
    v = np.asarray(var_i, dtype=np.float64) + np.asarray(var_j, dtype=np.float64)
    p = expit(mu / np.sqrt(1.0 + _PROBIT * v))
    curvature = p * (1.0 - p)
    if reliability == 1.0:
        info = curvature
    else:
        q = reliability * p + (1.0 - reliability) * (1.0 - p)
        spread = q * (1.0 - q)
        safe = np.where(spread > 0, spread, 1.0)
        info = np.where(spread > 0, (2 * reliability - 1) ** 2 * curvature**2 / safe, 0.0)
    return 0.5 * np.log1p(v * info), info


class ActivePairSelector(Estimator):
    """Picks the next comparisons of a pairwise ranking (see the module docstring).

    Parameters:
        neighbours: candidates per item among the next items in the ranking (>= 1).
        random_partners: candidates per item drawn at random (>= 0).
        reliability: the crowd's typical probability of answering faithfully, in (0.5, 1]
            (see :func:`pair_gain`); 1 scores pairs as for a perfect judge.
        seed: seeds the random candidates and which item of a pair is shown on the left;
            the same inputs and seed give the same batch.
    """

    def __init__(
        self,
        *,
        neighbours: int = 3,
        random_partners: int = 2,
        reliability: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.neighbours = neighbours
        self.random_partners = random_partners
        self.reliability = reliability
        self.seed = seed

    def _check_params(self) -> None:
        if not (isinstance(self.neighbours, int) and self.neighbours >= 1):
            raise ValueError(f"neighbours must be an integer >= 1, got {self.neighbours!r}")
        if not (isinstance(self.random_partners, int) and self.random_partners >= 0):
            raise ValueError(
                f"random_partners must be an integer >= 0, got {self.random_partners!r}"
            )
        if not 0.5 < self.reliability <= 1.0:
            raise ValueError(f"reliability must be in (0.5, 1], got {self.reliability!r}")

    def candidates(self, scores: ArrayLike) -> tuple[IntArray, IntArray]:
        """Distinct candidate pairs ``(i, j)`` with ``i < j``, in a fixed order."""
        self._check_params()
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = s.size
        if n < 2:
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty
        order = np.lexsort((np.arange(n), -s))  # best first; ties by index
        firsts = [order[:-d] for d in range(1, min(self.neighbours, n - 1) + 1)]
        seconds = [order[d:] for d in range(1, min(self.neighbours, n - 1) + 1)]
        if self.random_partners:
            rng = np.random.default_rng(self.seed)
            items = np.repeat(np.arange(n), self.random_partners)
            partners = rng.integers(0, n - 1, size=items.size)
            partners += partners >= items  # any item but itself
            firsts.append(items)
            seconds.append(partners)
        a, b = np.concatenate(firsts), np.concatenate(seconds)
        codes = np.unique(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
        return (codes // n).astype(np.intp), (codes % n).astype(np.intp)

    def select(
        self,
        scores: ArrayLike,
        std: ArrayLike,
        batch: int,
        *,
        pending: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> tuple[IntArray, IntArray]:
        """The ``batch`` comparisons that most reduce uncertainty about the ranking, as
        ``(left, right)`` item indices (fewer when there are fewer candidates).

        Args:
            scores: ``(n_items,)`` fitted scores (log-odds scale).
            std: ``(n_items,)`` their posterior standard deviations (> 0).
            batch: how many pairs (>= 0). No pair appears twice, in either order.
            pending: comparisons ``(left, right)`` already asked for and not answered yet:
                never chosen again, and their expected information is counted first.
        """
        self._check_params()
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        sd = np.asarray(std, dtype=np.float64).reshape(-1)
        if sd.shape != s.shape:
            raise ValueError(f"std must have one entry per item: {sd.shape} vs {s.shape}")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(sd)) and np.all(sd > 0)):
            raise ValueError("scores must be finite and std finite and > 0")
        if not (isinstance(batch, int | np.integer) and batch >= 0):
            raise ValueError(f"batch must be an integer >= 0, got {batch!r}")
        n = s.size
        eta = float(self.reliability)
        empty = np.zeros(0, dtype=np.intp)
        var = sd**2  # a new array: the caller's std is not touched
        first, second = self.candidates(s)
        codes = first.astype(np.int64) * n + second
        if pending is not None:
            p_left = np.asarray(pending[0], dtype=np.intp).reshape(-1)
            p_right = np.asarray(pending[1], dtype=np.intp).reshape(-1)
            if p_left.shape != p_right.shape:
                raise ValueError("pending left and right must have equal length")
            if p_left.size and (
                min(p_left.min(), p_right.min()) < 0 or max(p_left.max(), p_right.max()) >= n
            ):
                raise ValueError(f"pending pairs must index the {n} items")
            _, info = pair_gain(s[p_left], s[p_right], var[p_left], var[p_right], eta)
            precision = 1.0 / var
            np.add.at(precision, p_left, info)
            np.add.at(precision, p_right, info)
            var = 1.0 / precision
            taken = np.minimum(p_left, p_right).astype(np.int64) * n + np.maximum(p_left, p_right)
            keep = ~np.isin(codes, taken)
            first, second, codes = first[keep], second[keep], codes[keep]
        if batch == 0 or first.size == 0:
            return empty, empty
        gain, _ = pair_gain(s[first], s[second], var[first], var[second], eta)
        # Lazy greedy: (negated gain, candidate, selections made when it was scored).
        queue = [(-g, k, 0) for k, g in enumerate(gain.tolist())]
        heapq.heapify(queue)
        touched = np.zeros(n, dtype=np.int64)  # selections made when last updated
        chosen: list[int] = []
        while queue and len(chosen) < batch:
            _, k, when = heapq.heappop(queue)
            i, j = int(first[k]), int(second[k])
            made = len(chosen)
            if touched[i] > when or touched[j] > when:  # scored before an item changed
                g, _ = pair_gain(s[i], s[j], var[i], var[j], eta)
                heapq.heappush(queue, (-float(g), k, made))
                continue
            chosen.append(k)
            _, info = pair_gain(s[i], s[j], var[i], var[j], eta)
            var[i] = 1.0 / (1.0 / var[i] + float(info))
            var[j] = 1.0 / (1.0 / var[j] + float(info))
            touched[i] = touched[j] = made + 1
        picked = np.asarray(chosen, dtype=np.intp)
        a, b = first[picked], second[picked]
        swap = np.random.default_rng([self.seed, 1]).random(picked.size) < 0.5
        return np.where(swap, b, a), np.where(swap, a, b)
