"""One live run on database ids: id mapping, gold, warm start, recent gold, changed rows."""

from __future__ import annotations

import numpy as np

from crowd.em import AutoAggregator
from crowd.em.live import (
    changed_rows,
    fit_run,
    majority_agreement,
    recent_gold,
    typical_worker_posteriors,
)
from tests.em.test_auto import colluding_crowd


def _answers() -> tuple[np.ndarray, ...]:
    # tasks 100..103 (103 is gold "1"), workers 7, 9, 12; ids are not dense
    task = np.array([100, 100, 100, 101, 101, 101, 102, 102, 102, 103, 103, 103])
    worker = np.array([7, 9, 12] * 4)
    label = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0])
    ids = np.arange(label.size) * 10 + 5
    return ids, task, worker, label


def test_fit_run_maps_ids_clamps_gold_and_counts_recent_gold() -> None:
    ids, task, worker, label = _answers()
    before = [a.copy() for a in (ids, task, worker, label)]
    run = fit_run(
        ids, task, worker, label, n_classes=2,
        gold_task_ids=np.array([103, 555]), gold_labels=np.array([1, 0]),
    )  # fmt: skip
    for a, b in zip((ids, task, worker, label), before, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    np.testing.assert_array_equal(run.task_ids, [100, 101, 102, 103])
    np.testing.assert_array_equal(run.worker_ids, [7, 9, 12])
    np.testing.assert_array_equal(run.task_answers, [3, 3, 3, 3])
    np.testing.assert_allclose(run.posteriors[3], [0.0, 1.0])  # gold clamped
    np.testing.assert_array_equal(run.labels[:3], [0, 1, 0])
    np.testing.assert_allclose(run.posteriors.sum(axis=1), 1.0)
    # gold answers: 7 and 9 said 1 (right), 12 said 0 (wrong); task 555 had no answers
    np.testing.assert_array_equal(run.gold_answers, [1, 1, 1])
    np.testing.assert_array_equal(run.gold_correct, [1, 1, 0])
    assert run.confusion.shape == (3, 2, 2) and not run.warm_start


def test_a_run_over_no_answers_publishes_nothing_and_does_not_fail() -> None:
    """A project whose tasks nobody has answered yet still gets a run (a requester asks for
    one, or only gold is in): it must succeed with nothing to publish, not fail."""
    empty = np.array([], dtype=np.int64)
    for method in ("ds", "auto"):
        run = fit_run(
            empty, empty, empty, empty, n_classes=2,
            gold_task_ids=np.array([5]), gold_labels=np.array([1]), method=method,
        )  # fmt: skip
        assert run.task_ids.size == 0 and run.worker_ids.size == 0
        assert run.posteriors.shape[0] == 0


def test_fit_run_warm_starts_known_workers_and_gives_newcomers_the_mean() -> None:
    ids, task, worker, label = _answers()
    first = fit_run(ids, task, worker, label, n_classes=2, gold_task_ids=np.zeros(0, int),
                    gold_labels=np.zeros(0, int))  # fmt: skip
    more_ids = np.append(ids, 999)
    more = [np.append(task, 101), np.append(worker, 20), np.append(label, 1)]
    warm = fit_run(
        more_ids, *more, n_classes=2, gold_task_ids=np.zeros(0, int), gold_labels=np.zeros(0, int),
        warm_workers=first.worker_ids, warm_confusion=first.confusion, warm_priors=first.priors,
    )  # fmt: skip
    cold = fit_run(more_ids, *more, n_classes=2, gold_task_ids=np.zeros(0, int),
                   gold_labels=np.zeros(0, int))  # fmt: skip
    assert warm.warm_start and warm.n_iter <= cold.n_iter
    np.testing.assert_array_equal(warm.worker_ids, [7, 9, 12, 20])


def test_recent_gold_keeps_each_workers_newest_answers() -> None:
    ids = np.array([1, 2, 3, 4, 5, 6])
    workers = np.array([0, 0, 0, 1, 0, 1])
    correct = np.array([False, False, True, True, True, False])
    answered, right = recent_gold(ids, workers, correct, 3, window=2)
    np.testing.assert_array_equal(answered, [2, 2, 0])  # worker 0: ids 5 and 3
    np.testing.assert_array_equal(right, [2, 1, 0])


def test_changed_rows_flags_new_tasks_and_real_changes_only() -> None:
    ids, task, worker, label = _answers()
    run = fit_run(ids, task, worker, label, n_classes=2, gold_task_ids=np.zeros(0, int),
                  gold_labels=np.zeros(0, int))  # fmt: skip
    assert changed_rows(run, np.zeros(0, int), np.zeros(0, int), np.zeros(0, int),
                        np.zeros(0)).all()  # fmt: skip
    published = (run.task_ids[:3], run.labels[:3], run.task_answers[:3], run.confidence[:3])
    mask = changed_rows(run, *published)
    np.testing.assert_array_equal(mask, [False, False, False, True])  # 103 is new
    nudged = published[3] + np.array([5e-4, 2e-3, 0.0])
    mask = changed_rows(run, published[0], published[1], published[2], nudged)
    np.testing.assert_array_equal(mask, [False, True, False, True])


def test_decide_gives_a_less_extreme_probability_of_the_same_label() -> None:
    ids, task, worker, label = _answers()
    none = np.zeros(0, int)
    plain = fit_run(ids, task, worker, label, n_classes=2, gold_task_ids=none, gold_labels=none)
    np.testing.assert_array_equal(plain.decision, plain.confidence)
    run = fit_run(
        ids, task, worker, label, n_classes=2, gold_task_ids=none, gold_labels=none, decide=True
    )
    np.testing.assert_array_equal(run.labels, plain.labels)  # decisions never relabel
    assert np.all(run.decision <= run.confidence + 1e-12)
    assert np.any(run.decision < run.confidence - 1e-3)
    assert np.all((run.decision > 0) & (run.decision < 1))


def _mixed_crowd() -> tuple[np.ndarray, ...]:
    """40 tasks of truth 0/1 alternating; workers 1-3 always right, workers 4-6 right on 70%.
    Task 900 has one answer from a reliable worker (0) against two from noisy ones (1); task
    901 has three reliable workers agreeing on 0."""
    rng = np.random.default_rng(3)
    rows = []  # (task, worker, label)
    for t in range(40):
        truth = t % 2
        rows += [(t, w, truth) for w in (1, 2, 3)]
        rows += [(t, w, truth if rng.random() < 0.7 else 1 - truth) for w in (4, 5, 6)]
    rows += [(900, 1, 0), (900, 4, 1), (900, 5, 1)]
    rows += [(901, w, 0) for w in (1, 2, 3)]
    t, w, lab = np.array(rows).T
    return np.arange(t.size), t, w, lab


def test_decide_keeps_open_a_label_that_a_few_more_typical_answers_could_flip() -> None:
    ids, task, worker, label = _mixed_crowd()
    none = np.zeros(0, int)
    run = fit_run(ids, task, worker, label, n_classes=2, gold_task_ids=none, gold_labels=none,
                  decide=True)  # fmt: skip
    split, clear = np.searchsorted(run.task_ids, [900, 901])
    # The per-worker fit trusts worker 1 and is sure of 0 on the split task ...
    assert run.labels[split] == 0 and run.confidence[split] > 0.99
    # ... but two typical answers say 1: dynamic overlap must not close it at any target.
    assert run.decision[split] < 0.5
    # Three reliable answers agreeing: confident under both views, so it can close.
    assert run.labels[clear] == 0 and run.decision[clear] > 0.99


def test_typical_worker_posteriors_by_hand() -> None:
    # Two workers, 2 classes: worker 0 (3 answers) always right, worker 1 (1 answer) a coin.
    confusion = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    confusion = np.clip(confusion, 0.1, 0.9)  # typical = 3/4 * [[.9,.1],[.1,.9]] + 1/4 * coin
    task = np.array([0, 0, 0, 1])
    worker = np.array([0, 0, 0, 1])
    label = np.array([0, 0, 1, 1])
    before = confusion.copy()
    post = typical_worker_posteriors(task, worker, label, n_tasks=3, confusion=confusion,
                                     priors=np.array([0.5, 0.5]))  # fmt: skip
    np.testing.assert_array_equal(confusion, before)
    right = 0.75 * 0.9 + 0.25 * 0.5  # 0.8
    # task 0: two votes for 0, one for 1 -> odds right/wrong = 0.8 / 0.2
    np.testing.assert_allclose(post[0], [0.8, 0.2])
    np.testing.assert_allclose(post[1], [1 - right, right])
    np.testing.assert_allclose(post[2], [0.5, 0.5])  # no answers: the priors


NO_GOLD = {"gold_task_ids": np.zeros(0, np.int64), "gold_labels": np.zeros(0, np.int64)}


def _previous(run):  # the warm_* arguments a later run gets from ``run``
    return {
        "warm_workers": run.worker_ids,
        "warm_confusion": run.confusion,
        "warm_priors": run.priors,
    }


def test_cold_check_replaces_a_warm_start_stuck_in_the_first_runs_single_class() -> None:
    # A first run saw one answer, so one class; its estimates floor the other class's prior.
    first = fit_run(np.array([1]), np.array([0]), np.array([0]), np.array([0]), n_classes=2,
                    **NO_GOLD)  # fmt: skip
    task = np.repeat(np.arange(20), 3)
    worker = np.tile(np.arange(3), 20)
    label = np.repeat(np.arange(20) % 2, 3)  # every worker right, both classes
    ids = np.arange(task.size)
    stuck = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD, **_previous(first))
    checked = fit_run(
        ids, task, worker, label, n_classes=2, **NO_GOLD, **_previous(first), cold_check=True
    )
    cold = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD)
    assert stuck.warm_start and len(set(stuck.labels.tolist())) == 1  # the trap
    assert not checked.warm_start
    np.testing.assert_array_equal(checked.labels, cold.labels)
    np.testing.assert_array_equal(checked.labels, np.arange(20) % 2)


def test_cold_check_keeps_a_warm_start_that_found_a_better_fit() -> None:
    # Eight tasks, three workers: EM from majority-vote shares (cold) stops in a local optimum
    # that a start from other estimates beats (found by search; objective per answer).
    label = np.array([1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    task = np.repeat(np.arange(8), 3)
    worker = np.tile(np.arange(3), 8)
    ids = np.arange(label.size)
    draw = np.random.default_rng(1004)
    previous = {
        "warm_workers": np.arange(3),
        "warm_confusion": draw.dirichlet(np.ones(2), size=(3, 2)),
        "warm_priors": draw.dirichlet(np.ones(2)),
    }
    checked = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD, **previous,
                      cold_check=True)  # fmt: skip
    cold = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD)
    assert checked.warm_start
    assert checked.objective is not None and cold.objective is not None
    assert checked.objective > cold.objective + 1e-3


def test_a_warm_start_with_its_classes_swapped_is_refitted_cold() -> None:
    # A relabelled fit is as likely as the right one, so only the majority vote can tell.
    task = np.repeat(np.arange(30), 3)
    worker = np.tile(np.arange(3), 30)
    label = np.repeat(np.arange(30) % 2, 3)
    label[::7] = 1 - label[::7]  # a few wrong answers
    ids = np.arange(task.size)
    right = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD)
    swapped = {
        "warm_workers": right.worker_ids,
        "warm_confusion": right.confusion[:, ::-1, :].copy(),  # true classes swapped
        "warm_priors": right.priors[::-1].copy(),
    }
    run = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD, **swapped)
    assert not run.warm_start
    np.testing.assert_array_equal(run.labels, right.labels)
    np.testing.assert_array_equal(run.labels, np.arange(30) % 2)
    # a warm start that agrees with the majority is kept
    kept = fit_run(ids, task, worker, label, n_classes=2, **NO_GOLD, **_previous(right))
    assert kept.warm_start
    np.testing.assert_array_equal(kept.labels, right.labels)


def test_majority_agreement_counts_only_strict_majorities() -> None:
    votes = np.array([[3, 0], [1, 1], [0, 2], [0, 0]])
    assert majority_agreement(votes, np.array([0, 1, 1, 0])) == 1.0
    assert majority_agreement(votes, np.array([1, 0, 1, 1])) == 0.5
    assert majority_agreement(np.array([[1, 1]]), np.array([0])) == 1.0


def test_a_live_auto_run_chooses_and_labels_as_the_offline_estimator() -> None:
    tasks, workers, labels, truth = colluding_crowd(0)
    # Database ids: sparse and not in answer order; the first 100 tasks are gold.
    task_ids, worker_ids = tasks * 7 + 1000, 50 - workers
    gold_ids = np.arange(100) * 7 + 1000
    offline = AutoAggregator().fit(tasks, workers, labels, gold=(np.arange(100), truth[:100]))
    for warm in (None, offline):
        start = {} if warm is None else {
            "warm_workers": np.sort(np.unique(worker_ids)),
            "warm_confusion": warm.confusion_[::-1], "warm_priors": warm.priors_,
            "cold_check": True,
        }  # fmt: skip
        live = fit_run(
            np.arange(tasks.size), task_ids, worker_ids, labels, n_classes=2,
            gold_task_ids=gold_ids, gold_labels=truth[:100], method="auto", **start,
        )  # fmt: skip
        assert live.method == offline.method_ == "mv" and live.reason == offline.reason_
        np.testing.assert_array_equal(live.labels, offline.labels_)


def test_a_run_of_a_fixed_method_says_it_was_the_projects_choice() -> None:
    ids, task, worker, label = _answers()
    run = fit_run(ids, task, worker, label, n_classes=2, gold_task_ids=np.array([103]),
                  gold_labels=np.array([1]), method="onecoin")  # fmt: skip
    assert run.method == "onecoin" and run.reason == "the project's method"


def test_ids_are_encoded_as_np_unique_does_whether_dense_or_spread() -> None:
    from crowd.em.live import encode_ids

    rng = np.random.default_rng(5)
    for ids in (
        rng.integers(1000, 1400, 5000),  # dense: a presence table
        rng.integers(0, 10**12, 500),  # spread: a sort
        np.array([7, 7, 7], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    ):
        want, got = np.unique(ids, return_inverse=True), encode_ids(ids)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])
        assert got[0].dtype == want[0].dtype
