"""The auto-labelling threshold reaches its target accuracy on gold it was not fitted on."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.learn import calibrate_threshold, wilson_lower


def _calibrated_model(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences of a well-calibrated model: each label is right with its confidence."""
    confidence = 1.0 - 0.5 * rng.beta(1.0, 4.0, n)  # mostly confident, some unsure
    return confidence, rng.random(n) < confidence


def test_wilson_lower_bound_matches_hand_computed_values() -> None:
    # 9 of 10 at z = 1.6449: (0.9 + 0.1353 - 1.6449 * sqrt(0.009 + 0.00676)) / 1.2706 = 0.6523
    assert wilson_lower(9, 10) == pytest.approx(0.6523, abs=1e-3)
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(100, 100) < 1.0


@pytest.mark.parametrize("target", [0.9, 0.95])
def test_threshold_calibrated_on_half_the_gold_meets_the_target_on_the_other_half(
    target: float,
) -> None:
    rng = np.random.default_rng(7)
    misses = 0
    for _ in range(20):
        conf_cal, ok_cal = _calibrated_model(rng, 1000)
        conf_new, ok_new = _calibrated_model(rng, 1000)
        threshold = calibrate_threshold(conf_cal, ok_cal, target)
        assert threshold is not None and 0.5 < threshold < 1.0
        kept = conf_new >= threshold
        assert kept.sum() >= 50  # it labels a useful share, not only the very top
        misses += ok_new[kept].mean() < target
    assert misses <= 2  # a 95% lower bound: rare misses, never most of the time


def test_no_threshold_when_no_confidence_reaches_the_target() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 0.7, 500)
    correct = rng.random(500) < 0.6
    assert calibrate_threshold(confidence, correct, 0.95) is None


def test_too_few_gold_tasks_above_a_threshold_never_qualify() -> None:
    confidence = np.array([0.99] * 10 + [0.6] * 10)
    correct = np.array([True] * 10 + [False] * 10)
    assert calibrate_threshold(confidence, correct, 0.6, min_support=20) is None
    assert calibrate_threshold(confidence, correct, 0.6, min_support=5) == 0.99


def test_inputs_are_not_modified() -> None:
    confidence = np.array([0.9, 0.8, 0.7] * 20)
    correct = np.array([True, True, False] * 20)
    before = confidence.copy(), correct.copy()
    calibrate_threshold(confidence, correct, 0.8)
    assert np.array_equal(confidence, before[0]) and np.array_equal(correct, before[1])
