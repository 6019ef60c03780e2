"""NumericEM: hand-computed first iteration, bias and outliers, gold, intervals, empty input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from crowd.em import ConvergenceWarning, NumericEM

# Three workers rate two tasks; worker 2 rates high and noisily.
TASKS = np.array([0, 0, 0, 1, 1, 1])
WORKERS = np.array([0, 1, 2, 0, 1, 2])
VALUES = np.array([1.0, 2.0, 6.0, 2.0, 2.0, 5.0])


def test_first_iteration_matches_hand_computation() -> None:
    # Start: task means 3 and 3. Residuals: worker 0 (-2, -1), worker 1 (-1, -1), worker 2
    # (3, 2). With no prior pseudo-answers a variance is sum r^2 / (n + 2) (the mode under the
    # scale-invariant prior): 5/4, 1/2, 13/4. Values are then means weighted by 1 / variance.
    with pytest.warns(ConvergenceWarning):
        model = NumericEM(dof=None, bias=False, noise_strength=0, max_iter=1).fit(
            TASKS, WORKERS, VALUES
        )
    variance = np.array([5 / 4, 1 / 2, 13 / 4])
    np.testing.assert_allclose(model.noise_**2, variance)
    weights = 1 / variance
    expected = [
        (weights @ VALUES[:3]) / weights.sum(),
        (weights @ VALUES[3:]) / weights.sum(),
    ]
    np.testing.assert_allclose(model.values_, expected)
    np.testing.assert_allclose(model.std_, 1 / np.sqrt(weights.sum()))
    # The 90% interval is value +- z_0.95 sd.
    half = norm.ppf(0.95) * model.std_
    np.testing.assert_allclose(model.interval_, np.c_[model.values_ - half, model.values_ + half])


def simulated(seed: int = 0, n_tasks: int = 300) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 100, n_tasks)
    n_workers = 15
    bias = rng.normal(0, 8, n_workers)
    noise = rng.uniform(3, 15, n_workers)
    tasks = np.repeat(np.arange(n_tasks), 5)
    workers = np.concatenate([rng.choice(n_workers, 5, replace=False) for _ in range(n_tasks)])
    values = truth[tasks] + bias[workers] + rng.normal(0, 1, tasks.size) * noise[workers]
    return tasks, workers, values, truth, bias


def test_worker_bias_and_noise_beat_the_mean() -> None:
    tasks, workers, values, truth, bias = simulated()
    model = NumericEM().fit(tasks, workers, values)
    assert model.converged_
    mean = np.bincount(tasks, values) / np.bincount(tasks)
    assert np.abs(model.values_ - truth).mean() < 0.8 * np.abs(mean - truth).mean()
    # Biases are identified up to the crowd's shared offset.
    np.testing.assert_allclose(model.bias_ - model.bias_.mean(), bias - bias.mean(), atol=2.0)
    inside = (truth >= model.interval_[:, 0]) & (truth <= model.interval_[:, 1])
    assert 0.8 < inside.mean() <= 1.0


def test_an_outlier_barely_moves_a_value() -> None:
    tasks, workers, values, _, _ = simulated(seed=3)
    wild = values.copy()
    wild[0] += 500.0  # one answer to task 0 is far off the scale
    robust = NumericEM().fit(tasks, workers, wild).values_[0]
    clean = NumericEM().fit(tasks, workers, values).values_[0]
    gaussian = NumericEM(dof=None).fit(tasks, workers, wild).values_[0]
    # The mean moves by 500 / 5 = 100; Gaussian errors with a noise per worker move it by
    # about 6; Student-t errors by about 2.
    assert abs(robust - clean) < 2.5
    assert abs(gaussian - clean) > 2 * abs(robust - clean)


def test_gold_is_held_and_unanswered_tasks_are_nan() -> None:
    model = NumericEM().fit(TASKS, WORKERS, VALUES, n_tasks=3, gold={1: 2.5})
    assert model.values_[1] == 2.5 and model.std_[1] == 0.0
    np.testing.assert_array_equal(model.interval_[1], [2.5, 2.5])
    assert np.isnan(model.values_[2]) and np.isnan(model.interval_[2]).all()
    gold_only_task = NumericEM().fit(TASKS, WORKERS, VALUES, gold=([5], [7.0]))
    assert gold_only_task.values_[5] == 7.0


def test_bounds_clip_values_and_intervals() -> None:
    model = NumericEM(bounds=(0.0, 3.0)).fit(TASKS, WORKERS, VALUES)
    assert model.values_.max() <= 3.0 and model.interval_.max() <= 3.0
    assert model.interval_.min() >= 0.0


def test_empty_input_and_bad_input() -> None:
    empty = np.zeros(0, dtype=np.int64)
    model = NumericEM().fit(empty, empty, np.zeros(0), n_tasks=2)
    assert np.isnan(model.values_).all() and model.values_.shape == (2,)
    frozen = VALUES.copy()
    frozen.flags.writeable = False
    NumericEM().fit(TASKS, WORKERS, frozen)
    with pytest.raises(ValueError, match="finite"):
        NumericEM().fit(TASKS, WORKERS, np.r_[VALUES[:-1], np.nan])
    with pytest.raises(ValueError, match="equal length"):
        NumericEM().fit(TASKS, WORKERS, VALUES[:2])
    with pytest.raises(ValueError, match="dof"):
        NumericEM(dof=0).fit(TASKS, WORKERS, VALUES)
    with pytest.raises(ValueError, match="two different values"):
        NumericEM().fit(TASKS, WORKERS, VALUES, gold=([0, 0], [1.0, 2.0]))
