"""Judging reviewers by stamping: the evidence behind the trap rule (``qc_min_trap_catch``).

A review answer is given beside a proposed label. A worker either **stamps** it (answers the
proposal whatever the task is) or **looks** (answers as it would blind). With a stamp rate
``s``, the probability of a review answer ``l`` beside proposal ``p`` is::

    s [l = p] + (1 - s) P(l | looked)

``P(l | looked)`` is the answer's probability had the worker looked: ``sum_k q(k) pi[k, l]``
with ``pi`` the worker's fitted confusion matrix and ``q`` the task's posterior **without this
answer** (leave one out, so an answer never vouches for itself); on a gold task ``q`` is the
gold label. Every review answer is evidence, not only traps:

- a **stamper** confirms right and wrong proposals alike: each confirmation is more likely
  under a stamp than under a look, most of all on a trap (``pi[gold, p]`` is small for a
  worker who is mostly right);
- an **honest** reviewer confirms right proposals and corrects wrong ones: a correction is
  impossible under a stamp, so it says "looked" outright;
- a worker who gives the **opposite label** confirms wrong proposals (as a stamper does) but
  corrects right ones, and its confusion matrix (fitted on those answers) says it gives the
  other label when it looks, so its confirmations of wrong proposals are what looking
  predicts for it. Judged on traps alone, it could not be told from a stamper.

The product over a worker's review answers is a likelihood of ``s``, evaluated on a grid.
:func:`stamp_evidence` turns it into the effective record "``looked`` of ``n`` review answers
known checked or stamped" that has the same posterior mean and variance under a uniform prior
(as :func:`crowd.em.live.effective_answers` does for the model's rule), so that the rule is
one more :class:`crowd.em.quality.RuleInput` on the **look rate** ``1 - s``, with the same
empirical-Bayes prior, floors and share of ``qc_confidence`` as the other rules
(:func:`stamp_rule`). A worker is banned when ``P(1 - s < qc_min_trap_catch)``, i.e.
``P(s > 1 - qc_min_trap_catch)``, reaches the rule's confidence.

Pure numpy: no I/O, inputs never modified. docs/REVIEW.md says why.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from crowd.em.quality import RuleInput

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Points of the grid of stamp rates on which a worker's likelihood is evaluated.
GRID_POINTS = 400
#: A confirmation's probability under "looked" is rounded to one of this many levels, so the
#: grid is evaluated once per level and summed per (worker, level) (error at most 1e-3 in
#: each answer's probability, far below what the confusion matrices are known to): 0.2 s at
#: a million review answers of 1,000 workers, where a pass over the answers per grid point
#: took 3.7 s.
LOOK_LEVELS = 512
#: Share of uniform answers mixed into a looked answer's probability: an overfitted confusion
#: matrix with an empty cell would otherwise make a correction impossible under both
#: hypotheses (a likelihood of zero for every stamp rate).
LOOK_FLOOR = 0.02


def looked_probability(
    task_index: IntArray,
    worker_index: IntArray,
    labels: IntArray,
    proposals: IntArray,
    *,
    posteriors: FloatArray,
    confusion: FloatArray,
    stamp: FloatArray | None,
    gold_of_task: IntArray,
) -> FloatArray:
    """``P(answer | the worker looked)`` for each review answer, ``(n_review,)``.

    Arguments are the fit's answers ``(n_answers,)`` (``proposals`` -1 for a blind answer;
    only review answers are returned, in their order), its task ``posteriors``
    ``(n_tasks, K)`` (each answer's own factor is divided out: leave one out),
    ``confusion`` ``(n_workers, K, K)``, the stamp rates the posteriors were computed with
    ``(n_workers,)`` (None or NaN: the worker's answers entered as blind ones) and
    ``gold_of_task`` ``(n_tasks,)`` (-1 for a task without gold; on gold the task is its
    label).
    """
    k = confusion.shape[1]
    review = np.flatnonzero(proposals >= 0)
    t, w, lab = task_index[review], worker_index[review], labels[review]
    prop = proposals[review]
    own = confusion[w, :, lab]  # (n_review, K): pi[w, k, l]
    if stamp is not None:
        s = np.nan_to_num(np.asarray(stamp, dtype=np.float64)[w], nan=0.0)[:, None]
        own = np.where((lab == prop)[:, None], s, 0.0) + (1.0 - s) * own
    with np.errstate(divide="ignore"):
        log_q = np.log(np.maximum(posteriors[t], 1e-300)) - np.log(np.maximum(own, 1e-300))
    log_q -= log_q.max(axis=1, keepdims=True)
    q = np.exp(log_q)
    q /= q.sum(axis=1, keepdims=True)
    gold = gold_of_task[t]
    on_gold = gold >= 0
    q[on_gold] = 0.0
    q[on_gold, gold[on_gold]] = 1.0
    looked = np.einsum("ik,ik->i", q, confusion[w, :, lab])
    return np.asarray((1.0 - LOOK_FLOOR) * looked + LOOK_FLOOR / k, dtype=np.float64)


def stamp_loglik(
    workers: IntArray, confirms: BoolArray, looked: FloatArray, n_workers: int, grid: FloatArray
) -> FloatArray:
    """Log-likelihood ``(n_workers, grid.size)`` of each worker's stamp rate at ``grid``:
    the sum over its review answers of ``log(s [confirm] + (1 - s) looked)``.

    A correction adds ``log(1 - s)`` (plus a constant, left out); a confirmation
    ``log(looked + s (1 - looked))``, with ``looked`` rounded to :data:`LOOK_LEVELS`.
    """
    out = np.zeros((n_workers, grid.size))
    corrections = np.bincount(workers[~confirms], minlength=n_workers).astype(np.float64)
    with np.errstate(divide="ignore"):
        out += corrections[:, None] * np.log1p(-grid)[None, :]
    level = np.rint(np.clip(looked[confirms], 0.0, 1.0) * (LOOK_LEVELS - 1)).astype(np.int64)
    if level.size:
        # (worker, level) counts, sparse, times the (level, grid) table of log-likelihoods.
        counts = sparse.csr_matrix(
            (np.ones(level.size), (workers[confirms], level)), shape=(n_workers, LOOK_LEVELS)
        )
        a = (np.arange(LOOK_LEVELS, dtype=np.float64) / (LOOK_LEVELS - 1))[:, None]
        out += counts @ np.log(a + grid[None, :] * (1.0 - a))
    return out


def stamp_evidence(
    workers: IntArray, confirms: BoolArray, looked: FloatArray, n_workers: int
) -> tuple[FloatArray, FloatArray]:
    """Per worker, ``(n, looked_share)``: the review answers known looked at or stamped
    that carry the same evidence about its look rate ``1 - s`` as its review answers.

    ``workers``, ``confirms`` (the answer is the proposal) and ``looked``
    (:func:`looked_probability`) are ``(n_review,)``. The likelihood of ``s`` on a grid under
    a uniform prior gives a posterior mean ``m`` and variance ``v`` of ``1 - s``; ``n`` and
    ``looked_share`` (written ``s`` in docs/QUALITY.md's "``s`` of ``n``") are those of the
    ``Beta(1 + looked_share, 1 + n - looked_share)`` with that mean and variance. A worker
    without review answers has ``(0, 0)``.
    """
    grid = (np.arange(GRID_POINTS, dtype=np.float64) + 0.5) / GRID_POINTS
    loglik = stamp_loglik(workers, confirms, looked, n_workers, grid)
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    look = 1.0 - grid
    mean = post @ look
    var = np.maximum(post @ look**2 - mean**2, 1e-12)
    n = np.maximum(mean * (1.0 - mean) / var - 3.0, 0.0)
    s = np.clip(mean * (n + 2.0) - 1.0, 0.0, n)
    seen = np.bincount(workers, minlength=n_workers) > 0
    return np.where(seen, n, 0.0), np.where(seen, s, 0.0)


def stamp_rule(
    threshold: float,
    answers: FloatArray,
    judge_after: FloatArray,
    min_answers: int,
    review_answers: FloatArray,
    evidence_n: FloatArray,
    evidence_looked: FloatArray,
) -> RuleInput:
    """The trap rule (``qc_min_trap_catch``): the worker's look rate ``1 - s`` must be at
    least ``threshold``, judged on the effective record of :func:`stamp_evidence`.

    Floors as the other rules: ``min_answers`` answers since the last unban; a worker
    without review answers is never judged by it. All arrays ``(m,)``; NaN evidence (a
    worker the last run did not see) counts as none.
    """
    n_answers = np.asarray(answers, dtype=np.float64)
    floor = np.maximum(np.asarray(judge_after, dtype=np.float64) + min_answers - n_answers, 0.0)
    reviewed = np.nan_to_num(np.asarray(review_answers, dtype=np.float64)) > 0
    trials = np.nan_to_num(np.asarray(evidence_n, dtype=np.float64))
    return RuleInput(
        threshold=threshold,
        successes=np.minimum(np.nan_to_num(np.asarray(evidence_looked, dtype=np.float64)), trials),
        trials=trials,
        floor_left=np.where(reviewed, floor, np.inf),
        rate=trials / np.maximum(n_answers, 1.0),
    )
