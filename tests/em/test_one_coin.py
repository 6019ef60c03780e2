"""OneCoinDawidSkene: hand-computed first iteration, one-coin structure, shared conventions."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import ConvergenceWarning, DawidSkene, OneCoinDawidSkene

TASKS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
WORKERS = np.array([0, 1, 2, 0, 1, 2, 0, 1])
LABELS = np.array([0, 0, 1, 1, 1, 1, 0, 1])


def test_first_iteration_matches_hand_computation() -> None:
    # Majority-vote shares q0=(2/3,1/3), q1=(0,1), q2=(1/2,1/2) give expected correct answers
    # a: 2/3+1+1/2 of 3, b: the same, c: 1/3+1 of 2 -> accuracies 13/18, 13/18, 2/3.
    with pytest.warns(ConvergenceWarning):
        oc = OneCoinDawidSkene(max_iter=1).fit(TASKS, WORKERS, LABELS)
    np.testing.assert_allclose(oc.worker_accuracy_, [13 / 18, 13 / 18, 2 / 3])
    np.testing.assert_allclose(oc.priors_, [7 / 18, 11 / 18])
    # Task 0: (7/18 (13/18)^2 1/3, 11/18 (5/18)^2 2/3) ∝ (1183, 550).
    np.testing.assert_allclose(oc.posteriors_[0], [1183 / 1733, 550 / 1733])
    # Task 2: a and b disagree and are equally accurate, so the priors decide.
    np.testing.assert_allclose(oc.posteriors_[2], [7 / 18, 11 / 18])


def test_confusion_has_one_coin_structure() -> None:
    rng = np.random.default_rng(0)
    tasks = np.repeat(np.arange(200), 4)
    workers = rng.integers(0, 12, tasks.size)
    labels = rng.integers(0, 4, tasks.size)
    oc = OneCoinDawidSkene(smoothing=0.5).fit(tasks, workers, labels)
    diagonal = np.einsum("wkk->wk", oc.confusion_)
    np.testing.assert_allclose(diagonal, np.repeat(oc.worker_accuracy_[:, None], 4, axis=1))
    off = (1 - oc.worker_accuracy_) / 3
    mask = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(oc.confusion_[:, mask], np.repeat(off[:, None], 12, axis=1))
    np.testing.assert_allclose(oc.posteriors_.sum(axis=1), 1.0)
    assert np.all(np.diff(oc.objective_history_) >= -1e-12)


def test_warm_start_from_full_dawid_skene_and_gold() -> None:
    ds = DawidSkene().fit(TASKS, WORKERS, LABELS)
    oc = OneCoinDawidSkene().fit(TASKS, WORKERS, LABELS, init=ds, gold={1: 0})
    np.testing.assert_array_equal(oc.posteriors_[1], [1, 0])
    assert oc.converged_


def test_single_class_and_empty_input() -> None:
    oc = OneCoinDawidSkene().fit([0, 1], [0, 1], [0, 0])
    np.testing.assert_allclose(oc.posteriors_, [[1.0], [1.0]])
    empty = np.zeros(0, dtype=np.int64)
    oc = OneCoinDawidSkene().fit(empty, empty, empty, n_tasks=2, n_classes=3)
    np.testing.assert_allclose(oc.posteriors_, np.full((2, 3), 1 / 3))
