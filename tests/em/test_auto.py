"""AutoAggregator: the label-free default, and the gold that overrules it only when it can."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import (
    DEFAULT_METHOD,
    LABEL_FREE_DEFAULT,
    METHODS,
    AutoAggregator,
    HierarchicalDawidSkene,
    MajorityVote,
)
from crowd.em.auto import choose_method, compare, sign_test


def colluding_crowd(seed: int, n_tasks: int = 400) -> tuple[np.ndarray, ...]:
    """Two classes; three workers copy one shared answer (right 55% of the time) on every
    task, and four of twelve independent workers (75% right) answer each task. Every
    Dawid-Skene model takes the three for near-perfect (they always agree) and follows them;
    majority vote does not. Returns (tasks, workers, labels, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_tasks)
    tasks, workers, labels = [], [], []
    for task, true in enumerate(truth):
        shared = true if rng.random() < 0.55 else 1 - true
        honest = rng.choice(np.arange(3, 15), 4, replace=False)
        for worker in [0, 1, 2, *honest]:
            right = (worker < 3 and shared == true) or (worker >= 3 and rng.random() < 0.75)
            tasks.append(task)
            workers.append(int(worker))
            labels.append(int(true if right else 1 - true))
    return np.array(tasks), np.array(workers), np.array(labels), truth


def test_auto_is_the_default_method() -> None:
    assert DEFAULT_METHOD == "auto" and METHODS["auto"] is AutoAggregator
    assert LABEL_FREE_DEFAULT == "hds"


def test_without_gold_it_is_the_label_free_default() -> None:
    tasks, workers, labels, _ = colluding_crowd(0)
    auto = AutoAggregator().fit(tasks, workers, labels)
    hds = HierarchicalDawidSkene().fit(tasks, workers, labels)
    assert auto.method_ == "hds" and auto.n_gold_ == 0 and auto.gold_correct_ == {}
    assert "no gold" in auto.reason_
    np.testing.assert_array_equal(auto.labels_, hds.labels_)
    np.testing.assert_allclose(auto.posteriors_, hds.posteriors_)


def test_gold_that_proves_another_method_better_switches_to_it() -> None:
    tasks, workers, labels, truth = colluding_crowd(0)
    gold = (np.arange(100), truth[:100])
    auto = AutoAggregator().fit(tasks, workers, labels, gold=gold)
    assert auto.method_ == "mv" and auto.n_gold_ == 100
    assert auto.gold_correct_["mv"] > auto.gold_correct_["hds"]
    assert "sign test p = " in auto.reason_ and "< 0.05" in auto.reason_
    # The chosen method's fit with the gold clamped, and right more often on the other tasks.
    mv = MajorityVote().fit(tasks, workers, labels, gold=gold)
    np.testing.assert_array_equal(auto.labels_, mv.labels_)
    hds = HierarchicalDawidSkene().fit(tasks, workers, labels, gold=gold)
    rest = slice(100, None)
    assert (auto.labels_[rest] == truth[rest]).mean() > (
        hds.labels_[rest] == truth[rest]
    ).mean() + 0.1


def test_gold_that_cannot_tell_methods_apart_keeps_the_default_and_is_clamped() -> None:
    tasks, workers, labels, truth = colluding_crowd(0)
    wrong = 1 - truth[:10]  # even wrong gold: clamped, never a reason to switch on 10 tasks
    auto = AutoAggregator().fit(tasks, workers, labels, gold=(np.arange(10), wrong))
    assert auto.method_ == "hds" and "no method was right significantly more often" in auto.reason_
    np.testing.assert_array_equal(auto.labels_[:10], wrong)
    hds = HierarchicalDawidSkene().fit(tasks, workers, labels, gold=(np.arange(10), wrong))
    np.testing.assert_array_equal(auto.labels_, hds.labels_)


def test_the_choice_is_deterministic_and_ignores_a_warm_start() -> None:
    tasks, workers, labels, truth = colluding_crowd(1)
    gold = (np.arange(60), truth[:60])
    first = AutoAggregator().fit(tasks, workers, labels, gold=gold)
    warm = HierarchicalDawidSkene().fit(tasks[:500], workers[:500], labels[:500])
    second = AutoAggregator().fit(tasks, workers, labels, gold=gold, init=warm)
    assert first.method_ == second.method_ and first.reason_ == second.reason_
    assert first.gold_correct_ == second.gold_correct_


def test_gold_tasks_without_answers_are_not_compared() -> None:
    tasks, workers, labels, truth = colluding_crowd(0, n_tasks=50)
    gold = (np.array([0, 1, 2, 60, 61]), np.array([truth[0], truth[1], truth[2], 0, 1]))
    choice = choose_method(tasks, workers, labels, n_tasks=62, gold=gold)
    assert choice.n_gold == 3 and max(choice.gold_correct.values()) <= 3


def test_sign_test_is_the_exact_one_sided_binomial_tail() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(4, 0) == pytest.approx(1 / 16)
    assert sign_test(6, 1) == pytest.approx(8 / 128)  # (C(7,6) + C(7,7)) / 2^7
    assert sign_test(1, 6) == pytest.approx(127 / 128)


def test_fewer_than_five_disagreements_never_overrule_the_default() -> None:
    base = np.zeros(5, dtype=bool)
    four = compare({"hds": base[:4], "mv": ~base[:4]}, 0.05)
    assert four[0] == "hds"  # 4 won, 0 lost: p = 1/16
    five = compare({"hds": base, "mv": ~base}, 0.05)
    assert five[0] == "mv" and "5 won, 0 lost" in five[1]  # p = 1/32


def test_among_significant_methods_the_one_right_most_often_wins() -> None:
    base = np.array([False] * 12 + [True] * 8)
    better = np.array([True] * 10 + [False] * 2 + [True] * 8)
    best = np.array([True] * 12 + [True] * 8)
    assert compare({"hds": base, "mv": better, "ds": best}, 0.05)[0] == "ds"


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_bad_alpha_is_refused_with_the_range(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\]"):
        AutoAggregator(alpha=alpha).fit([0], [0], [0])
