"""HierarchicalDawidSkene: hand-computed M-step, limits, invariants, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crowd.em import DawidSkene, HierarchicalDawidSkene, OneCoinDawidSkene
from crowd.em.hierarchical_ds import guess_target, shrunk_confusion

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


def guessing_crowd(seed: int, n_tasks: int = 600, k: int = 3) -> tuple[np.ndarray, ...]:
    """300 workers with about 10 answers each; half know the answer 75% of the time and
    otherwise answer at random, the other half know it 50% of the time and otherwise say 0."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = rng.integers(0, 300, tasks.size)
    guesser = workers >= 150
    knows = rng.random(tasks.size) < np.where(guesser, 0.5, 0.75)
    labels = np.where(knows, truth[tasks], np.where(guesser, 0, rng.integers(0, k, tasks.size)))
    return tasks, workers, labels, truth


def test_guess_target_sees_a_worker_who_guesses_one_label() -> None:
    # Worker 0 says 0 on every task (8 of class 0, 4 of class 1); worker 1 is always right.
    counts = np.array([[[8.0, 0.0], [4.0, 0.0]], [[6.0, 0.0], [0.0, 6.0]]])
    before = counts.copy()
    target = guess_target(counts, strength=1.0)
    np.testing.assert_allclose(target.sum(axis=2), 1.0)
    assert target[0, 1, 0] > 0.5  # on a class-1 task worker 0 is expected to say 0
    assert target[1, 1, 1] > 0.8 and target[1, 0, 0] > 0.8
    shrunk = shrunk_confusion(counts, 3.0, 1.0, target="guess")
    one_coin = shrunk_confusion(counts, 3.0, 1.0)
    # So its "0" is weaker evidence of class 0 than the one-coin target makes it.
    assert shrunk[0, 0, 0] / shrunk[0, 1, 0] < one_coin[0, 0, 0] / one_coin[0, 1, 0]
    np.testing.assert_array_equal(counts, before)


def test_guess_target_with_uniform_guesses_is_one_coin() -> None:
    # Every worker spreads its errors evenly over 3 balanced classes: guesses come out uniform.
    accuracy = np.array([0.9, 0.6, 0.4])
    eye = np.eye(3)
    one_coin = accuracy[:, None, None] * eye + ((1 - accuracy) / 2)[:, None, None] * (1 - eye)
    target = guess_target(10.0 * one_coin, strength=0.0)
    np.testing.assert_allclose(target, one_coin, atol=1e-6)


def test_guess_target_beats_one_coin_when_unsure_workers_say_one_label() -> None:
    tasks, workers, labels, truth = guessing_crowd(0)
    one_coin = HierarchicalDawidSkene().fit_predict(tasks, workers, labels)
    guess = HierarchicalDawidSkene(target="guess").fit(tasks, workers, labels)
    assert np.mean(guess.labels_ == truth) > np.mean(one_coin == truth) + 0.01
    np.testing.assert_allclose(guess.confusion_.sum(axis=2), 1.0)
    again = HierarchicalDawidSkene(target="guess").fit(tasks, workers, labels)
    np.testing.assert_array_equal(again.posteriors_, guess.posteriors_)  # deterministic


def test_guess_target_clamps_gold_and_handles_edge_cases() -> None:
    est = HierarchicalDawidSkene(target="guess").fit(TASKS, WORKERS, LABELS, gold={2: 0})
    np.testing.assert_allclose(est.posteriors_[2], [1.0, 0.0])
    one = HierarchicalDawidSkene(target="guess").fit([0], [0], [1], n_classes=3)
    assert one.labels_.tolist() == [1]
    np.testing.assert_allclose(one.confusion_.sum(axis=2), 1.0)
    idle = HierarchicalDawidSkene(target="guess", accuracy_strength=0.0).fit(
        [0, 1], [0, 0], [0, 1], n_workers=2
    )
    np.testing.assert_allclose(idle.confusion_.sum(axis=2), 1.0)  # worker 1 never answered


def test_rejects_negative_strength() -> None:
    with pytest.raises(ValueError, match="row_strength"):
        HierarchicalDawidSkene(row_strength=-1).fit(TASKS, WORKERS, LABELS)
    with pytest.raises(ValueError, match="accuracy_strength"):
        HierarchicalDawidSkene(accuracy_strength=-1).fit(TASKS, WORKERS, LABELS)
    with pytest.raises(ValueError, match="target"):
        HierarchicalDawidSkene(target="mace").fit(TASKS, WORKERS, LABELS)
