"""AutoDawidSkene: the iteration count chosen by held-out answers, invariants, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crowd.em import METHODS, AutoDawidSkene, ConvergenceWarning, DawidSkene
from crowd.em._base import check_answers
from crowd.em.auto_ds import deal_folds, heldout_curve


def crowd(
    seed: int, n_tasks: int, n_workers: int, per_task: int, k: int, asymmetric: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Answers from one-coin workers of accuracy 0.5-0.9; with ``asymmetric``, every other
    worker labels half of the class-0 tasks as class ``k - 1``. Returns (tasks, workers,
    labels, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    accuracy = rng.uniform(0.5, 0.9, n_workers)
    confusion = np.repeat(((1 - accuracy) / (k - 1))[:, None, None], k, axis=1).repeat(k, axis=2)
    confusion[:, np.arange(k), np.arange(k)] = accuracy[:, None]
    if asymmetric:
        confusion[::2, 0] = 0.02
        confusion[::2, 0, 0] = 0.45
        confusion[::2, 0, k - 1] = 1 - 0.45 - 0.02 * (k - 2)
    tasks = np.repeat(np.arange(n_tasks), per_task)
    workers = np.concatenate([rng.choice(n_workers, per_task, replace=False) for _ in truth])
    cumulative = confusion[workers, truth[tasks]].cumsum(axis=1)
    labels = (rng.random(tasks.size)[:, None] > cumulative).sum(axis=1)
    return tasks, workers, labels, truth


def accuracy(estimator: DawidSkene | AutoDawidSkene, truth: np.ndarray) -> float:
    return float((estimator.labels_ == truth).mean())


def test_registered_as_auto() -> None:
    assert METHODS["auto"] is AutoDawidSkene


def test_runs_long_when_workers_have_asymmetric_confusions() -> None:
    # Full Dawid-Skene is the true model and every worker gives ~1000 answers: held-out
    # answers keep getting better predicted as EM proceeds, so it iterates to near convergence.
    tasks, workers, labels, truth = crowd(0, 2000, 10, 5, 3, asymmetric=True)
    auto = AutoDawidSkene().fit(tasks, workers, labels)
    converged = DawidSkene().fit(tasks, workers, labels)
    assert auto.chosen_ >= 5
    assert accuracy(auto, truth) >= accuracy(converged, truth) - 0.005
    with pytest.warns(ConvergenceWarning):
        two = DawidSkene(max_iter=2).fit(tasks, workers, labels)
    assert accuracy(auto, truth) > accuracy(two, truth)


def test_stops_early_when_workers_are_one_coin_and_sparse() -> None:
    # 150 one-coin workers with ~11 answers each over 4 classes: a full confusion per worker
    # overfits, held-out answers say so after the first iteration, and stopping there is more
    # accurate than running to convergence.
    tasks, workers, labels, truth = crowd(0, 400, 150, 4, 4, asymmetric=False)
    auto = AutoDawidSkene().fit(tasks, workers, labels)
    converged = DawidSkene().fit(tasks, workers, labels)
    assert auto.chosen_ == 1 and converged.n_iter_ > 10
    assert accuracy(auto, truth) >= accuracy(converged, truth) + 0.01


def test_final_fit_is_dawid_skene_at_the_chosen_count() -> None:
    tasks, workers, labels, _ = crowd(1, 300, 12, 5, 3, asymmetric=True)
    auto = AutoDawidSkene(max_iter=30).fit(tasks, workers, labels)
    assert auto.cv_scores_.shape == (30,) and np.all(np.isfinite(auto.cv_scores_))
    assert auto.chosen_ == int(np.argmax(auto.cv_scores_)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same = DawidSkene(max_iter=auto.chosen_).fit(tasks, workers, labels)
    np.testing.assert_array_equal(auto.posteriors_, same.posteriors_)
    np.testing.assert_array_equal(auto.confusion_, same.confusion_)
    assert auto.n_iter_ == same.n_iter_ <= auto.chosen_
    assert auto.objective_history_ == same.objective_history_
    assert auto.converged_


def test_heldout_curve_scores_each_iteration_of_a_training_fit() -> None:
    tasks, workers, labels, _ = crowd(2, 200, 8, 4, 3, asymmetric=True)
    answers = check_answers(tasks, workers, labels)
    test = np.zeros(tasks.size, dtype=bool)
    test[::5] = True
    empty = np.zeros(0, dtype=np.intp)
    curve = heldout_curve(
        answers, ~test, test, empty, empty, max_iter=3, tol=0.0, contamination=0.1
    )
    for iteration in (1, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = DawidSkene(max_iter=iteration, tol=0.0).fit(
                tasks[~test], workers[~test], labels[~test], n_tasks=200, n_workers=8, n_classes=3
            )
        predictive = np.einsum(
            "nk,nk->n", fit.posteriors_[tasks[test]], fit.confusion_[workers[test], :, labels[test]]
        )
        expected = np.log(0.9 * predictive + 0.1 / 3).sum()
        assert curve[iteration - 1] == pytest.approx(expected, rel=1e-10)


def test_folds_keep_a_training_answer_for_every_task_with_two() -> None:
    tasks = np.repeat(np.arange(50), np.arange(50) % 7 + 1)
    folds = deal_folds(tasks, 50, 5, np.random.default_rng(0))
    assert folds.min() >= 0 and folds.max() <= 4
    counts = np.bincount(tasks * 5 + folds, minlength=250).reshape(50, 5)
    answers = counts.sum(axis=1)
    # No fold holds more than ceil(m / 5) of a task's m answers ...
    assert np.all(counts.max(axis=1) <= -(-answers // 5))
    # ... so every fold leaves a task with >= 2 answers at least one to train on.
    assert np.all((answers[:, None] - counts)[answers >= 2] >= 1)


def test_posteriors_are_distributions_and_gold_is_clamped() -> None:
    tasks, workers, labels, truth = crowd(3, 300, 12, 5, 3, asymmetric=True)
    gold = {int(t): int((truth[t] + 1) % 3) for t in range(20)}  # deliberately wrong gold
    auto = AutoDawidSkene().fit(tasks, workers, labels, gold=gold)
    np.testing.assert_allclose(auto.posteriors_.sum(axis=1), 1.0)
    np.testing.assert_allclose(auto.confusion_.sum(axis=2), 1.0)
    np.testing.assert_allclose(auto.priors_.sum(), 1.0)
    np.testing.assert_array_equal(auto.labels_, auto.posteriors_.argmax(axis=1))
    for task, label in gold.items():
        np.testing.assert_array_equal(auto.posteriors_[task], np.eye(3)[label])
    expected = np.einsum("k,wkk->w", auto.priors_, auto.confusion_)
    np.testing.assert_allclose(auto.worker_accuracy_, expected)


def test_deterministic_for_a_seed_and_inputs_not_mutated() -> None:
    tasks, workers, labels, _ = crowd(4, 300, 12, 5, 3, asymmetric=True)
    copies = [tasks.copy(), workers.copy(), labels.copy()]
    for array in (tasks, workers, labels):
        array.setflags(write=False)
    gold_tasks, gold_labels = np.arange(5), np.zeros(5, dtype=np.int64)
    gold_tasks.setflags(write=False)
    gold_labels.setflags(write=False)
    first = AutoDawidSkene(random_state=7).fit(
        tasks, workers, labels, gold=(gold_tasks, gold_labels)
    )
    second = AutoDawidSkene(random_state=7).fit(
        tasks, workers, labels, gold=(gold_tasks, gold_labels)
    )
    np.testing.assert_array_equal(first.cv_scores_, second.cv_scores_)
    np.testing.assert_array_equal(first.posteriors_, second.posteriors_)
    for array, copy in zip((tasks, workers, labels), copies, strict=True):
        np.testing.assert_array_equal(array, copy)
    np.testing.assert_array_equal(gold_labels, 0)


def test_empty_input_gives_prior_shaped_posteriors() -> None:
    empty = np.zeros(0, dtype=np.int64)
    auto = AutoDawidSkene().fit(empty, empty, empty, n_tasks=3, n_workers=2, n_classes=4)
    np.testing.assert_allclose(auto.posteriors_, np.full((3, 4), 0.25))
    assert auto.chosen_ == 1 and auto.confusion_.shape == (2, 4, 4)
    none = AutoDawidSkene().fit(empty, empty, empty)
    assert none.posteriors_.shape == (0, 1) and none.labels_.shape == (0,)


@pytest.mark.parametrize(
    ("tasks", "workers", "labels", "k"),
    [
        pytest.param([0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 1, 0], 2, id="single worker"),
        pytest.param([0, 0, 1, 1, 2], [0, 1, 2, 3, 4], [1, 1, 0, 1, 2], 3, id="one answer each"),
        pytest.param([0], [0], [1], 3, id="single answer"),
    ],
)
def test_degenerate_inputs_stay_finite(
    tasks: list[int], workers: list[int], labels: list[int], k: int
) -> None:
    auto = AutoDawidSkene().fit(tasks, workers, labels, n_classes=k)
    for attr in ("posteriors_", "confusion_", "priors_", "worker_accuracy_"):
        assert np.all(np.isfinite(getattr(auto, attr))), attr
    np.testing.assert_allclose(auto.posteriors_.sum(axis=1), 1.0)
    assert 1 <= auto.chosen_ <= auto.max_iter


def test_bad_hyperparameters_are_rejected() -> None:
    for kwargs, match in [
        ({"n_splits": 1}, "n_splits"),
        ({"n_repeats": 0}, "n_repeats"),
        ({"contamination": 1.0}, "contamination"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
    ]:
        with pytest.raises(ValueError, match=match):
            AutoDawidSkene(**kwargs).fit([0], [0], [0])  # type: ignore[arg-type]
