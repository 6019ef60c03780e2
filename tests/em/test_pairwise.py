"""CrowdBradleyTerry: a hand-solved case, reliability, position bias, components, gold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import spearmanr

from crowd.em import CrowdBradleyTerry, PairwiseParams


def test_one_known_comparison_matches_the_hand_solved_posterior_mode() -> None:
    # Gold only: item 0 beat item 1, judged perfectly, no position bias. By symmetry
    # s0 = -s1 = s, and the log-posterior log sigmoid(2s) - s^2 is maximal where
    # s = sigmoid(-2s).
    empty = np.zeros(0, dtype=np.int64)
    model = CrowdBradleyTerry().fit(empty, empty, empty, np.zeros(0), gold=([0], [1], [1.0]))
    s = brentq(lambda v: v - expit(-2 * v), 0, 1)
    np.testing.assert_allclose(model.scores_, [s, -s], atol=1e-5)
    np.testing.assert_array_equal(model.ranks_, [1, 2])
    assert model.position_bias_ == 0.0


def simulated(
    seed: int = 0, n_items: int = 60, n_answers: int = 6000, bias: float = 0.0
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, n_items)
    left = rng.integers(0, n_items, n_answers)
    right = (left + rng.integers(1, n_items, n_answers)) % n_items
    n_workers = 30
    reliability = rng.uniform(0.75, 1.0, n_workers)
    reliability[0] = 0.05  # a worker who (nearly) always answers the opposite
    workers = rng.integers(0, n_workers, n_answers)
    left_wins = rng.random(n_answers) < expit(scores[left] - scores[right] + bias)
    faithful = rng.random(n_answers) < reliability[workers]
    outcomes = np.where(faithful, left_wins, ~left_wins).astype(float)
    return left, right, workers, outcomes, scores, reliability


def test_recovers_ranking_reliability_and_position_bias() -> None:
    left, right, workers, outcomes, scores, reliability = simulated(bias=0.6)
    model = CrowdBradleyTerry().fit(left, right, workers, outcomes)
    assert model.converged_
    assert spearmanr(model.scores_, scores).statistic > 0.95
    assert model.reliability_[0] < 0.2
    assert np.corrcoef(model.reliability_, reliability)[0, 1] > 0.8
    assert model.position_bias_ == pytest.approx(0.6, abs=0.15)
    assert model.n_components_ == 1
    np.testing.assert_array_equal(np.sort(model.ranks_), np.arange(1, 61))
    assert np.all(model.score_std_ > 0)


def test_no_position_bias_when_orientation_is_random() -> None:
    left, right, workers, outcomes, _, _ = simulated(seed=1)
    model = CrowdBradleyTerry().fit(left, right, workers, outcomes)
    assert abs(model.position_bias_) < 0.1
    held = CrowdBradleyTerry(position_bias=False).fit(left, right, workers, outcomes)
    assert held.position_bias_ == 0.0


def test_disconnected_graph_ranks_each_component() -> None:
    # Items 0-1 and 2-4 are never compared across; item 5 never at all.
    left = np.array([0, 0, 2, 3, 2])
    right = np.array([1, 1, 3, 4, 4])
    workers = np.array([0, 1, 0, 1, 2])
    outcomes = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    model = CrowdBradleyTerry().fit(left, right, workers, outcomes, n_items=6)
    assert model.n_components_ == 3
    # Numbered by size: the three items first, then the pair, then the lone item.
    np.testing.assert_array_equal(model.components_, [1, 1, 0, 0, 0, 2])
    np.testing.assert_array_equal(model.ranks_, [1, 2, 1, 2, 3, 1])
    np.testing.assert_array_equal(model.comparisons_, [2, 2, 2, 2, 2, 0])
    assert model.scores_[5] == 0.0 and model.score_std_[5] == pytest.approx(1.0)


def test_few_comparisons_give_finite_scores_and_ties_are_symmetric() -> None:
    model = CrowdBradleyTerry().fit([0], [1], [0], [1.0])
    assert np.all(np.isfinite(model.scores_)) and model.scores_[0] > model.scores_[1]
    tie = CrowdBradleyTerry().fit([0, 1], [1, 0], [0, 1], [0.5, 0.5])
    assert tie.scores_[0] == pytest.approx(tie.scores_[1], abs=1e-6)


def test_gold_comparisons_outweigh_an_unreliable_crowd() -> None:
    # Two workers say 1 beats 0; known comparisons say 0 beats 1.
    model = CrowdBradleyTerry().fit(
        [0, 1], [1, 0], [0, 1], [0.0, 1.0], gold=([0, 0, 0], [1, 1, 1], [1.0, 1.0, 1.0])
    )
    assert model.scores_[0] > model.scores_[1]
    # Below 2/3, the reliability of a worker with no answers under the (2, 1) prior.
    assert model.reliability_.max() < 2 / 3
    idle = CrowdBradleyTerry().fit([0], [1], [0], [1.0], n_workers=2)
    assert idle.reliability_[1] == pytest.approx(2 / 3, abs=1e-4)


def test_empty_input_and_bad_input() -> None:
    empty = np.zeros(0, dtype=np.int64)
    model = CrowdBradleyTerry().fit(empty, empty, empty, np.zeros(0), n_items=3)
    np.testing.assert_array_equal(model.scores_, [0.0, 0.0, 0.0])
    assert model.n_components_ == 3
    frozen = np.array([1.0, 0.0])
    frozen.flags.writeable = False
    CrowdBradleyTerry().fit([0, 1], [1, 2], [0, 0], frozen)
    with pytest.raises(ValueError, match="itself"):
        CrowdBradleyTerry().fit([0], [0], [0], [1.0])
    with pytest.raises(ValueError, match="tie"):
        CrowdBradleyTerry().fit([0], [1], [0], [2.0])
    with pytest.raises(ValueError, match="score_prior"):
        CrowdBradleyTerry(score_prior=0).fit([0], [1], [0], [1.0])


#: How far a warm-started fit's scores may be from a cold fit's, in posterior sds. Both stop
#: by L-BFGS's rule (relative change of the objective below ``tol``, or the scaled gradient
#: below ``GTOL``), which leaves each within about 0.003 sd of the exact maximum on these
#: crowds (measured against a fit run to tol=1e-15); 0.01 leaves room for both errors.
WARM_TOL_SD = 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_start_reaches_the_cold_fits_maximum_in_fewer_iterations(seed: int) -> None:
    # A live run: the previous run saw all but the newest 1% of the answers.
    left, right, workers, outcomes, _, _ = simulated(seed, n_items=300, n_answers=30_000, bias=0.3)
    seen = 29_700
    previous = CrowdBradleyTerry().fit(
        left[:seen], right[:seen], workers[:seen], outcomes[:seen], n_items=300, n_workers=30
    )
    cold = CrowdBradleyTerry().fit(left, right, workers, outcomes)
    params = previous.params_
    kept = (params.scores.copy(), params.reliability.copy())
    warm = CrowdBradleyTerry().fit(left, right, workers, outcomes, init=params)

    assert warm.converged_ and cold.converged_
    assert warm.n_iter_ < cold.n_iter_
    np.testing.assert_array_equal(params.scores, kept[0])  # the start is only read
    np.testing.assert_array_equal(params.reliability, kept[1])
    gap = np.abs(warm.scores_ - cold.scores_) / cold.score_std_
    assert gap.max() <= WARM_TOL_SD
    np.testing.assert_allclose(warm.reliability_, cold.reliability_, atol=1e-3)
    assert warm.position_bias_ == pytest.approx(cold.position_bias_, abs=1e-3)
    assert warm.objective_ == pytest.approx(cold.objective_, rel=1e-8)
    # The same ranking, except between items whose scores are within the tolerance: walked
    # in the warm fit's order, the cold fit's scores never rise by more than that.
    slack = 2 * WARM_TOL_SD * cold.score_std_.max()
    assert np.diff(cold.scores_[np.argsort(warm.ranks_)]).max() <= slack
    np.testing.assert_array_equal(warm.components_, cold.components_)


def test_a_warm_start_fills_unknown_items_and_workers_and_checks_its_shape() -> None:
    left, right, workers, outcomes, _, _ = simulated(3)
    cold = CrowdBradleyTerry().fit(left, right, workers, outcomes)
    # The previous run knew only the first 50 items (the rest NaN) and 20 workers.
    scores = cold.scores_.copy()
    scores[50:] = np.nan
    start = PairwiseParams(scores, cold.position_bias_, cold.reliability_[:20])
    warm = CrowdBradleyTerry().fit(left, right, workers, outcomes, init=start)
    gap = np.abs(warm.scores_ - cold.scores_) / cold.score_std_
    assert gap.max() <= WARM_TOL_SD
    refit = CrowdBradleyTerry().fit(left, right, workers, outcomes, init=cold)
    assert refit.n_iter_ <= 2  # started at the maximum
    with pytest.raises(ValueError, match="n_items"):
        CrowdBradleyTerry().fit([0], [1], [0], [1.0], init=cold)
    with pytest.raises(TypeError, match="PairwiseParams"):
        CrowdBradleyTerry().fit([0], [1], [0], [1.0], init={"scores": [0.0, 1.0]})
