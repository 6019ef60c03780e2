"""The typed live fits (crowd/em/typed.py): service ids in and out, gold left out of the
results but counted in the workers' gold figures, and the decision dynamic overlap reads."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em.typed import (
    Answers,
    changed_typed,
    fit_multilabel,
    fit_numeric,
    fit_pairwise,
    fit_typed,
)

EMPTY_I = np.zeros(0, dtype=np.int64)
EMPTY_F = np.zeros(0)


def answers(task_ids, worker_ids, *, labels=None, values=None, gold=(), gold_labels=(),
            gold_values=(), gold_sets=None, pairs=None, n_labels=0) -> Answers:  # fmt: skip
    n = len(task_ids)
    return Answers(
        answer_ids=np.arange(1, n + 1, dtype=np.int64),
        task_ids=np.asarray(task_ids, dtype=np.int64),
        worker_ids=np.asarray(worker_ids, dtype=np.int64),
        labels=np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels),
        values=np.zeros(n) if values is None else np.asarray(values, dtype=np.float64),
        gold_task_ids=np.asarray(gold, dtype=np.int64),
        gold_labels=np.asarray(gold_labels, dtype=np.int64),
        gold_values=np.asarray(gold_values, dtype=np.float64),
        gold_sets=np.zeros((len(gold), n_labels), dtype=np.int8)
        if gold_sets is None
        else np.asarray(gold_sets, dtype=np.int8),
        pairs=pairs,
    )


def test_multilabel_results_keep_service_ids_and_leave_gold_out() -> None:
    # Tasks 10 and 20, gold task 30 ({label 1}); workers 7 and 9 agree, worker 8 ticks all.
    tasks = [10, 10, 10, 20, 20, 20, 30, 30]
    workers = [7, 9, 8, 7, 9, 8, 7, 8]
    ticked = [[1, 0], [1, 0], [1, 1], [0, 0], [0, 0], [1, 1], [0, 1], [1, 1]]
    a = answers(tasks, workers, labels=np.array(ticked), gold=[30], gold_sets=[[0, 1]], n_labels=2)
    r = fit_multilabel(a, 2, gold_window=20)
    assert r.task_ids.tolist() == [10, 20]
    assert r.label_sets == [[0], []]
    assert r.worker_ids.tolist() == [7, 8, 9]
    assert r.gold_answers.tolist() == [1, 1, 0] and r.gold_correct.tolist() == [1, 0, 0]
    # The decision is the least decided label's probability of its decision.
    p = r.posteriors
    assert np.allclose(r.decision, np.maximum(p, 1 - p).min(axis=1))
    assert r.estimates[1]["specificity"] < r.estimates[0]["specificity"]


def test_numeric_decision_is_one_minus_the_interval_width_share_of_the_scale() -> None:
    a = answers([1, 1, 2, 2, 3], [5, 6, 5, 6, 5], values=[3, 3, 1, 5, 4], gold=[3], gold_values=[4])
    r = fit_numeric(a, 1.0, 5.0, 1.0, gold_window=20)
    assert r.task_ids.tolist() == [1, 2]
    width = r.high - r.low
    assert np.allclose(r.decision, np.clip(1 - width / 4, 0, 1))
    assert width[1] > width[0] and r.decision[1] < r.decision[0]
    assert np.all((r.low <= r.values) & (r.values <= r.high))
    assert np.all((r.low >= 1) & (r.high <= 5))
    # Worker 5 answered gold task 3 with its value (within half a step): correct.
    assert r.gold_answers.tolist() == [1, 0] and r.gold_correct.tolist() == [1, 0]
    assert np.isnan(r.accuracy).all()


def test_pairwise_ranks_items_by_their_wins_and_reports_each_component() -> None:
    # Items a > b > c, and a separate pair x > y; task ids 1..4, each answered by 2 workers.
    pairs = (
        np.array([1, 2, 3, 4], dtype=np.int64),
        np.array(["a", "c", "a", "y"], dtype=object),
        np.array(["b", "b", "c", "x"], dtype=object),
    )
    tasks = [1, 1, 2, 2, 3, 3, 4, 4]
    workers = [1, 2, 1, 2, 1, 2, 1, 2]
    winner = [0, 0, 1, 1, 0, 0, 1, 1]  # left, left, right, right, ...
    r = fit_pairwise(answers(tasks, workers, labels=winner, pairs=pairs), gold_window=20)
    items = r.items
    assert items is not None
    assert items.names.tolist() == ["a", "b", "c", "x", "y"]
    assert items.ranks.tolist() == [1, 2, 3, 1, 2]
    assert items.components.tolist() == [0, 0, 0, 1, 1]
    assert items.comparisons.tolist() == [4, 4, 4, 2, 2]
    assert r.labels.tolist() == [0, 1, 0, 1]  # the likelier winner of each task
    assert np.allclose(r.posteriors.sum(axis=1), 1)
    assert r.position_bias is not None and abs(r.position_bias) < 1


def test_a_tie_counts_half_a_win_for_each_side() -> None:
    pairs = (
        np.array([1], dtype=np.int64),
        np.array(["a"], dtype=object),
        np.array(["b"], dtype=object),
    )
    r = fit_pairwise(answers([1, 1], [1, 2], labels=[2, 2], pairs=pairs), gold_window=20)
    assert r.items is not None
    assert abs(r.items.scores[0] - r.items.scores[1]) < 1e-6


def test_fit_typed_refuses_a_categorical_project() -> None:
    with pytest.raises(ValueError, match="not a typed project"):
        fit_typed("categorical", answers([], []), n_labels=2, scale=None, gold_window=20)


def test_a_run_rewrites_only_the_results_that_moved() -> None:
    a = answers([1, 1, 2, 2], [5, 6, 5, 6], values=[3, 3, 1, 5])
    r = fit_numeric(a, 1.0, 5.0, 1.0, gold_window=20)
    published = {
        "task": r.task_ids,
        "label": r.labels,
        "answers": r.task_answers,
        "confidence": r.confidence,
        "decision": r.decision,
        "value": r.values + np.array([0.0, 0.01]),  # task 2's value moved by 0.01
        "low": r.low,
        "high": r.high,
        "label_set": np.array(["", ""], dtype=object),
    }
    assert changed_typed(r, published, value_tol=0.004).tolist() == [False, True]
    assert changed_typed(r, published, value_tol=0.02).tolist() == [False, False]
    nothing = {k: v[:0] for k, v in published.items()}
    assert changed_typed(r, nothing, value_tol=0.02).tolist() == [True, True]
