"""Quality rules that judge with evidence: the probability that a worker is below a threshold.

Each ban rule sees, per worker, a count of evidence (``trials``) and how much of it went the
worker's way (``successes``): gold answers and correct ones for the gold rule; the effective
answers known right or wrong that carry the evidence of the worker's answers judged by the
other answers to their tasks, for the model's rule (see
:func:`crowd.em.live.effective_answers`). With a Beta prior fitted to the project's own
workers (empirical Bayes, :func:`fit_prior`), a worker's accuracy has the posterior
``Beta(alpha + successes, beta + trials - successes)``, and a rule rejects the worker when the
posterior probability of being below the rule's threshold reaches its share of the
project's ``qc_confidence`` (:func:`rule_confidence`), once the floors (``qc_min_answers``, ``qc_min_gold_answers``) are met.
:func:`judge` takes any number of rules by name, so another rule (the trap rule, which judges
stamping: :mod:`crowd.em.stamping`) is one more :class:`RuleInput`. Pure numpy and scipy: no I/O, inputs never modified.

docs/QUALITY.md says why this prior, and benchmarks/quality_rules.py measures the rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import betainc, betaincinv

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: The prior before a project has this many workers with evidence for a rule: Beta(1, 1),
#: the uniform distribution (worth two answers), which lets the evidence alone decide.
MIN_PRIOR_WORKERS = 10
FALLBACK_PRIOR = (1.0, 1.0)
#: Bounds on the fitted prior's strength (alpha + beta, in answers). The upper bound keeps a
#: crowd whose workers look alike from outweighing a worker's own first answers; the lower one
#: keeps a crowd split between good workers and spammers from giving a U-shaped prior.
PRIOR_STRENGTH = (2.0, 8.0)
#: The equal-tailed interval shown beside each estimate.
INTERVAL = 0.95
#: How far ahead ``more_answers`` looks (answers); beyond it a decision is reported as never.
HORIZON = 100_000


@dataclass(frozen=True)
class BetaPrior:
    """A Beta(``alpha``, ``beta``) prior; ``fitted``: from the project's workers (empirical
    Bayes) rather than the fallback."""

    alpha: float
    beta: float
    fitted: bool

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def at_least(self, mean: float) -> BetaPrior:
        """A fitted prior of the same strength with its mean raised to ``mean`` if below it;
        the fallback (uniform, neutral) stays as it is."""
        if self.mean >= mean or not self.fitted:
            return self
        strength = self.alpha + self.beta
        return BetaPrior(mean * strength, (1.0 - mean) * strength, self.fitted)


def fit_prior(
    successes: FloatArray, trials: FloatArray, *, min_workers: int = MIN_PRIOR_WORKERS
) -> BetaPrior:
    """The Beta prior of a rule, fitted to the workers' evidence by the method of moments.

    ``successes``, ``trials``: ``(m,)``, one entry per worker (fractional counts allowed).
    Workers with no evidence are left out. The mean is the pooled rate; the variance of the
    workers' true rates is the variance of their observed rates (weighted by evidence) less
    the binomial noise those rates carry. Strength is kept within :data:`PRIOR_STRENGTH`.
    Fewer than ``min_workers`` workers with evidence: the fallback Beta(1, 1).
    """
    seen = np.asarray(trials, dtype=np.float64) > 0
    n = np.asarray(trials, dtype=np.float64)[seen]
    s = np.asarray(successes, dtype=np.float64)[seen]
    if n.size < min_workers:
        return BetaPrior(*FALLBACK_PRIOR, fitted=False)
    mean = float(np.clip(s.sum() / n.sum(), 0.02, 0.98))
    rates = s / n
    observed = float(np.sum(n * (rates - mean) ** 2) / n.sum())
    noise = mean * (1.0 - mean) * n.size / n.sum()
    spread = observed - noise
    low, high = PRIOR_STRENGTH
    strength = high if spread <= 0 else mean * (1.0 - mean) / spread - 1.0
    strength = float(np.clip(strength, low, high))
    return BetaPrior(mean * strength, (1.0 - mean) * strength, fitted=True)


@dataclass(frozen=True)
class RuleInput:
    """One ban rule's evidence for ``m`` workers.

    Attributes:
        threshold: the rule's minimum accuracy.
        successes, trials: ``(m,)`` evidence for and total (fractional counts allowed).
        floor_left: ``(m,)`` answers each worker still needs before the rule may judge it
            (0 when the floors are met).
        rate: ``(m,)`` evidence gained per answer at the worker's current pace.
        cap: the most evidence the rule ever holds (a sliding window), or None.
    """

    threshold: float
    successes: FloatArray
    trials: FloatArray
    floor_left: FloatArray
    rate: FloatArray
    cap: float | None = None


@dataclass(frozen=True)
class RuleEvidence:
    """What a rule found, per worker: ``estimate`` (posterior mean), ``low``/``high`` (the
    :data:`INTERVAL` interval), ``p_below`` (posterior probability of being below the
    threshold), ``more_answers`` (answers, at the current pace, until the evidence decides
    either way if it kept its current rate: the probability reaching ``confidence`` or falling
    to ``1 - confidence``; 0 when decided, NaN when it never would) and ``rejects``."""

    threshold: float
    prior: BetaPrior
    estimate: FloatArray
    low: FloatArray
    high: FloatArray
    p_below: FloatArray
    more_answers: FloatArray
    rejects: BoolArray


def _more_answers(rule: RuleInput, prior: BetaPrior, confidence: float) -> FloatArray:
    """Answers until the rule decides, if the evidence keeps its observed rate.

    The probability of being below the threshold moves monotonically toward 0 or 1 as
    evidence at a fixed rate accumulates, so the first deciding amount is found by bisection.
    """
    s = np.asarray(rule.successes, dtype=np.float64)
    n = np.asarray(rule.trials, dtype=np.float64)
    rate = np.where(n > 0, s / np.maximum(n, 1e-12), prior.mean)

    def decided(extra: FloatArray) -> BoolArray:
        p = betainc(
            prior.alpha + s + rate * extra,
            prior.beta + (n - s) + (1.0 - rate) * extra,
            rule.threshold,
        )
        return np.asarray((p >= confidence) | (p <= 1.0 - confidence))

    top = np.full(n.size, float(HORIZON))
    if rule.cap is not None:
        top = np.maximum(rule.cap - n, 0.0)
    lo, hi = np.zeros(n.size), top.copy()
    now = decided(lo)
    ever = now | decided(hi)
    while np.any(hi - lo > 1.0):  # invariant: undecided at lo (unless now), decided at hi
        mid = np.floor((lo + hi) / 2.0)
        d = decided(mid)
        hi = np.where(d, mid, hi)
        lo = np.where(d, lo, mid)
    evidence_needed = np.where(now, 0.0, np.where(ever, hi, np.nan))
    pace = np.asarray(rule.rate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        answers = np.where(
            evidence_needed == 0, 0.0, np.ceil(evidence_needed / np.where(pace > 0, pace, np.nan))
        )
    answers = np.maximum(answers, np.asarray(rule.floor_left, dtype=np.float64))
    return np.where(answers > HORIZON, np.nan, answers)


def evaluate(rule: RuleInput, confidence: float, prior: BetaPrior | None = None) -> RuleEvidence:
    """The posterior evidence of one rule (prior fitted by :func:`fit_prior` unless given)."""
    s = np.asarray(rule.successes, dtype=np.float64)
    n = np.asarray(rule.trials, dtype=np.float64)
    if prior is None:
        # The benefit of the doubt: a crowd that looks poor (early on, every worker's held-out
        # evidence is low while spammers' answers are in) does not by itself push a worker
        # below the threshold; only the worker's own evidence can.
        prior = fit_prior(s, n).at_least(rule.threshold)
    a = prior.alpha + s
    b = prior.beta + np.maximum(n - s, 0.0)
    tail = (1.0 - INTERVAL) / 2.0
    p_below = np.asarray(betainc(a, b, rule.threshold), dtype=np.float64)
    rejects = (p_below >= confidence) & (np.asarray(rule.floor_left) <= 0)
    return RuleEvidence(
        threshold=rule.threshold,
        prior=prior,
        estimate=a / (a + b),
        low=np.asarray(betaincinv(a, b, tail), dtype=np.float64),
        high=np.asarray(betaincinv(a, b, 1.0 - tail), dtype=np.float64),
        p_below=p_below,
        more_answers=_more_answers(rule, prior, confidence),
        rejects=rejects,
    )


@dataclass(frozen=True)
class Verdict:
    """The rules' decision for ``m`` workers: ``ban`` ``(m,)``; ``rule`` ``(m,)`` the name of
    the rule that rejects each banned worker (the most certain one), else None; ``evidence``
    per rule name."""

    ban: BoolArray
    rule: list[str | None]
    evidence: dict[str, RuleEvidence]


def rule_confidence(confidence: float, n_rules: int) -> float:
    """The confidence each of ``n_rules`` rules needs so that the chance of any of them
    wrongly rejecting a worker is at most ``1 - confidence`` (the union bound: a worker
    judged by two rules gets two chances to be rejected by bad luck)."""
    return 1.0 - (1.0 - confidence) / max(n_rules, 1)


def judge(rules: Mapping[str, RuleInput], confidence: float) -> Verdict:
    """Ban a worker when any rule's posterior probability of it being below that rule's
    threshold is at least :func:`rule_confidence` (``confidence`` shared among the rules)
    and that rule's floors are met."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    each = rule_confidence(confidence, len(rules))
    evidence = {name: evaluate(rule, each) for name, rule in rules.items()}
    m = next(iter(rules.values())).trials.size if rules else 0
    best = np.full(m, -1.0)
    rule: list[str | None] = [None] * m
    for name, found in evidence.items():
        for i in np.flatnonzero(found.rejects & (found.p_below > best)).tolist():
            best[i] = found.p_below[i]
            rule[i] = name
    return Verdict(ban=best >= 0, rule=rule, evidence=evidence)


def reversed_evidence(found: RuleEvidence) -> BoolArray:
    """Workers whose evidence under this rule now points the other way: more likely above
    the threshold than below it (a ban by this rule would not be made today)."""
    return np.asarray(found.p_below < 0.5)


def describe(found: RuleEvidence, i: int) -> dict[str, float | None]:
    """Worker ``i``'s evidence under one rule, as JSON-ready numbers."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else round(float(x), 6)

    more = found.more_answers[i]
    return {
        "threshold": found.threshold,
        "estimate": num(found.estimate[i]),
        "low": num(found.low[i]),
        "high": num(found.high[i]),
        "p_below": num(found.p_below[i]),
        "more_answers": None if math.isnan(more) else int(more),
    }


@dataclass(frozen=True)
class WorkerFigures:
    """What a run published for ``m`` workers, the input of :func:`project_rules`.

    Attributes:
        answers: ``(m,)`` answers the run saw; ``judge_after``: answers at the last unban.
        accuracy: the model's accuracy estimate (NaN for a worker the model has not seen).
        accuracy_n, accuracy_right: the answers the model judged by the other answers to
            their tasks, and how many of them it expects right
            (:func:`crowd.em.live.held_out_correct`).
        gold_answers, gold_correct: the worker's recent gold answers and correct ones.
    """

    answers: FloatArray
    judge_after: FloatArray
    accuracy: FloatArray
    accuracy_n: FloatArray
    accuracy_right: FloatArray
    gold_answers: FloatArray
    gold_correct: FloatArray


def project_rules(
    w: WorkerFigures,
    *,
    min_accuracy: float | None,
    min_gold_accuracy: float | None,
    min_answers: int,
    min_gold_answers: int,
    gold_window: int,
) -> dict[str, RuleInput]:
    """The rules a project turns on (a threshold of None: off), with their floors: a rule
    judges a worker only after ``min_answers`` answers since its last unban, and the gold
    rule only with at least ``min_gold_answers`` recent gold answers."""
    answers = np.asarray(w.answers, dtype=np.float64)
    floor = np.maximum(np.asarray(w.judge_after, dtype=np.float64) + min_answers - answers, 0.0)
    per_answer = np.maximum(answers, 1.0)
    rules: dict[str, RuleInput] = {}
    if min_accuracy is not None:
        n = np.nan_to_num(np.asarray(w.accuracy_n, dtype=np.float64))
        rules["accuracy"] = RuleInput(
            threshold=min_accuracy,
            successes=np.minimum(np.nan_to_num(np.asarray(w.accuracy_right)), n),
            trials=n,
            floor_left=floor,
            rate=n / per_answer,
        )
    if min_gold_accuracy is not None:
        g = np.asarray(w.gold_answers, dtype=np.float64)
        rate = g / per_answer
        with np.errstate(divide="ignore", invalid="ignore"):
            gold_floor = np.where(
                g >= min_gold_answers, 0.0, np.ceil((min_gold_answers - g) / rate)
            )
        rules["gold"] = RuleInput(
            threshold=min_gold_accuracy,
            successes=np.asarray(w.gold_correct, dtype=np.float64),
            trials=g,
            floor_left=np.maximum(floor, np.nan_to_num(gold_floor, nan=np.inf)),
            rate=rate,
            cap=float(gold_window),
        )
    return rules
