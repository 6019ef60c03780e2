"""Shared helpers and the METHODS registry."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import DEFAULT_METHOD, METHODS, Aggregator
from crowd.em._base import normalize_log_columns, parse_gold


def test_registry_methods_share_the_fit_api() -> None:
    assert DEFAULT_METHOD in METHODS
    for name, cls in METHODS.items():
        model = cls()
        assert isinstance(model, Aggregator), name
        proba = model.fit_predict_proba([0, 0, 1], [0, 1, 1], [1, 1, 0], n_tasks=3, gold={2: 1})
        assert proba.shape == (3, 2), name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, err_msg=name)
        np.testing.assert_array_equal(model.labels_[:2], [1, 0], err_msg=name)
        assert repr(model).startswith(cls.__name__ + "(")


def test_parse_gold_accepts_both_forms_and_merges_repeats() -> None:
    tasks, labels = parse_gold({3: 1, 0: 2})
    assert sorted(zip(tasks.tolist(), labels.tolist(), strict=True)) == [(0, 2), (3, 1)]
    tasks, labels = parse_gold(([5, 5, 1], [0, 0, 1]))
    assert tasks.tolist() == [1, 5] and labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="equal length"):
        parse_gold(([1, 2], [0]))


def test_normalize_log_columns_survives_huge_magnitudes() -> None:
    log_joint = np.array([[-1000.0, 0.0, 5.0], [-1000.0 + np.log(3), -np.inf, 5.0]])
    probabilities, total = normalize_log_columns(log_joint.copy())
    np.testing.assert_allclose(probabilities[:, 0], [0.25, 0.75])
    np.testing.assert_allclose(probabilities[:, 1], [1.0, 0.0])
    assert total == pytest.approx(-1000 + np.log(4) + 0.0 + 5 + np.log(2))


def test_other_answer_types_follow_the_estimator_conventions() -> None:
    from crowd.em import CrowdBradleyTerry, MultilabelDawidSkene, NumericEM

    fits = [
        (MultilabelDawidSkene(max_iter=50), ([0, 0, 1], [0, 1, 1], [[1, 0], [1, 1], [0, 0]])),
        (NumericEM(dof=5.0), ([0, 0, 1], [0, 1, 1], [1.0, 2.0, 3.0])),
        (CrowdBradleyTerry(score_prior=2.0), ([0, 1, 2], [1, 2, 0], [0, 1, 1], [1.0, 0.0, 1.0])),
    ]
    for model, arrays in fits:
        assert model.fit(*arrays) is model
        text = repr(model)
        assert text.startswith(type(model).__name__ + "(") and "max_iter=" in text
        assert not any(name.endswith("_=") for name in text.split(", "))
