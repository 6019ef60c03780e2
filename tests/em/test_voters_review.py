"""Models as voters and review answers in the pure EM code: exactness without them,
invariants with them."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em import AutoAggregator, DawidSkene, HierarchicalDawidSkene, OneCoinDawidSkene
from crowd.em._review import STAMP_PRIOR
from crowd.em.live import fit_run
from crowd.em.voters import ModelVotes


def _crowd(seed: int = 0) -> tuple[np.ndarray, ...]:
    """300 binary tasks; workers 0-4 answer blind (85% right, two a task); 5-7 stamp every
    proposal; 8 reviews honestly but confirms 20% of proposals anyway. The proposals are right
    on 80% of the tasks. Returns ``(truth, tasks, workers, labels, proposals)``."""
    rng = np.random.default_rng(seed)
    n = 300
    truth = rng.integers(0, 2, n)
    shown = np.where(rng.random(n) < 0.8, truth, 1 - truth)
    rows = []
    for t in range(n):
        for w in rng.choice(5, 2, replace=False):
            rows.append((t, w, truth[t] if rng.random() < 0.85 else 1 - truth[t], -1))
        rows += [(t, w, shown[t], shown[t]) for w in (5, 6, 7)]
        honest = truth[t] if rng.random() < 0.85 else 1 - truth[t]
        rows.append((t, 8, shown[t] if rng.random() < 0.2 else honest, shown[t]))
    tasks, workers, labels, proposals = (np.array(c) for c in zip(*rows, strict=True))
    return truth, tasks, workers, labels, proposals


@pytest.mark.parametrize("cls", [DawidSkene, HierarchicalDawidSkene, OneCoinDawidSkene])
def test_all_blind_proposals_give_exactly_the_plain_fit(cls: type) -> None:
    _, tasks, workers, labels, _ = _crowd()
    plain = cls().fit(tasks, workers, labels)
    blind = cls().fit(tasks, workers, labels, proposals=np.full(tasks.size, -1))
    np.testing.assert_array_equal(plain.posteriors_, blind.posteriors_)
    np.testing.assert_array_equal(plain.confusion_, blind.confusion_)
    assert plain.objective_history_ == blind.objective_history_
    assert np.isnan(blind.stamp_rate_).all()


@pytest.mark.parametrize("cls", [DawidSkene, HierarchicalDawidSkene, AutoAggregator])
def test_stampers_are_found_and_outweighed_and_inputs_are_untouched(cls: type) -> None:
    truth, tasks, workers, labels, proposals = _crowd()
    before = [a.copy() for a in (tasks, workers, labels, proposals)]
    plain = cls().fit(tasks, workers, labels)
    review = cls().fit(tasks, workers, labels, proposals=proposals)
    for a, b in zip((tasks, workers, labels, proposals), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # Plainly, three stampers outvote the two blind answers wherever the proposal is wrong.
    assert np.mean(plain.labels_ == truth) < 0.85 < np.mean(review.labels_ == truth)
    assert (review.stamp_rate_[5:8] > 0.9).all() and review.stamp_rate_[8] < 0.5
    assert np.isnan(review.stamp_rate_[:5]).all()


def test_em_with_review_answers_never_decreases_its_objective() -> None:
    _, tasks, workers, labels, proposals = _crowd(1)
    model = DawidSkene(tol=0, max_iter=40)
    with pytest.warns(UserWarning):
        model.fit(tasks, workers, labels, proposals=proposals)
    assert (np.diff(model.objective_history_) > -1e-12).all()


def test_a_worker_seen_only_confirming_right_proposals_keeps_near_the_prior() -> None:
    """A confirmation of a right proposal cannot tell a stamp from a look: the prior decides."""
    tasks = np.repeat(np.arange(20), 3)
    workers = np.tile([0, 1, 2], 20)
    labels = np.repeat(np.arange(20) % 2, 3)
    proposals = np.where(workers == 2, labels, -1)
    model = DawidSkene().fit(tasks, workers, labels, proposals=proposals)
    assert abs(model.stamp_rate_[2] - STAMP_PRIOR) < 0.15


def test_bad_proposals_are_refused() -> None:
    _, tasks, workers, labels, proposals = _crowd()
    with pytest.raises(ValueError, match="one entry per answer"):
        DawidSkene().fit(tasks, workers, labels, proposals=proposals[:-1])
    with pytest.raises(ValueError, match="class index below 2"):
        DawidSkene().fit(tasks, workers, labels, proposals=np.full(tasks.size, 2))


def _run_args() -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    _, tasks, workers, labels, _ = _crowd(2)
    ids = np.arange(tasks.size) * 3 + 1
    gold = {"gold_task_ids": np.array([1000, 1001]), "gold_labels": np.array([1, 0])}
    return (ids, tasks + 1000, workers + 50, labels), gold


@pytest.mark.parametrize("method", ["ds", "auto", "mv"])
def test_a_run_without_predictions_or_review_answers_is_exactly_todays(method: str) -> None:
    args, gold = _run_args()
    plain = fit_run(*args, n_classes=2, method=method, decide=True, **gold)
    # Predictions only on tasks nobody answered and that are not gold: nothing to vote on.
    elsewhere = ModelVotes(
        task_ids=np.array([5, 6]), models=np.array([0, 0]), labels=np.array([1, 1]), names=("m",)
    )
    for extra in (
        {"votes": ModelVotes.empty(), "proposals": np.full(args[0].size, -1)},
        {"votes": elsewhere},
    ):
        same = fit_run(*args, n_classes=2, method=method, decide=True, **gold, **extra)
        for name in ("task_ids", "labels", "posteriors", "decision", "confusion", "accuracy_n"):
            np.testing.assert_array_equal(getattr(plain, name), getattr(same, name))
        assert same.voters == () and same.n_iter == plain.n_iter


def test_a_voter_is_sliced_off_the_worker_figures_and_anchored_by_gold_it_alone_predicted() -> None:
    args, _ = _run_args()
    _, tasks, workers, _ = args
    answered = np.unique(tasks)
    # A model that says 1 everywhere, also on the two gold tasks no one answered.
    votes = ModelVotes(
        task_ids=np.concatenate([answered, [2000, 2001]]),
        models=np.zeros(answered.size + 2, dtype=np.int64),
        labels=np.ones(answered.size + 2, dtype=np.int64),
        names=("ones",),
    )
    more_gold = {"gold_task_ids": np.array([2000, 2001]), "gold_labels": np.array([1, 0])}
    run = fit_run(*args, n_classes=2, method="ds", votes=votes, **more_gold)
    plain = fit_run(*args, n_classes=2, method="ds", **more_gold)
    np.testing.assert_array_equal(run.task_ids, plain.task_ids)  # no result for gold-only tasks
    np.testing.assert_array_equal(run.worker_ids, np.unique(workers))
    assert run.confusion.shape == (np.unique(workers).size, 2, 2)
    (voter,) = run.voters
    assert voter.model == "ones" and voter.predictions == answered.size + 2
    assert (voter.gold_predictions, voter.gold_correct) == (2, 1)
    assert voter.confusion[0, 1] > 0.99  # true 0: it says 1
    assert np.mean(run.labels == plain.labels) > 0.97  # outvoted: its "1" says nothing


def test_one_person_and_a_model_anchored_on_gold_do_not_collapse_the_labels() -> None:
    """A model saying "0" on every task (and on a gold task of class 2), one person answering
    each task: the person's labels stand under every method. Before voters were kept out of
    hierarchical DS's pooled crowd accuracy, hds labelled every task 2."""
    truth = np.array([0, 1, 2, 0, 1, 2])
    votes = ModelVotes(
        task_ids=np.arange(1, 8), models=np.zeros(7, dtype=np.int64),
        labels=np.zeros(7, dtype=np.int64), names=("zeros",),
    )  # fmt: skip
    for method in ("auto", "hds", "ds", "onecoin"):
        run = fit_run(
            np.arange(6), np.arange(1, 7), np.full(6, 9), truth, n_classes=3, method=method,
            gold_task_ids=np.array([7]), gold_labels=np.array([2]), votes=votes,
        )  # fmt: skip
        np.testing.assert_array_equal(run.labels, truth)
        np.testing.assert_allclose(run.voters[0].confusion[:, 0], 1.0, atol=1e-6)


def test_voters_must_be_among_the_workers() -> None:
    with pytest.raises(ValueError, match="voters=3 but there are only 2 workers"):
        DawidSkene().fit([0, 1], [0, 1], [0, 1], voters=3)
