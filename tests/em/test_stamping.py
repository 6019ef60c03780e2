"""The trap rule's numerics (crowd.em.stamping): each review answer's probability had the
worker looked, the effective record of a worker's stamp rate, and the rule it feeds."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.em.live import fit_run
from crowd.em.quality import judge
from crowd.em.stamping import LOOK_FLOOR, looked_probability, stamp_evidence, stamp_rule

CONFUSION = np.array([[[0.9, 0.1], [0.2, 0.8]]])


def _looked(label: int, proposal: int, posterior: list[float], **kw: object) -> float:
    args = dict(
        posteriors=np.array([posterior]),
        confusion=CONFUSION,
        stamp=None,
        gold_of_task=np.array([-1]),
    )
    args.update(kw)
    one = np.zeros(1, dtype=np.int64)
    out = looked_probability(
        one,
        one,
        np.array([label]),
        np.array([proposal]),
        **args,  # type: ignore[arg-type]
    )
    assert out.shape == (1,)
    return float(out[0])


def _floored(p: float) -> float:
    return (1.0 - LOOK_FLOOR) * p + LOOK_FLOOR / 2


def test_the_looked_probability_leaves_the_answer_out_of_its_task() -> None:
    # Posterior [0.8, 0.2] with the answer "0" in it; without it, [0.8/0.9, 0.2/0.2]
    # normalised = [0.4706, 0.5294]; a look gives "0" with 0.4706 * 0.9 + 0.5294 * 0.2.
    q0 = (0.8 / 0.9) / (0.8 / 0.9 + 1.0)
    assert _looked(0, 0, [0.8, 0.2]) == pytest.approx(_floored(q0 * 0.9 + (1 - q0) * 0.2))
    # Its likelihood in the fit was the stamp mixture: 0.5 + 0.5 pi[k, 0] = [0.95, 0.6].
    q0 = (0.8 / 0.95) / (0.8 / 0.95 + 0.2 / 0.6)
    got = _looked(0, 0, [0.8, 0.2], stamp=np.array([0.5]))
    assert got == pytest.approx(_floored(q0 * 0.9 + (1 - q0) * 0.2))
    # On a gold task (true class 1) a look gives "0" with pi[1, 0] = 0.2, whatever the posterior.
    got = _looked(0, 0, [0.99, 0.01], gold_of_task=np.array([1]))
    assert got == pytest.approx(_floored(0.2))
    # Blind answers are not review answers: none returned.
    out = looked_probability(
        np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), np.array([0, 1]),
        np.array([-1, -1]), posteriors=np.array([[0.5, 0.5]]), confusion=CONFUSION,
        stamp=None, gold_of_task=np.array([-1]),
    )  # fmt: skip
    assert out.shape == (0,)


def test_the_effective_record_matches_hand_computed_posteriors() -> None:
    workers = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    confirms = np.array([False] * 3 + [True] * 6)
    looked = np.array([0.5] * 3 + [0.0] * 3 + [1.0] * 3)
    n, looked_share = stamp_evidence(workers, confirms, looked, 4)
    # Three corrections: likelihood (1 - s)^3, so the look rate u ~ Beta(4, 1): 3 of 3 looked.
    assert n[0] == pytest.approx(3.0, abs=0.02) and looked_share[0] == pytest.approx(3, abs=0.02)
    # Three confirmations a look could not give: s^3, u ~ Beta(1, 4): 0 of 3 looked.
    assert n[1] == pytest.approx(3.0, abs=0.02) and looked_share[1] == pytest.approx(0, abs=0.02)
    # Three confirmations a look gives for sure: a constant likelihood, no evidence at all.
    assert n[2] == pytest.approx(0.0, abs=0.02)
    assert n[3] == 0 and looked_share[3] == 0  # no review answers
    # One confirmation a look gives half the time: likelihood (1 + s) / 2, so u has density
    # (2 - u) * 2/3 on [0, 1]: mean 4/9, variance 13/162; the Beta(1 + x, 1 + n - x) with
    # that mean and variance has n = (4/9)(5/9) / (13/162) - 3 and x = (4/9)(n + 2) - 1.
    n, looked_share = stamp_evidence(np.array([0]), np.array([True]), np.array([0.5]), 1)
    want = (4 / 9) * (5 / 9) / (13 / 162) - 3
    assert n[0] == pytest.approx(max(want, 0.0), abs=0.02)
    assert looked_share[0] == pytest.approx(min(max((4 / 9) * (want + 2) - 1, 0), want), abs=0.02)


def test_the_rule_judges_the_look_rate_with_the_floors() -> None:
    rule = stamp_rule(
        0.5,
        answers=np.array([30.0, 10.0, 30.0, 30.0]),
        judge_after=np.zeros(4),
        min_answers=20,
        review_answers=np.array([30.0, 10.0, 0.0, 30.0]),
        evidence_n=np.array([20.0, 20.0, 0.0, 20.0]),
        evidence_looked=np.array([1.0, 1.0, 0.0, 19.0]),
    )
    found = judge({"trap": rule}, 0.95)
    # 1 of 20 looked at: P(u < 0.5) = I_0.5(2, 20) > 0.95 under the uniform fallback prior.
    assert found.ban.tolist() == [True, False, False, False]
    assert found.rule[0] == "trap"
    assert found.evidence["trap"].more_answers[1] == 10  # the answers floor
    assert np.isnan(found.evidence["trap"].more_answers[2])  # no review answers: never judged


def _reviewers(seed: int) -> tuple[np.ndarray, ...]:
    """200 binary tasks answered blind by workers 0-4 (two a task, 85% right); 20 gold tasks
    (traps: shown with the wrong label). Reviewers each see 60 regular tasks (proposal right
    90% of the time) and 6 traps: 5 stamps everything, 6 gives the opposite label when it
    looks, 7 is honest (90% right); 6 and 7 confirm anyway 20% of the time."""
    rng = np.random.default_rng(seed)
    n, n_gold = 200, 20
    truth = rng.integers(0, 2, n + n_gold)
    shown = np.where(rng.random(n + n_gold) < 0.9, truth, 1 - truth)
    shown[n:] = 1 - truth[n:]
    rows = []
    for t in range(n):
        for w in rng.choice(5, 2, replace=False):
            rows.append((t, w, truth[t] if rng.random() < 0.85 else 1 - truth[t], -1))
    for w in (5, 6, 7):
        for t in [*rng.choice(n, 60, replace=False), *rng.choice(np.arange(n, n + n_gold), 6)]:
            looked = truth[t] if rng.random() < 0.9 else 1 - truth[t]
            looked = 1 - looked if w == 6 else looked
            label = shown[t] if w == 5 or rng.random() < 0.2 else looked
            rows.append((t, w, label, shown[t]))
    tasks, workers, labels, proposals = (np.array(c) for c in zip(*rows, strict=True))
    gold = np.arange(n, n + n_gold)
    return tasks, workers, labels, proposals, gold, truth[gold]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stamper_is_told_from_a_worker_who_gives_the_opposite_label(seed: int) -> None:
    tasks, workers, labels, proposals, gold, gold_labels = _reviewers(seed)
    result = fit_run(
        np.arange(tasks.size), tasks, workers, labels, n_classes=2, gold_task_ids=gold,
        gold_labels=gold_labels, proposals=proposals,
    )  # fmt: skip
    assert result.review_answers is not None
    assert result.review_answers.tolist() == [0] * 5 + [66] * 3
    assert result.stamp_n is not None and result.stamp_looked is not None
    # The opposite-label worker catches few traps, as a stamper: traps alone cannot tell.
    trap = (tasks >= 200) & (workers == 6)
    assert np.mean(labels[trap] != proposals[trap]) < 0.5
    rule = stamp_rule(
        0.5, result.worker_answers.astype(float), np.zeros(8), 20,
        result.review_answers.astype(float), result.stamp_n, result.stamp_looked,
    )  # fmt: skip
    found = judge({"trap": rule}, 0.95)
    assert found.ban.tolist() == [False] * 5 + [True, False, False]
    p_below = found.evidence["trap"].p_below
    # The stamper is sure to stamp; the opposite-label worker is sure to look (it corrects
    # right proposals, and its confusion explains its confirmations of wrong ones).
    assert p_below[5] > 0.99 and p_below[6] < 0.01
