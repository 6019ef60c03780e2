"""The quality rules' decision: posterior probability of being below a threshold, with floors."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em.live import effective_answers
from crowd.em.quality import (
    BetaPrior,
    RuleInput,
    Verdict,
    WorkerFigures,
    evaluate,
    fit_prior,
    judge,
    project_rules,
    rule_confidence,
)

UNIFORM = BetaPrior(1.0, 1.0, fitted=False)


def gold_rule(right: list[float], asked: list[float], *, floor: float = 0.0) -> RuleInput:
    n = np.array(asked, dtype=np.float64)
    return RuleInput(
        threshold=0.5,
        successes=np.array(right, dtype=np.float64),
        trials=n,
        floor_left=np.full(n.size, floor),
        rate=np.ones(n.size),
    )


def gold_verdict(answers: int, gold: int, right: int) -> Verdict:
    """The gold rule alone (bar 0.5) at the issue's floors, on one worker's record."""
    rules = project_rules(
        figures(answers, gold, right),
        min_accuracy=None,
        min_gold_accuracy=0.5,
        min_answers=15,
        min_gold_answers=5,
        gold_window=20,
    )
    return judge(rules, 0.95)


def figures(answers: int, gold: int, right: int) -> WorkerFigures:
    return WorkerFigures(
        answers=np.array([float(answers)]),
        judge_after=np.zeros(1),
        accuracy=np.array([np.nan]),
        accuracy_n=np.zeros(1),
        accuracy_right=np.zeros(1),
        gold_answers=np.array([float(gold)]),
        gold_correct=np.array([float(right)]),
    )


def test_posterior_probability_below_the_threshold_matches_hand_computed_cases() -> None:
    # Beta(1 + k, 1 + n - k) below 1/2 is P(Binomial(n + 1, 1/2) >= k + 1):
    #   0 of 5 right: Beta(1, 6) -> 63/64; 4 of 9 right: Beta(5, 6) -> 1 - 386/1024;
    #   2 of 10 right: Beta(3, 9) -> 1 - (1 + 11 + 55) / 2048.
    found = evaluate(gold_rule([0, 4, 2], [5, 9, 10]), 0.95, prior=UNIFORM)
    np.testing.assert_allclose(found.p_below, [63 / 64, 1 - 386 / 1024, 1 - 67 / 2048])
    np.testing.assert_allclose(found.estimate, [1 / 7, 5 / 11, 3 / 12])
    assert found.rejects.tolist() == [True, False, True]
    # The honest worker (4 of 9 gold right) is kept; today's rule (4/9 < 0.5) banned it.
    # The interval holds the estimate and is 95% of the posterior.
    assert np.all(found.low < found.estimate) and np.all(found.estimate < found.high)
    assert found.low[0] == pytest.approx(1 - 0.975 ** (1 / 6))  # Beta(1, 6): 1 - (1 - x)^6


def test_confidence_decides_and_must_be_between_one_half_and_one() -> None:
    rules = {"gold": gold_rule([2], [10])}  # p_below = 0.967
    assert judge(rules, 0.95).ban.tolist() == [True]
    assert judge(rules, 0.99).ban.tolist() == [False]
    for bad in (0.5, 1.0, 0.3):
        with pytest.raises(ValueError, match=r"\(0.5, 1\)"):
            judge(rules, bad)


def test_no_ban_below_the_floors_however_strong_the_evidence() -> None:
    found = gold_verdict(answers=14, gold=10, right=0)
    assert found.evidence["gold"].p_below[0] > 0.999 and not found.ban[0]
    assert found.evidence["gold"].more_answers[0] == 1  # one answer short of the floor
    assert not gold_verdict(answers=40, gold=4, right=0).ban[0]  # too few gold answers
    found = gold_verdict(answers=50, gold=5, right=0)
    assert found.ban[0] and found.rule == ["gold"]


def test_answers_needed_for_a_decision_follow_the_current_rate() -> None:
    # 1 of 4 right at one gold answer per answer: at that rate 3 of 12 is the first count with
    # Beta(4, 10) below 1/2 with probability 0.954 >= 0.95 (2.75 of 11 gives 0.945): 8 more.
    found = evaluate(gold_rule([1], [4]), 0.95, prior=UNIFORM)
    assert found.more_answers[0] == 8
    # at one gold answer in ten answers, ten times as many answers
    slow = RuleInput(0.5, np.array([1.0]), np.array([4.0]), np.zeros(1), np.array([0.1]))
    assert evaluate(slow, 0.95, prior=UNIFORM).more_answers[0] == 80
    # decided already (either way): 0; exactly on the threshold: never (None in the API)
    found = evaluate(gold_rule([0, 20, 5], [5, 20, 10]), 0.95, prior=UNIFORM)
    assert found.more_answers[:2].tolist() == [0, 0] and np.isnan(found.more_answers[2])


def test_the_prior_is_fitted_to_the_projects_workers_with_a_weak_fallback() -> None:
    assert fit_prior(np.array([3.0] * 9), np.array([4.0] * 9)) == UNIFORM  # too few workers
    # 20 workers, half right 8 of 10 and half 4 of 10: mean 0.6; observed variance 0.04, of
    # which binomial noise 0.6 * 0.4 / 10 = 0.024, so the workers' spread is 0.016 and the
    # strength 0.24 / 0.016 - 1 = 14, kept at the upper bound 8.
    prior = fit_prior(np.array([8.0, 4.0] * 10), np.array([10.0] * 20))
    assert prior.fitted and prior.mean == pytest.approx(0.6)
    assert prior.alpha + prior.beta == pytest.approx(8.0)
    # A crowd split between good workers and spammers: a weak prior (strength 2 at least)
    prior = fit_prior(np.array([45.0, 5.0] * 10), np.array([50.0] * 20))
    assert prior.alpha + prior.beta == pytest.approx(2.0)
    # Workers with no evidence do not count
    assert not fit_prior(np.zeros(30), np.zeros(30)).fitted


def test_a_spammer_is_banned_within_the_expected_number_of_gold_answers() -> None:
    # 4 labels: a spammer is right a quarter of the time. Hand-computed above, the evidence
    # at that rate decides at 3 of 12 (Beta(4, 10): 0.954), so the median spammer is banned
    # by its 12th gold answer; a few take longer by chance.
    rng = np.random.default_rng(7)
    right = np.cumsum(rng.random((400, 60)) < 0.25, axis=1).astype(np.float64)
    n = np.broadcast_to(np.arange(1, 61, dtype=np.float64), right.shape)
    found = evaluate(gold_rule(right.ravel().tolist(), n.ravel().tolist()), 0.95, prior=UNIFORM)
    ok = (found.rejects.reshape(right.shape)) & (n >= 5)
    banned_at = np.where(ok.any(axis=1), n[0][ok.argmax(axis=1)], np.inf)
    assert np.median(banned_at) <= 12
    assert np.mean(banned_at <= 30) >= 0.9 and np.all(banned_at <= 60)


def test_an_accurate_worker_is_never_banned_over_1000_simulations_of_20_gold_answers() -> None:
    # The settings: threshold 0.5, at least 5 gold answers, judged after every gold
    # answer. Today's rule (gold accuracy < 0.5) bans such a worker in about 6% of them.
    rng = np.random.default_rng(2024)
    right = np.cumsum(rng.random((1000, 20)) < 0.8, axis=1).astype(np.float64)
    n = np.broadcast_to(np.arange(1, 21, dtype=np.float64), right.shape)
    today = ((right / n < 0.5) & (n >= 5)).any(axis=1)
    banned = np.zeros(1000, dtype=bool)
    for step in range(4, 20):  # after the 5th to the 20th gold answer
        rules = {"gold": gold_rule(right[:, step].tolist(), n[:, step].tolist())}
        banned |= judge(rules, 0.95).ban
    assert not banned.any()
    assert today.sum() > 20


def test_rules_share_the_confidence_so_two_rules_do_not_double_the_risk() -> None:
    # 2 of 10 gold right: Beta(3, 9) below 1/2 with probability 0.967. Alone, the gold rule
    # bans at 0.95; beside the model's rule each needs 1 - 0.05 / 2 = 0.975, so it does not.
    assert rule_confidence(0.95, 1) == pytest.approx(0.95)
    assert rule_confidence(0.95, 2) == pytest.approx(0.975)
    alone = judge({"gold": gold_rule([2], [10])}, 0.95)
    silent = gold_rule([0], [0])  # a second rule with no evidence
    both = judge({"gold": gold_rule([2], [10]), "accuracy": silent}, 0.95)
    assert alone.ban.tolist() == [True] and both.ban.tolist() == [False]
    assert both.evidence["gold"].p_below[0] == pytest.approx(1 - 67 / 2048)
    # 0 of 10 right (Beta(1, 11): 1 - 2^-11) is beyond doubt under either
    assert judge({"gold": gold_rule([0], [10]), "accuracy": silent}, 0.95).ban.tolist() == [True]


def test_answers_judged_with_certainty_count_as_they_are_and_uncertain_ones_count_less() -> None:
    one = np.zeros(8, dtype=np.int64)
    # Judged right or wrong outright (gold): exactly 5 right of 8.
    n, s = effective_answers(np.array([1, 1, 1, 0, 1, 0, 0, 1.0]), one, 1, 4)
    assert n[0] == pytest.approx(8.0, abs=0.01) and s[0] == pytest.approx(5.0, abs=0.01)
    # Left at the class prior (1/K) by the others: no evidence at all.
    n, _ = effective_answers(np.full(8, 0.25), one, 1, 4)
    assert n[0] == pytest.approx(0.0, abs=1e-3)
    # Eight answers the others think right with probability 0.7: less than eight answers of
    # evidence, and pointing to an accuracy above 0.7, not to 0.7 itself: with the errors
    # spread evenly, P(judged right) = 0.7 q + 0.1 (1 - q) is at most 0.7.
    n, s = effective_answers(np.full(8, 0.7), one, 1, 4)
    assert 0 < n[0] < 8 and s[0] / n[0] > 0.7
    # A worker's answers count for that worker only; inputs are not modified.
    r = np.array([1.0, 0.0, 1.0, 0.0])
    n, s = effective_answers(r, np.array([0, 1, 0, 1]), 2, 4)
    assert s.tolist() == pytest.approx([2.0, 0.0], abs=0.01) and r.tolist() == [1, 0, 1, 0]


def test_a_large_project_s_evidence_rounded_to_points_matches_the_exact_sum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above EXACT_UP_TO answers each answer's r is rounded to R_BINS points with a
    second-order correction: the same (n, s) as the exact sum to about 1e-6, with few workers
    (a dense matrix) and with many (a sparse one)."""
    from crowd.em import live

    rng = np.random.default_rng(3)
    for n_answers, n_workers in ((3000, 7), (3000, 5000)):
        worker = rng.integers(0, n_workers, n_answers)
        r = rng.beta(2, 1, n_answers)
        r[rng.random(n_answers) < 0.1] = 1.0
        r[rng.random(n_answers) < 0.05] = 0.0
        exact = effective_answers(r, worker, n_workers, 3)
        monkeypatch.setattr(live, "EXACT_UP_TO", 100)
        if n_workers > 1000:
            monkeypatch.setattr(live, "R_BINS", 2048)  # 5000 x 2048 > 2^22: the sparse path
        binned = effective_answers(r, worker, n_workers, 3)
        monkeypatch.undo()
        for a, b in zip(exact, binned, strict=True):
            assert np.max(np.abs(a - b) / np.maximum(a, 1.0)) < 1e-5
