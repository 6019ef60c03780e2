"""Majority vote, optionally weighted by a per-worker skill."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from crowd.em._base import (
    Aggregator,
    FloatArray,
    Gold,
    argmax_lowest,
    check_answers,
    clamp_gold,
    parse_gold,
)
from crowd.em._em import EPS


class MajorityVote(Aggregator):
    r"""(Weighted) majority vote.

    Model: ``score_j(k) = sum_{i in j, l_i = k} v_{w_i}`` with ``v_w = weights[w]`` (1 when
    ``weights`` is ``None``); ``posteriors_[j] = score_j / sum_k score_j(k)``, the (weighted)
    vote shares. Each answer row is one vote, including repeated answers by a worker to a task.
    ``labels_`` is the class with the highest score; exact ties go to the lowest class index.
    Tasks without answers (or whose voters all have weight 0) get ``priors_``; gold tasks are
    clamped one-hot.

    Fitted for parity with the EM models: ``priors_`` ``(K,)`` is the mean posterior over tasks
    with answers or gold; ``confusion_`` ``(n_workers, K, K)`` is the Dawid-Skene M-step on the
    vote shares; ``worker_accuracy_[w]`` is the mean vote share of the label ``w`` gave (its
    posterior-weighted agreement with the crowd), 0 for a worker without answers.
    ``n_iter_ = 0``, ``converged_ = True``, ``objective_history_ = []``, ``stamp_rate_`` all
    NaN (review answers are votes like the others).

    No paper to cite; it is the baseline every crowdsourcing paper reports (e.g. Sheng,
    Provost and Ipeirotis, KDD 2008, https://doi.org/10.1145/1401890.1401965).

    Parameters:
        weights: ``(n_workers,)`` non-negative vote weight per worker, or ``None``; its length
            is the default ``n_workers``.
    """

    confusion_: FloatArray
    priors_: FloatArray
    worker_accuracy_: FloatArray
    stamp_rate_: FloatArray
    n_iter_: int
    converged_: bool
    objective_history_: list[float]

    def __init__(self, *, weights: ArrayLike | None = None) -> None:
        self.weights = weights

    def fit(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        n_classes: int | None = None,
        gold: Gold | None = None,
        init: Any = None,
        proposals: ArrayLike | None = None,
        voters: int = 0,
    ) -> Self:
        """Count votes; ``init``, ``proposals`` and ``voters`` are accepted for API parity and
        ignored (a review answer, or a model's prediction, is one vote). Returns ``self``."""
        gold_tasks, gold_labels = parse_gold(gold)
        if n_workers is None and self.weights is not None:
            n_workers = len(np.asarray(self.weights))
        answers = check_answers(
            tasks,
            workers,
            labels,
            n_tasks=n_tasks,
            n_workers=n_workers,
            n_classes=n_classes,
            gold_tasks=gold_tasks,
            gold_labels=gold_labels,
        )
        k, n = answers.n_classes, answers.n_tasks
        vote: FloatArray | None = None
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (answers.n_workers,) or not np.all(w >= 0):
                raise ValueError(
                    f"weights must be {answers.n_workers} non-negative numbers, got shape {w.shape}"
                )
            vote = w[answers.workers]
        cells = answers.tasks * k + answers.labels
        scores = np.bincount(cells, weights=vote, minlength=n * k).astype(np.float64)
        scores = scores.reshape(n, k)
        totals = scores.sum(axis=1)
        has_votes = totals > 0
        labels_ = argmax_lowest(scores)

        posteriors = np.zeros((n, k))
        posteriors[has_votes] = scores[has_votes] / totals[has_votes, None]
        clamp_gold(posteriors, gold_tasks, gold_labels)
        observed = has_votes.copy()
        observed[gold_tasks] = True
        priors = posteriors[observed].mean(axis=0) if observed.any() else np.full(k, 1.0 / k)
        posteriors[~observed] = priors
        labels_[~observed] = int(np.argmax(priors))
        labels_[gold_tasks] = gold_labels

        counts = np.zeros((answers.n_workers * k, k))
        for true_class in range(k):
            counts[:, true_class] = np.bincount(
                answers.workers * k + answers.labels,
                weights=posteriors[answers.tasks, true_class],
                minlength=answers.n_workers * k,
            )
        confusion = np.maximum(counts.reshape(answers.n_workers, k, k).transpose(0, 2, 1), EPS)
        agreement = np.bincount(
            answers.workers,
            weights=posteriors[answers.tasks, answers.labels],
            minlength=answers.n_workers,
        )
        n_answers = np.bincount(answers.workers, minlength=answers.n_workers)

        self.posteriors_ = posteriors
        self.labels_ = labels_
        self.priors_ = priors
        self.confusion_ = confusion / confusion.sum(axis=2, keepdims=True)
        self.worker_accuracy_ = agreement / np.maximum(n_answers, 1)
        self.stamp_rate_ = np.full(answers.n_workers, np.nan)
        self.n_iter_ = 0
        self.converged_ = True
        self.objective_history_ = []
        return self
