"""HierarchicalDawidSkene: hand-computed M-step, limits, invariants, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crowd.em import DawidSkene, HierarchicalDawidSkene, OneCoinDawidSkene
from crowd.em.hierarchical_ds import shrunk_confusion

TASKS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
WORKERS = np.array([0, 1, 2, 0, 1, 2, 0, 1])
LABELS = np.array([0, 0, 1, 1, 1, 1, 0, 1])


def random_crowd(seed: int = 0, n_tasks: int = 300, k: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = rng.integers(0, 15, tasks.size)
    right = rng.random(tasks.size) < 0.75
    labels = np.where(right, truth[tasks], rng.integers(0, k, tasks.size))
    return tasks, workers, labels


def test_shrunk_confusion_matches_hand_computation() -> None:
    # Worker 0: 3 correct of 4 (c = [[2, 1], [0, 1]]); worker 1: 1 answer, correct.
    counts = np.array([[[2.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    out = shrunk_confusion(counts, row_strength=2.0, accuracy_strength=1.0)
    # Crowd accuracy 4/5; a_0 = (3 + 0.8) / 5 = 0.76; a_1 = (1 + 0.8) / 2 = 0.9.
    np.testing.assert_allclose(out[0, 0], [(2 + 1.52) / 5, (1 + 0.48) / 5])
    np.testing.assert_allclose(out[0, 1], [(0 + 0.48) / 3, (1 + 1.52) / 3])
    np.testing.assert_allclose(out[1, 0], [(1 + 1.8) / 3, (0 + 0.2) / 3])
    # A row the worker never saw is exactly its one-coin row.
    np.testing.assert_allclose(out[1, 1], [0.1, 0.9])
    assert counts[0, 0, 0] == 2.0  # input untouched


def test_zero_strength_is_dawid_skene() -> None:
    tasks, workers, labels = random_crowd()
    hds = HierarchicalDawidSkene(row_strength=0.0, accuracy_strength=0.0).fit(
        tasks, workers, labels
    )
    ds = DawidSkene().fit(tasks, workers, labels)
    np.testing.assert_allclose(hds.posteriors_, ds.posteriors_, atol=1e-6)


def test_huge_strength_tends_to_one_coin() -> None:
    tasks, workers, labels = random_crowd(1)
    hds = HierarchicalDawidSkene(row_strength=1e9, accuracy_strength=0.0).fit(
        tasks, workers, labels
    )
    oc = OneCoinDawidSkene().fit(tasks, workers, labels)
    np.testing.assert_array_equal(hds.labels_, oc.labels_)
    np.testing.assert_allclose(hds.worker_accuracy_, oc.worker_accuracy_, atol=1e-3)


def test_invariants_and_no_input_mutation() -> None:
    tasks, workers, labels = random_crowd(2)
    copies = [a.copy() for a in (tasks, workers, labels)]
    est = HierarchicalDawidSkene().fit(tasks, workers, labels)
    for before, after in zip(copies, (tasks, workers, labels), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(est.posteriors_.sum(axis=1), 1.0)
    np.testing.assert_allclose(est.confusion_.sum(axis=2), 1.0)
    assert np.all(est.confusion_ > 0)
    np.testing.assert_array_equal(est.labels_, est.posteriors_.argmax(axis=1))
    assert est.converged_ and est.n_iter_ == len(est.objective_history_)
    truth_agreement = np.mean(est.labels_ == DawidSkene().fit_predict(tasks, workers, labels))
    assert truth_agreement > 0.95


def test_recovers_truth_on_a_clean_crowd() -> None:
    tasks, workers, labels = random_crowd(3)
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 300)  # same draw as random_crowd(3)
    accuracy = np.mean(HierarchicalDawidSkene().fit_predict(tasks, workers, labels) == truth)
    assert accuracy > 0.9


def test_single_worker_one_answer_and_unseen_class() -> None:
    est = HierarchicalDawidSkene().fit([0], [0], [1], n_classes=3)
    assert est.posteriors_.shape == (1, 3)
    assert est.labels_.tolist() == [1]
    np.testing.assert_allclose(est.confusion_.sum(axis=2), 1.0)


def test_empty_input() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = HierarchicalDawidSkene().fit(
            np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=int)
        )
    assert est.posteriors_.shape[0] == 0
    assert est.labels_.shape == (0,)


def test_gold_is_clamped() -> None:
    est = HierarchicalDawidSkene().fit(TASKS, WORKERS, LABELS, gold={2: 0})
    np.testing.assert_allclose(est.posteriors_[2], [1.0, 0.0])
    assert est.labels_[2] == 0


def test_rejects_negative_strength() -> None:
    with pytest.raises(ValueError, match="row_strength"):
        HierarchicalDawidSkene(row_strength=-1).fit(TASKS, WORKERS, LABELS)
    with pytest.raises(ValueError, match="accuracy_strength"):
        HierarchicalDawidSkene(accuracy_strength=-1).fit(TASKS, WORKERS, LABELS)
