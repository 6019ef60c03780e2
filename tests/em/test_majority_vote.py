"""MajorityVote: vote shares, weights, ties, gold and unanswered tasks."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import MajorityVote

TASKS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
WORKERS = np.array([0, 1, 2, 0, 1, 0, 0, 1, 2])
LABELS = np.array([1, 1, 0, 0, 2, 2, 2, 1, 1])


def test_posteriors_are_vote_shares_counting_every_row() -> None:
    mv = MajorityVote().fit(TASKS, WORKERS, LABELS, n_tasks=4)
    np.testing.assert_allclose(mv.posteriors_[0], [1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(mv.posteriors_[1], [1 / 2, 0, 1 / 2])
    # Worker 0 answered task 2 twice: both rows vote, so "2" ties with "1" at 2 votes each.
    np.testing.assert_allclose(mv.posteriors_[2], [0, 1 / 2, 1 / 2])
    np.testing.assert_array_equal(mv.labels_[:3], [1, 0, 1])  # ties -> lowest class
    observed = mv.posteriors_[:3].mean(axis=0)
    np.testing.assert_allclose(mv.priors_, observed)
    np.testing.assert_allclose(mv.posteriors_[3], observed)  # unanswered -> priors
    assert mv.labels_[3] == 1
    np.testing.assert_allclose(mv.confusion_.sum(axis=2), 1.0)
    # Worker 1 said 1, 2, 1: shares 2/3, 1/2, 1/2.
    assert mv.worker_accuracy_[1] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert mv.n_iter_ == 0 and mv.converged_


def test_weights_change_the_winner() -> None:
    mv = MajorityVote(weights=[1.0, 1.0, 5.0]).fit(TASKS, WORKERS, LABELS)
    assert mv.labels_[0] == 0
    np.testing.assert_allclose(mv.posteriors_[0], [5 / 7, 2 / 7, 0])
    with pytest.raises(ValueError, match="non-negative"):
        MajorityVote(weights=[1.0, -1.0, 1.0]).fit(TASKS, WORKERS, LABELS)


def test_zero_weight_voters_fall_back_to_priors() -> None:
    mv = MajorityVote(weights=[1.0, 1.0, 0.0]).fit([0, 1], [0, 2], [1, 0], n_classes=2)
    np.testing.assert_allclose(mv.posteriors_[1], mv.priors_)
    np.testing.assert_allclose(mv.priors_, [0, 1])


def test_gold_is_clamped() -> None:
    mv = MajorityVote().fit(TASKS, WORKERS, LABELS, gold={0: 2})
    np.testing.assert_array_equal(mv.posteriors_[0], [0, 0, 1])
    assert mv.labels_[0] == 2


def test_empty_and_readonly_inputs() -> None:
    empty = np.zeros(0, dtype=np.int64)
    mv = MajorityVote().fit(empty, empty, empty, n_tasks=2, n_classes=3)
    np.testing.assert_allclose(mv.posteriors_, np.full((2, 3), 1 / 3))
    arrays = [TASKS.copy(), WORKERS.copy(), LABELS.copy()]
    for array in arrays:
        array.setflags(write=False)
    MajorityVote().fit(*arrays)
    np.testing.assert_array_equal(arrays[2], LABELS)
