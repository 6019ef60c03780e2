"""Fitting and applying a project's model: inputs read from task data, soft targets."""

from __future__ import annotations

import numpy as np
import pytest

from crowd import learn
from crowd.learn import ModelSpec

TEXT = ModelSpec("text", "text")
FEATURES = ModelSpec("features", "x")


def test_extract_reads_strings_or_number_lists_and_marks_the_rest_unusable() -> None:
    usable, X, dim = learn.extract(TEXT, ["good", None, "", 3, "bad"])
    assert usable.tolist() == [True, False, False, False, True] and X == ["good", "bad"]
    assert dim is None
    values = [[1, 2], [3.5, 4], None, [1, 2, 3], [1, "x"], [True, 1], []]
    usable, X, dim = learn.extract(FEATURES, values)
    assert usable.tolist() == [True, True, False, False, False, False, False] and dim == 2
    assert X.shape == (2, 2) and X[1, 0] == 3.5
    # prediction uses the training length
    usable, X, _ = learn.extract(FEATURES, [[1, 2, 3], [1, 2]], dim=3)
    assert usable.tolist() == [True, False] and X.shape == (1, 3)


def test_soft_targets_weight_each_label_by_its_posterior() -> None:
    rows, labels, weights = learn.soft_targets(np.array([[0.9, 0.1, 0.0], [0.0, 0.005, 0.995]]))
    assert rows.tolist() == [0, 0, 1] and labels.tolist() == [0, 1, 2]
    assert weights.tolist() == pytest.approx([0.9, 0.1, 0.995])


def test_features_model_learns_a_boundary_and_fills_unseen_labels_with_zero() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    truth = (X[:, 0] > 0).astype(int)
    posteriors = np.zeros((200, 3))
    posteriors[np.arange(200), truth] = 0.9
    posteriors[np.arange(200), 1 - truth] = 0.1  # label 2 never appears
    model = learn.fit(FEATURES, X, posteriors)
    proba = learn.predict(model, X, 3)
    assert proba.shape == (200, 3) and np.allclose(proba.sum(axis=1), 1)
    assert np.all(proba[:, 2] == 0)
    label, confidence, margin = learn.summarize(proba)
    assert np.mean(label == truth) > 0.95
    assert np.all(margin <= confidence) and np.all(margin >= 0)
    metrics = learn.gold_metrics(proba, truth)
    assert metrics["gold_accuracy"] > 0.95 and metrics["gold_tasks"] == 200  # type: ignore[operator]
    assert 0 < metrics["gold_log_loss"] < 0.5  # type: ignore[operator]
    assert np.allclose(learn.predict(learn.load(learn.dump(model)), X, 3), proba)


def test_text_model_learns_words() -> None:
    texts = [f"great product {i}" for i in range(30)] + [f"awful thing {i}" for i in range(30)]
    posteriors = np.repeat(np.eye(2), 30, axis=0)
    model = learn.fit(TEXT, texts, posteriors)
    proba = learn.predict(model, ["great", "awful", "unseen words"], 2)
    assert proba[0].argmax() == 0 and proba[1].argmax() == 1


def test_one_label_only_is_an_error_saying_what_is_missing() -> None:
    with pytest.raises(ValueError, match="at least two labels"):
        learn.fit(FEATURES, np.zeros((5, 2)), np.tile([1.0, 0.0], (5, 1)))


def test_model_prior_e_step_matches_hand_computed_posteriors() -> None:
    # one worker, right 80% of the time on 2 classes; task 0 has one answer "0", task 1 none
    confusion = np.array([[[0.8, 0.2], [0.2, 0.8]]])
    prior = np.array([[0.2, 0.8], [0.3, 0.7]])
    post = learn.posteriors_with_prior(
        np.array([0]), np.array([0]), np.array([0]), confusion, prior
    )
    # task 0: 0.2 * 0.8 = 0.16 against 0.8 * 0.2 = 0.16 -> even; task 1: its prior
    assert post == pytest.approx(np.array([[0.5, 0.5], [0.3, 0.7]]))
    # a uniform prior gives plain Dawid-Skene with equal class priors
    even = learn.posteriors_with_prior(
        np.array([0, 0]), np.array([0, 0]), np.array([1, 1]), confusion, np.full((1, 2), 0.5)
    )
    assert even == pytest.approx(np.array([[1 / 17, 16 / 17]]))
