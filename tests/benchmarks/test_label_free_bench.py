"""benchmarks/label_free.py: seeded synthetic crowds and the label-free rules it compares."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import label_free


def test_synthetic_crowds_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    first, again = label_free.synthetic("imbalanced", 4), label_free.synthetic("imbalanced", 4)
    for name in ("tasks", "workers", "labels", "truth"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.labels, label_free.synthetic("imbalanced", 5).labels)
    assert np.mean(first.truth == 0) > 0.8  # the 0.85 / 0.15 prior


def test_the_copier_answers_every_task_beside_its_leader_and_mostly_copies_it() -> None:
    crowd = label_free.synthetic("copier", 0)
    leader = crowd.labels[crowd.workers == 0]
    copier = crowd.labels[crowd.workers == 1]
    assert leader.size == copier.size == crowd.n_tasks
    assert np.mean(leader == copier) > 0.85  # 80% copies plus chance agreement
    assert np.mean(leader == crowd.truth) < 0.75  # a mediocre leader


def test_kappa_gives_no_credit_for_predicting_the_class_workers_over_use() -> None:
    crowd = label_free.synthetic("imbalanced", 0)
    held = label_free.HeldOut(crowd, folds=3, seed=0)
    held._cache["always-0"] = (np.ones(crowd.tasks.size), np.zeros(crowd.tasks.size, np.intp))
    assert np.mean(crowd.labels == 0) > 0.65  # raw agreement would be high...
    assert held.kappa("always-0") == 0.0  # ...kappa is exactly chance
    assert held.kappa("hds") > 0.1  # a real aggregate does better than chance


def test_every_rule_labels_every_task_and_says_what_it_chose() -> None:
    crowd = label_free.synthetic("onecoin", 0)
    held = label_free.HeldOut(crowd, folds=3, seed=0)
    for rule in label_free.RULES:
        labels, chose = label_free.apply_rule(rule, crowd, held)
        assert labels.shape == (crowd.n_tasks,) and set(np.unique(labels)) <= {0, 1, 2}
        assert np.mean(labels == crowd.truth) > 0.6
        assert chose == rule or rule in ("cv-strength", "stack", "kappa", "best-init")


def test_thinning_keeps_a_seeded_subset_of_each_tasks_answers() -> None:
    crowd = label_free.synthetic("ds", 0)  # 3 answers per task
    thinned = label_free.thin(crowd, 2, seed=7)
    per_task = np.bincount(thinned.tasks, minlength=crowd.n_tasks)
    assert per_task.max() == 2 and per_task.min() == 2

    def rows(c: label_free.Crowd) -> set[tuple[int, int, int]]:
        return set(zip(c.tasks.tolist(), c.workers.tolist(), c.labels.tolist(), strict=True))

    assert rows(thinned) <= rows(crowd)
    again = label_free.thin(crowd, 2, seed=7)
    np.testing.assert_array_equal(again.workers, thinned.workers)
    assert not np.array_equal(label_free.thin(crowd, 2, seed=8).workers, thinned.workers)
    assert label_free.thin(crowd, 5, seed=7).tasks.size == crowd.tasks.size  # nothing to drop
