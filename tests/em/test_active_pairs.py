"""Active pairwise selection (crowd/em/active_pairs.py) on cases checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crowd.em.active_pairs import ActivePairSelector, pair_gain


def test_gain_is_the_gaussian_information_of_one_comparison() -> None:
    # Equal scores, each with variance 1: v = 2, p = 1/2, I = 1/4, gain = log(1 + 2/4) / 2.
    gain, info = pair_gain(0.0, 0.0, 1.0, 1.0)
    assert info == pytest.approx(0.25)
    assert gain == pytest.approx(0.5 * math.log(1.5))
    # 4 apart with variance 0.01 each: p = sigmoid(4 / sqrt(1 + pi/8 * 0.02)).
    p = 1 / (1 + math.exp(-4 / math.sqrt(1 + math.pi / 8 * 0.02)))
    gain, info = pair_gain(4.0, 0.0, 0.01, 0.01)
    assert info == pytest.approx(p * (1 - p))
    assert gain == pytest.approx(0.5 * math.log1p(0.02 * p * (1 - p)))


def test_an_uncertain_close_pair_beats_a_settled_far_pair() -> None:
    # Items 0 and 1 are close and uncertain; 2 and 3 far apart and well measured.
    scores = np.array([0.1, 0.0, 3.0, -3.0])
    std = np.array([0.8, 0.8, 0.05, 0.05])
    close, _ = pair_gain(scores[0], scores[1], std[0] ** 2, std[1] ** 2)
    far, _ = pair_gain(scores[2], scores[3], std[2] ** 2, std[3] ** 2)
    assert close > 100 * far
    selector = ActivePairSelector(neighbours=3, random_partners=0)
    left, right = selector.select(scores, std, 1)
    assert {int(left[0]), int(right[0])} == {0, 1}


def test_a_close_pair_beats_an_equally_uncertain_far_one() -> None:
    scores = np.array([2.0, 1.9, -2.0])
    std = np.full(3, 0.5)
    left, right = ActivePairSelector(random_partners=0).select(scores, std, 1)
    assert {int(left[0]), int(right[0])} == {0, 1}


def test_a_batch_spreads_over_items_once_a_pair_is_chosen() -> None:
    # Two equally good pairs (0, 1) and (2, 3); the second pick must not be (0, 1) again nor
    # one of its items with a settled one: the greedy update shrinks 0's and 1's variance.
    scores = np.array([1.0, 1.0, -1.0, -1.0])
    std = np.array([1.0, 1.0, 1.0, 1.0])
    left, right = ActivePairSelector(random_partners=0).select(scores, std, 2)
    assert sorted(sorted((int(a), int(b))) for a, b in zip(left, right, strict=True)) == [
        [0, 1],
        [2, 3],
    ]


def test_no_pair_twice_in_a_batch_and_never_a_pending_one() -> None:
    rng = np.random.default_rng(3)
    scores, std = rng.normal(size=200), rng.uniform(0.2, 1.0, 200)
    pending = (np.array([0, 5]), np.array([1, 9]))
    left, right = ActivePairSelector(seed=4).select(scores, std, 300, pending=pending)
    assert left.size == 300 and np.all(left != right)
    keys = {(min(a, b), max(a, b)) for a, b in zip(left.tolist(), right.tolist(), strict=True)}
    assert len(keys) == 300
    assert not keys & {(0, 1), (5, 9)}


def test_the_same_seed_gives_the_same_batch_and_another_seed_may_not() -> None:
    rng = np.random.default_rng(0)
    scores, std = rng.normal(size=100), rng.uniform(0.2, 1.0, 100)
    first = ActivePairSelector(seed=7).select(scores, std, 40)
    again = ActivePairSelector(seed=7).select(scores, std, 40)
    other = ActivePairSelector(seed=8).select(scores, std, 40)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_candidates_grow_linearly_not_quadratically() -> None:
    selector = ActivePairSelector(neighbours=3, random_partners=2)
    scores = np.random.default_rng(1).normal(size=20_000)
    first, second = selector.candidates(scores)
    assert first.size <= 20_000 * 5 and np.all(first < second)
    # Each item's ranking neighbours are among them.
    order = np.argsort(-scores)
    codes = set((np.minimum(first, second) * 20_000 + np.maximum(first, second)).tolist())
    a, b = order[:-1], order[1:]
    assert set((np.minimum(a, b) * 20_000 + np.maximum(a, b)).tolist()) <= codes


def test_inputs_are_not_modified_and_bad_ones_are_refused() -> None:
    scores, std = np.array([0.0, 0.5, 1.0]), np.array([0.5, 0.5, 0.5])
    pending = (np.array([0]), np.array([1]))
    kept = scores.copy(), std.copy()
    ActivePairSelector().select(scores, std, 2, pending=pending)
    assert np.array_equal(scores, kept[0]) and np.array_equal(std, kept[1])
    with pytest.raises(ValueError, match="std"):
        ActivePairSelector().select(scores, np.array([0.5, 0.0, 0.5]), 1)
    with pytest.raises(ValueError, match="batch"):
        ActivePairSelector().select(scores, std, -1)
    with pytest.raises(ValueError, match="neighbours"):
        ActivePairSelector(neighbours=0).select(scores, std, 1)


def test_fewer_than_two_items_or_a_zero_batch_give_nothing() -> None:
    for scores, batch in ((np.array([0.0]), 3), (np.array([0.0, 1.0]), 0)):
        left, right = ActivePairSelector().select(scores, np.ones(scores.size), batch)
        assert left.size == right.size == 0
    # Two items: one candidate, so a batch of 5 is one pair.
    left, right = ActivePairSelector().select(np.array([0.0, 1.0]), np.ones(2), 5)
    assert left.size == 1


def test_a_noisy_crowd_makes_a_lopsided_comparison_worth_less_against_a_close_one() -> None:
    _, close_perfect = pair_gain(0.0, 0.0, 0.01, 0.01)
    _, far_perfect = pair_gain(2.0, 0.0, 0.01, 0.01)
    _, close_noisy = pair_gain(0.0, 0.0, 0.01, 0.01, reliability=0.8)
    _, far_noisy = pair_gain(2.0, 0.0, 0.01, 0.01, reliability=0.8)
    # At p = 1/2 the information is (2 eta - 1)^2 p (1 - p): 0.36 / 4.
    assert close_noisy == pytest.approx(0.36 * 0.25)
    assert far_noisy / close_noisy < far_perfect / close_perfect
    with pytest.raises(ValueError, match="reliability"):
        ActivePairSelector(reliability=0.5).select(np.zeros(2), np.ones(2), 1)
