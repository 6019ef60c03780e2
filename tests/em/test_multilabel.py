"""MultilabelDawidSkene: hand-computed first iteration, invariants, gold, empty input."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from crowd.em import ConvergenceWarning, MultilabelDawidSkene, MultilabelParams

# Three workers tick any of two labels on two tasks.
TASKS = np.array([0, 0, 0, 1, 1, 1])
WORKERS = np.array([0, 1, 2, 0, 1, 2])
TICKED = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 1], [1, 1]])


def frozen(array: np.ndarray) -> np.ndarray:
    copy = np.array(array)
    copy.flags.writeable = False
    return copy


def test_first_iteration_matches_hand_computation() -> None:
    # Vote shares q0 = (2/3, 1/3), q1 = (1/3, 1). Worker 0 ticked (1,0) and (0,1): expected
    # positives 7/3, of which it ticked 2/3 + 1 = 5/3 -> sensitivity 5/7; expected negatives
    # 4 - 7/3 = 5/3, and it ticked 2 - 5/3 = 1/3 of them -> specificity 4/5. Likewise worker 1
    # (6/7, 2/5) and worker 2 (4/7, 3/5). Priors are the mean shares (1/2, 2/3).
    with pytest.warns(ConvergenceWarning):
        model = MultilabelDawidSkene(max_iter=1).fit(TASKS, WORKERS, TICKED)
    np.testing.assert_allclose(model.sensitivity_, [5 / 7, 6 / 7, 4 / 7])
    np.testing.assert_allclose(model.specificity_, [4 / 5, 2 / 5, 3 / 5])
    np.testing.assert_allclose(model.priors_, [1 / 2, 2 / 3])
    se = [F(5, 7), F(6, 7), F(4, 7)]
    sp = [F(4, 5), F(2, 5), F(3, 5)]
    # Task 0, label 0: ticked by workers 0 and 1, not by worker 2.
    on = F(1, 2) * se[0] * se[1] * (1 - se[2])
    off = F(1, 2) * (1 - sp[0]) * (1 - sp[1]) * sp[2]
    assert model.probabilities_[0, 0] == pytest.approx(float(on / (on + off)))
    # Task 1, label 1: ticked by everyone.
    on = F(2, 3) * se[0] * se[1] * se[2]
    off = F(1, 3) * (1 - sp[0]) * (1 - sp[1]) * (1 - sp[2])
    assert model.probabilities_[1, 1] == pytest.approx(float(on / (on + off)))
    np.testing.assert_array_equal(model.labels_, model.probabilities_ > 0.5)


def simulated(seed: int = 0, n_tasks: int = 400, n_labels: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.random((n_tasks, n_labels)) < 0.4
    n_workers = 20
    sensitivity = rng.uniform(0.5, 0.95, n_workers)
    specificity = rng.uniform(0.8, 0.98, n_workers)
    sensitivity[0], specificity[0] = 0.5, 0.5  # a worker ticking boxes at random
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = np.concatenate([rng.choice(n_workers, 5, replace=False) for _ in range(n_tasks)])
    true_rows = truth[tasks]
    p_tick = np.where(true_rows, sensitivity[workers, None], 1 - specificity[workers, None])
    ticked = (rng.random(true_rows.shape) < p_tick).astype(np.int8)
    return tasks, workers, ticked, truth, sensitivity, specificity


def test_recovers_label_sets_and_worker_rates_better_than_majority() -> None:
    tasks, workers, ticked, truth, sensitivity, _ = simulated()
    model = MultilabelDawidSkene().fit(tasks, workers, ticked)
    assert model.converged_
    assert np.all(np.diff(model.objective_history_) >= -1e-9)  # EM never decreases it
    shares = np.zeros(truth.shape)
    np.add.at(shares, tasks, ticked)
    majority = shares / 5 > 0.5
    assert (model.labels_ == truth).mean() > (majority == truth).mean()
    assert np.corrcoef(model.sensitivity_, sensitivity)[0, 1] > 0.8
    youden = model.sensitivity_ + model.specificity_ - 1
    assert youden[0] == youden.min()


def test_gold_tasks_are_clamped_and_inform_the_workers() -> None:
    tasks, workers, ticked, truth, _, _ = simulated(seed=1, n_tasks=60)
    gold_tasks = np.arange(20)
    model = MultilabelDawidSkene().fit(tasks, workers, ticked, gold=(gold_tasks, truth[:20]))
    np.testing.assert_array_equal(model.probabilities_[:20], truth[:20].astype(float))
    free = MultilabelDawidSkene().fit(tasks, workers, ticked)
    assert not np.allclose(model.sensitivity_, free.sensitivity_)
    as_mapping = MultilabelDawidSkene().fit(
        tasks, workers, ticked, gold={0: np.flatnonzero(truth[0]).tolist()}
    )
    np.testing.assert_array_equal(as_mapping.labels_[0], truth[0])


def test_empty_answers_and_unanswered_tasks() -> None:
    empty = np.zeros(0, dtype=np.int64)
    model = MultilabelDawidSkene().fit(empty, empty, np.zeros((0, 3)), n_tasks=2)
    np.testing.assert_allclose(model.probabilities_, np.full((2, 3), 0.5))
    assert not model.labels_.any()
    model = MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED, n_tasks=3)
    np.testing.assert_allclose(model.probabilities_[2], model.priors_)


def test_inputs_are_not_mutated_and_bad_input_is_rejected() -> None:
    model = MultilabelDawidSkene().fit(frozen(TASKS), frozen(WORKERS), frozen(TICKED))
    assert model.probabilities_.shape == (2, 2)
    with pytest.raises(ValueError, match="0/1"):
        MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED * 2)
    with pytest.raises(ValueError, match="one row per answer"):
        MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED[:3])
    with pytest.raises(ValueError, match="two different label sets"):
        MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED, gold=([0, 0], [[1, 0], [0, 1]]))


def test_objective_is_the_log_likelihood_by_enumeration() -> None:
    # Sum over tasks and labels of log(sum over z of P(z) prod_i P(tick_i | z)), from the
    # fitted parameters, divided by the number of answers.
    model = MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED)
    se, sp, p = model.sensitivity_, model.specificity_, model.priors_
    total = 0.0
    for task in range(2):
        for label in range(2):
            on, off = p[label], 1 - p[label]
            for i in np.flatnonzero(np.equal(TASKS, task)):
                tick, worker = TICKED[i, label], WORKERS[i]
                on *= se[worker] if tick else 1 - se[worker]
                off *= 1 - sp[worker] if tick else sp[worker]
            total += np.log(on + off)
    assert model.objective_history_[-1] == pytest.approx(total / TASKS.size)
    assert model.objective_history_[-1] < 0


#: EM stops when the per-answer log-likelihood changes by less than ``tol`` (1e-5) in one
#: iteration. EM converges linearly, so that leaves a cold fit short of the fixed point it
#: climbs to: on these crowds by up to about 0.09 in a probability (measured against a fit
#: run to tol=1e-13). A warm start must stop at the same fixed point within that.
EM_TOL_P = 0.1


def crowd(seed: int, n_tasks: int = 4000, n_workers: int = 100) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.55, 0.95, n_workers)
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = rng.integers(0, n_workers, tasks.size)
    truth = rng.random((n_tasks, 4)) < 0.3
    ticked = truth[tasks] ^ (rng.random((tasks.size, 4)) > accuracy[workers][:, None])
    return tasks, workers, ticked.astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_start_stops_at_the_cold_fits_fixed_point_in_fewer_iterations(seed: int) -> None:
    tasks, workers, ticked = crowd(seed)
    seen = tasks.size - 200  # the previous run saw all but the newest 1% of the answers
    sizes = {"n_tasks": 4000, "n_workers": 100}
    previous = MultilabelDawidSkene().fit(tasks[:seen], workers[:seen], ticked[:seen], **sizes)
    params = previous.params_
    kept = (params.sensitivity.copy(), params.specificity.copy(), params.priors.copy())
    cold = MultilabelDawidSkene().fit(tasks, workers, ticked, **sizes)
    warm = MultilabelDawidSkene().fit(tasks, workers, ticked, **sizes, init=params)
    exact = MultilabelDawidSkene(tol=1e-13, max_iter=10_000).fit(tasks, workers, ticked, **sizes)

    assert warm.converged_ and warm.n_iter_ < cold.n_iter_
    after = (params.sensitivity, params.specificity, params.priors)
    for before, now in zip(kept, after, strict=True):
        np.testing.assert_array_equal(before, now)  # the start is only read
    assert warm.objective_history_[-1] >= cold.objective_history_[-1] - warm.tol
    cold_off = np.abs(cold.probabilities_ - exact.probabilities_).max()
    warm_off = np.abs(warm.probabilities_ - exact.probabilities_).max()
    assert cold_off <= EM_TOL_P and warm_off <= EM_TOL_P
    np.testing.assert_allclose(warm.sensitivity_, cold.sensitivity_, atol=0.02)
    np.testing.assert_allclose(warm.priors_, cold.priors_, atol=0.01)
    # Decisions differ from the cold fit's only where the fixed point is that close to 0.5.
    differ = warm.labels_ != cold.labels_
    assert np.all(np.abs(exact.probabilities_[differ] - 0.5) <= EM_TOL_P)


def test_a_warm_start_fills_unknown_workers_and_checks_its_shape() -> None:
    tasks, workers, ticked = crowd(3)
    cold = MultilabelDawidSkene().fit(tasks, workers, ticked)
    se, sp = cold.sensitivity_.copy(), cold.specificity_.copy()
    se[50:] = np.nan  # workers the previous run did not see
    start = MultilabelParams(se, sp, cold.priors_)
    warm = MultilabelDawidSkene().fit(tasks, workers, ticked, init=start)
    assert warm.n_iter_ < cold.n_iter_
    assert np.abs(warm.probabilities_ - cold.probabilities_).max() <= EM_TOL_P
    refit = MultilabelDawidSkene().fit(tasks, workers, ticked, init=cold)
    assert refit.n_iter_ <= 3  # started at (nearly) the fixed point
    with pytest.raises(ValueError, match="n_labels"):
        MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED, init=cold)
    with pytest.raises(TypeError, match="MultilabelParams"):
        MultilabelDawidSkene().fit(TASKS, WORKERS, TICKED, init=(se, sp))
