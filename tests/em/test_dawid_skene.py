"""DawidSkene: hand-computed first iteration, EM invariants, gold, warm start, edge cases."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

from crowd.em import ConvergenceWarning, DawidSkene, DSParams

# Three tasks, three workers (a=0, b=1, c=2), two classes:
#   task 0: a->0, b->0, c->1    task 1: a->1, b->1, c->1    task 2: a->0, b->1
TASKS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
WORKERS = np.array([0, 1, 2, 0, 1, 2, 0, 1])
LABELS = np.array([0, 0, 1, 1, 1, 1, 0, 1])


def one_iteration(**kwargs: object) -> DawidSkene:
    with pytest.warns(ConvergenceWarning):
        return DawidSkene(max_iter=1, smoothing=0.0, **kwargs).fit(TASKS, WORKERS, LABELS)  # type: ignore[arg-type]


def synthetic(
    n_tasks: int = 400, n_workers: int = 15, k: int = 3, per_task: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Answers from workers of varied accuracy; returns (tasks, workers, labels, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    tasks = np.repeat(np.arange(n_tasks), per_task)
    workers = np.concatenate([rng.choice(n_workers, per_task, replace=False) for _ in truth])
    accuracy = rng.uniform(0.35, 0.95, n_workers)
    right = rng.random(tasks.size) < accuracy[workers]
    labels = np.where(right, truth[tasks], rng.integers(0, k, tasks.size))
    return tasks, workers, labels, truth


def test_first_iteration_matches_hand_computation() -> None:
    # M-step on majority-vote shares q0=(2/3,1/3), q1=(0,1), q2=(1/2,1/2):
    #   priors = (7/18, 11/18); worker b: row 0 = (2/3, 1/2)/(7/6), row 1 = (1/3, 3/2)/(11/6)
    #   worker a: row 0 = (1, ~0), row 1 = (5/11, 6/11); worker c always says 1.
    # E-step: task 0 ∝ (7/18 * 1 * 4/7, 11/18 * 5/11 * 2/11) = (2/9, 5/99) -> (22/27, 5/27)
    #         task 2 ∝ (7/18 * 1 * 3/7, 11/18 * 5/11 * 9/11) = (1/6, 5/22) -> (11/26, 15/26)
    ds = one_iteration()
    np.testing.assert_allclose(ds.priors_, [7 / 18, 11 / 18])
    np.testing.assert_allclose(ds.confusion_[1], [[4 / 7, 3 / 7], [2 / 11, 9 / 11]])
    np.testing.assert_allclose(ds.confusion_[0, 1], [5 / 11, 6 / 11])
    np.testing.assert_allclose(ds.confusion_[2], [[0, 1], [0, 1]])
    np.testing.assert_allclose(ds.posteriors_[0], [22 / 27, 5 / 27])
    np.testing.assert_allclose(ds.posteriors_[2], [11 / 26, 15 / 26])
    np.testing.assert_allclose(ds.posteriors_[1], [0, 1], atol=1e-9)
    np.testing.assert_array_equal(ds.labels_, [0, 1, 1])
    # Objective: log-likelihood per answer, task 1's evidence is 11/18 * 6/11 * 9/11 = 3/11.
    evidence = [Fraction(27, 99), Fraction(3, 11), Fraction(26, 66)]
    expected = sum(np.log(float(z)) for z in evidence) / 8
    assert ds.objective_history_ == [pytest.approx(expected, abs=1e-9)]
    assert ds.n_iter_ == 1 and not ds.converged_


def test_worker_accuracy_is_prior_weighted_diagonal() -> None:
    ds = DawidSkene().fit(*synthetic()[:3])
    expected = np.einsum("k,wkk->w", ds.priors_, ds.confusion_)
    np.testing.assert_allclose(ds.worker_accuracy_, expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_em_invariants(smoothing: float) -> None:
    tasks, workers, labels, truth = synthetic()
    ds = DawidSkene(smoothing=smoothing, tol=1e-9, max_iter=500).fit(tasks, workers, labels)
    assert ds.converged_
    assert ds.posteriors_.shape == (400, 3) and ds.confusion_.shape == (15, 3, 3)
    np.testing.assert_allclose(ds.posteriors_.sum(axis=1), 1.0)
    np.testing.assert_allclose(ds.confusion_.sum(axis=2), 1.0)
    np.testing.assert_allclose(ds.priors_.sum(), 1.0)
    history = np.array(ds.objective_history_)
    assert np.all(np.diff(history) >= -1e-12), "EM decreased its objective"
    assert len(history) == ds.n_iter_
    np.testing.assert_array_equal(ds.labels_, ds.posteriors_.argmax(axis=1))
    assert (ds.labels_ == truth).mean() > 0.85


def test_labels_agree_with_final_parameters() -> None:
    tasks, workers, labels, _ = synthetic(seed=3)
    ds = DawidSkene(max_iter=7, tol=0.0)
    with pytest.warns(ConvergenceWarning, match="max_iter=7"):
        ds.fit(tasks, workers, labels)
    assert ds.n_iter_ == 7
    # One more E-step by hand from the stored parameters reproduces the posteriors.
    log_joint = np.log(ds.priors_) + np.zeros((400, 3))
    np.add.at(log_joint, tasks, np.log(ds.confusion_[workers, :, labels]))
    expected = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ds.posteriors_, expected, atol=1e-12)


def test_gold_tasks_stay_clamped_and_move_the_rest() -> None:
    tasks, workers, labels, truth = synthetic(seed=1)
    gold = {int(t): int((truth[t] + 1) % 3) for t in range(40)}  # deliberately wrong gold
    ds = DawidSkene().fit(tasks, workers, labels, gold=gold)
    for task, label in gold.items():
        np.testing.assert_array_equal(ds.posteriors_[task], np.eye(3)[label])
        assert ds.labels_[task] == label
    plain = DawidSkene().fit(tasks, workers, labels)
    assert not np.allclose(plain.confusion_, ds.confusion_)
    same = DawidSkene().fit(
        tasks, workers, labels, gold=(np.arange(40), [gold[t] for t in range(40)])
    )
    np.testing.assert_allclose(same.posteriors_, ds.posteriors_)


def test_gold_task_without_answers_extends_n_tasks() -> None:
    ds = DawidSkene().fit(TASKS, WORKERS, LABELS, gold={5: 0})
    assert ds.posteriors_.shape == (6, 2)
    np.testing.assert_array_equal(ds.posteriors_[5], [1, 0])
    np.testing.assert_allclose(ds.posteriors_[4], ds.priors_)


def test_warm_start_converges_in_fewer_iterations() -> None:
    tasks, workers, labels, _ = synthetic(n_tasks=600, seed=2)
    first = DawidSkene(tol=1e-7).fit(tasks[:2900], workers[:2900], labels[:2900])
    cold = DawidSkene(tol=1e-7).fit(tasks, workers, labels)
    warm = DawidSkene(tol=1e-7).fit(tasks, workers, labels, init=first)
    assert warm.converged_ and warm.n_iter_ < cold.n_iter_
    np.testing.assert_array_equal(warm.labels_, cold.labels_)
    again = DawidSkene(tol=1e-7).fit(
        tasks, workers, labels, init=DSParams(warm.confusion_, warm.priors_)
    )
    assert again.n_iter_ == 1


def test_warm_start_pads_new_workers_and_rejects_bad_shapes() -> None:
    first = DawidSkene().fit(TASKS, WORKERS, LABELS)
    ds = DawidSkene().fit([0, 1, 3], [0, 3, 3], [0, 1, 1], n_classes=2, init=first)
    assert ds.confusion_.shape == (4, 2, 2)
    with pytest.raises(ValueError, match="expected"):
        DawidSkene().fit(TASKS, WORKERS, LABELS, n_classes=3, init=first)
    with pytest.raises(ValueError, match="n_workers"):
        DawidSkene().fit([0], [0], [0], n_classes=2, init=first)
    with pytest.raises(TypeError, match="DSParams"):
        DawidSkene().fit(TASKS, WORKERS, LABELS, init="previous")


def test_repeated_answers_count_as_independent_votes() -> None:
    once = DawidSkene(smoothing=0.3).fit([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 1])
    twice = DawidSkene(smoothing=0.3).fit([0, 0, 0, 1, 1], [0, 0, 1, 0, 1], [0, 0, 1, 1, 1])
    # Worker 0's repeated "0" on task 0 weighs like a second answer, so it wins that task.
    assert once.posteriors_[0, 0] < twice.posteriors_[0, 0]
    assert twice.labels_[0] == 0


def test_empty_input_gives_prior_shaped_posteriors() -> None:
    empty = np.zeros(0, dtype=np.int64)
    ds = DawidSkene().fit(empty, empty, empty, n_tasks=3, n_workers=2, n_classes=4)
    np.testing.assert_allclose(ds.posteriors_, np.full((3, 4), 0.25))
    np.testing.assert_array_equal(ds.labels_, [0, 0, 0])
    assert ds.confusion_.shape == (2, 4, 4) and ds.converged_
    none = DawidSkene().fit(empty, empty, empty)
    assert none.posteriors_.shape == (0, 1) and none.labels_.shape == (0,)


def test_degenerate_inputs_stay_finite() -> None:
    cases = {
        "single answer": ([0], [0], [1], 3),
        "single worker": ([0, 1, 2], [0, 0, 0], [0, 1, 1], 2),
        "class nobody chose": ([0, 1, 1, 2], [0, 0, 1, 1], [0, 2, 2, 0], 4),
        "worker with one answer among many": ([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], [1, 1, 0, 0, 1], 2),
    }
    for name, (tasks, workers, labels, k) in cases.items():
        for smoothing in (0.0, 1.0):
            ds = DawidSkene(smoothing=smoothing).fit(tasks, workers, labels, n_classes=k)
            for attr in ("posteriors_", "confusion_", "priors_", "worker_accuracy_"):
                assert np.all(np.isfinite(getattr(ds, attr))), (name, smoothing, attr)
            np.testing.assert_allclose(ds.posteriors_.sum(axis=1), 1.0, err_msg=name)


def test_tie_goes_to_lowest_class() -> None:
    # Two symmetric workers disagreeing on every task: every posterior is an exact tie.
    ds = DawidSkene().fit([0, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1], n_classes=3)
    np.testing.assert_allclose(ds.posteriors_[:, :2], 0.5)
    np.testing.assert_array_equal(ds.labels_, [0, 0])


def test_inputs_are_not_mutated() -> None:
    tasks, workers, labels, _ = synthetic()
    copies = [tasks.copy(), workers.copy(), labels.copy()]
    for array in (tasks, workers, labels):
        array.setflags(write=False)
    first = DawidSkene(max_iter=3, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        first.fit(tasks, workers, labels)
    confusion, priors = first.confusion_.copy(), first.priors_.copy()
    first.confusion_.setflags(write=False)
    first.priors_.setflags(write=False)
    gold_tasks, gold_labels = np.arange(5), np.zeros(5, dtype=np.int64)
    gold_tasks.setflags(write=False)
    gold_labels.setflags(write=False)
    DawidSkene().fit(tasks, workers, labels, gold=(gold_tasks, gold_labels), init=first)
    for array, copy in zip((tasks, workers, labels), copies, strict=True):
        np.testing.assert_array_equal(array, copy)
    np.testing.assert_array_equal(first.confusion_, confusion)
    np.testing.assert_array_equal(first.priors_, priors)


def test_fit_predict_and_proba_match_fit() -> None:
    tasks, workers, labels, _ = synthetic(seed=4)
    fitted = DawidSkene().fit(tasks, workers, labels)
    np.testing.assert_array_equal(DawidSkene().fit_predict(tasks, workers, labels), fitted.labels_)
    np.testing.assert_array_equal(
        DawidSkene().fit_predict_proba(tasks, workers, labels), fitted.posteriors_
    )


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        DawidSkene().fit([0, 1], [0], [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        DawidSkene().fit([0, -1], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="integer"):
        DawidSkene().fit([0.5], [0], [0])
    with pytest.raises(ValueError, match="n_classes=2"):
        DawidSkene().fit([0], [0], [2], n_classes=2)
    with pytest.raises(ValueError, match="max_iter"):
        DawidSkene(max_iter=0).fit([0], [0], [0])
    with pytest.raises(ValueError, match="two different labels"):
        DawidSkene().fit([0], [0], [0], gold=([1, 1], [0, 1]))


def test_no_warning_when_converged() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DawidSkene().fit(*synthetic()[:3])
