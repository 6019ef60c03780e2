"""One aggregation run of a live project, on arrays of database ids: no I/O.

The service's background job loads a project's answers (ids as they are in the database),
calls :func:`fit_run`, and publishes the :class:`RunResult`. This module maps ids to dense
indices, warm-starts the estimator from the previous run's per-worker confusion matrices, and
computes the figures the quality rules need (each worker's recent gold accuracy).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from crowd.em import METHODS, Aggregator, ConvergenceWarning, DawidSkene, DSParams
from crowd.em.auto import choose_method, without_gold
from crowd.em.stamping import looked_probability, stamp_evidence
from crowd.em.voters import (
    ModelVotes,
    VoterEstimate,
    as_answers,
    estimates,
    people_start,
    relevant,
)
from crowd.em.voters import warm_confusion as voter_warm_confusion

IntArray = NDArray[np.int64]

#: A published confidence is rewritten when it moves by more than this. Warm-started runs
#: drift every confidence a little; at 1e-4 a run on 200k tasks rewrote 13k-30k rows for 50
#: new answers, at 1e-3 about 24 times fewer (benchmarks/RESULTS.md, freshness).
CONFIDENCE_TOL = 1e-3

#: Dirichlet pseudo-count of the fit whose posteriors dynamic overlap decides on. Plain
#: Dawid-Skene posteriors on tasks with 3 answers sit near 0 or 1, so a confidence target
#: closes tasks too early (benchmarks/RESULTS.md, label efficiency); smoothed confusion
#: matrices give less extreme posteriors.
DECISION_SMOOTHING = 1.0
FloatArray = NDArray[np.float64]

#: Pseudo-answers per row (times K) by which :func:`held_out_correct` shrinks a worker's
#: confusion toward uniform answers before it judges others' answers with it. Chosen with
#: benchmarks/quality_rules.py (0: more honest workers banned; 1: spammers banned later).
LOO_SHRINK = 0.25

#: Points of the grid on which :func:`effective_answers` evaluates a worker's likelihood.
GRID_POINTS = 400
#: Above this many answers :func:`effective_answers` rounds each answer's ``r`` to one of
#: ``R_BINS`` points (with a second-order correction): at a million answers the exact sum
#: took 13-19 s of a run on a shared 2-core machine, the binned one 0.5 s.
EXACT_UP_TO = 100_000
R_BINS = 1024

#: A warm-started fit agreeing with the majority vote on fewer than this share of the tasks
#: with a strict majority is refitted cold (see :func:`fit_run`). Dawid-Skene departs from the
#: majority where it trusts some workers more (in benchmarks/replay.py's replays of real
#: crowds, 86-99% of the results equal their majority vote); a fit with its classes swapped
#: departs from it almost everywhere.
RELABELLED_AGREEMENT = 0.5


@dataclass(frozen=True)
class RunResult:
    """What a run publishes.

    Per task that has answers (gold tasks included: their posterior is their gold label):
    ``task_ids``, ``labels`` (class index), ``confidence`` (posterior of that class),
    ``posteriors`` ``(n, K)`` and ``task_answers``. Per worker with answers: ``worker_ids``,
    ``worker_answers``, ``accuracy`` (the model's estimate), ``accuracy_n`` and
    ``accuracy_right`` (answers judged by the others' and how many of them the model
    expects right, see :func:`held_out_correct`), ``confusion`` ``(m, K, K)``,
    ``gold_answers`` and ``gold_correct`` over the worker's last ``gold_window`` gold answers.
    ``decision``: the probability of each task's label that dynamic overlap compares with the
    confidence target (``confidence`` unless ``fit_run`` was asked to ``decide``).
    ``method``: the method fitted (for ``auto``, the one it chose) and ``reason``: why.
    ``stamp_rate``: per worker, the estimated probability of accepting whatever is proposed
    (NaN without review answers); ``voters``: what the run estimated of each voting model.
    ``review_answers``, ``stamp_n``, ``stamp_looked``: per worker, its review answers and the
    effective record of how many it looked at (:func:`crowd.em.stamping.stamp_evidence`, the
    trap rule's evidence); None when the run has no review answers.
    """

    task_ids: IntArray
    labels: IntArray
    confidence: FloatArray
    posteriors: FloatArray
    task_answers: IntArray
    decision: FloatArray
    worker_ids: IntArray
    worker_answers: IntArray
    accuracy: FloatArray
    accuracy_n: FloatArray
    accuracy_right: FloatArray
    confusion: FloatArray
    gold_answers: IntArray
    gold_correct: IntArray
    priors: FloatArray
    n_iter: int
    converged: bool
    objective: float | None
    warm_start: bool
    method: str
    reason: str
    stamp_rate: FloatArray | None = None
    voters: tuple[VoterEstimate, ...] = ()
    review_answers: IntArray | None = None
    stamp_n: FloatArray | None = None
    stamp_looked: FloatArray | None = None


def _warm_params(
    worker_ids: IntArray,
    warm_workers: IntArray,
    warm_confusion: FloatArray,
    warm_priors: FloatArray | None,
    k: int,
) -> DSParams | None:
    """The previous run's estimates in this run's worker order; newcomers get their mean."""
    if warm_priors is None or warm_workers.size == 0:
        return None
    confusion = np.broadcast_to(warm_confusion.mean(axis=0), (worker_ids.size, k, k)).copy()
    position = np.searchsorted(warm_workers, worker_ids)
    position = np.minimum(position, warm_workers.size - 1)
    known = warm_workers[position] == worker_ids
    confusion[known] = warm_confusion[position[known]]
    return DSParams(confusion=confusion, priors=np.asarray(warm_priors, dtype=np.float64))


def typical_worker_posteriors(
    task_index: IntArray,
    worker_index: IntArray,
    labels: IntArray,
    *,
    n_tasks: int,
    confusion: FloatArray,
    priors: FloatArray,
) -> FloatArray:
    """Posteriors ``(n_tasks, K)`` as if every answer came from the crowd's typical worker.

    The typical worker's confusion is the mean of ``confusion`` ``(n_workers, K, K)`` weighted
    by each worker's answers; a task's posterior is then ``priors`` times that matrix's entries
    for its answers, normalised. Unlike a per-worker fit it cannot be sure of a label on the
    word of the few workers it trusts most: on a split vote it stays uncertain, and only a
    clear majority of typical answers makes it confident. Tasks with no answers get ``priors``.
    :func:`fit_run` uses it to keep such tasks open under dynamic overlap.
    """
    k = confusion.shape[1]
    weight = np.bincount(worker_index, minlength=confusion.shape[0]).astype(np.float64)
    typical = np.einsum("w,wkl->kl", weight / max(weight.sum(), 1.0), confusion)
    votes = np.bincount(task_index * k + labels, minlength=n_tasks * k).reshape(n_tasks, k)
    log_joint = np.log(np.maximum(priors, 1e-300)) + votes @ np.log(np.maximum(typical, 1e-300)).T
    log_joint -= log_joint.max(axis=1, keepdims=True)
    joint = np.exp(log_joint)
    return np.asarray(joint / joint.sum(axis=1, keepdims=True), dtype=np.float64)


def majority_agreement(votes: IntArray, labels: IntArray) -> float:
    """Share of the tasks with a strict majority (``votes`` ``(n_tasks, K)``) whose ``labels``
    are that majority; 1.0 when no task has one."""
    # One pass per class over the columns (a sort or an argmax along the short rows costs
    # per task: 0.8 s at 2M tasks and K = 4, against 0.1 s).
    k = votes.shape[1]
    top = votes[:, 0].copy()
    at_top = np.ones(votes.shape[0], dtype=np.int64)  # classes tied at the top
    first = np.zeros(votes.shape[0], dtype=np.int64)  # the lowest of them (argmax's)
    for c in range(1, k):
        column = votes[:, c]
        above = column > top
        at_top[above] = 0
        first[above] = c
        at_top += column == np.maximum(top, column, out=top)
    strict = at_top == 1 if k > 1 else top > 0
    n_strict = int(np.count_nonzero(strict))
    if n_strict == 0:
        return 1.0
    return float(np.count_nonzero(strict & (labels == first)) / n_strict)


def _better(warm: Aggregator, cold: Aggregator) -> bool:
    """Whether ``warm``'s final objective beats ``cold``'s by more than the method's ``tol``."""
    warm_history = list(getattr(warm, "objective_history_", []))
    cold_history = list(getattr(cold, "objective_history_", []))
    if not warm_history or not cold_history:
        return False
    margin = float(getattr(warm, "tol", 0.0))
    return float(warm_history[-1]) > float(cold_history[-1]) + margin


def held_out_correct(
    task_index: IntArray,
    worker_index: IntArray,
    labels: IntArray,
    *,
    confusion: FloatArray,
    priors: FloatArray,
    n_tasks: int,
    gold: tuple[IntArray, IntArray],
) -> tuple[FloatArray, FloatArray]:
    """Per worker, the evidence behind its accuracy: ``(effective answers, right ones)``.

    Each answer is judged by the other answers to its task, through the fitted model (leave
    one out), so a worker's own answers never vouch for themselves: the task's posterior
    under ``priors`` and the other answerers' accuracies, from their ``confusion`` shrunk
    toward uniform answers by ``LOO_SHRINK`` x K pseudo-answers per row (errors spread
    evenly: a worker's few answers say little about each of the K x K entries). That
    posterior gives the probability ``r`` that the answer is right (an answer on a gold task
    is right or wrong outright), and :func:`effective_answers` turns these into the answers
    known right or wrong that carry the same evidence. Shapes ``(n_workers,)``;
    ``confusion`` ``(n_workers, K, K)``, ``priors`` ``(K,)``.
    """
    n_workers, k = confusion.shape[0], confusion.shape[1]
    # Each worker's accuracy (its confusion shrunk toward uniform answers by LOO_SHRINK x K
    # pseudo-answers per row), its errors spread evenly: a worker's first answers cannot
    # say much about K x K entries, and an overfitted matrix judges others' answers harshly.
    rows = np.bincount(worker_index, minlength=n_workers).astype(np.float64) / k
    weight = (rows / (rows + LOO_SHRINK * k))[:, None, None]
    accuracy = np.einsum("k,wkk->w", priors, weight * confusion + (1.0 - weight) / k)
    # The shrunk matrix is one-coin: log P(answer l | class c) is ``hit`` when c = l, else
    # ``miss``, so an answer's term is ``miss + (hit - miss) [c = l]``. Summed over a task's
    # answers, the ``miss`` parts add the same to every class and cancel in the posterior;
    # what is left per class and task is ``votes[c, t]``, the sum of ``hit - miss`` over the
    # answers saying c, and leaving one answer out subtracts its ``hit - miss`` from its own
    # label's entry. So every answer is judged from per-task sums and per-answer gathers,
    # with no (n_answers, K) array (10M answers, K = 4: 3.8 s of CPU -> 0.5 s, and none of the
    # four 320 MB arrays; benchmarks/fit_steps.py).
    hit = np.log(np.maximum(accuracy, 1e-6))
    miss = np.log(np.maximum((1.0 - accuracy) / max(k - 1, 1), 1e-6))
    lift = hit - miss  # (n_workers,)
    # Class-major (K, n_tasks), so that every step over the classes is a pass over
    # contiguous rows (reductions along a short last axis cost per task).
    cell = labels * n_tasks + task_index
    # (float64 even with no answers, where bincount would give int64 zeros)
    votes = np.bincount(cell, lift[worker_index], n_tasks * k).astype(np.float64, copy=False)
    votes = votes.reshape(k, n_tasks)
    votes += np.log(np.maximum(priors, 1e-12))[:, None]
    votes -= votes.max(axis=0)
    np.exp(votes, out=votes)  # exp of each class's score, the largest 1
    # Per class and task, the other classes' sum: the sums before it plus those after it
    # (no subtraction from the total, which would lose the small ones to rounding).
    others = np.zeros_like(votes)
    for c in range(1, k):
        np.add(others[c - 1], votes[c - 1], out=others[c])
    after = np.zeros(n_tasks)
    for c in range(k - 2, -1, -1):
        after += votes[c + 1]
        others[c] += after
    # Per answer, in place where it can be (each new array is another 8 bytes an answer):
    mine = votes.ravel()[cell]  # the score of the answer's own label, with the answer in
    rest = np.exp(-lift)[worker_index]
    mine *= rest  # without the answer
    np.take(others.ravel(), cell, out=rest)
    rest += mine
    right = np.divide(mine, rest, out=mine)
    del rest, cell
    if gold[0].size:
        gold_of_task = np.full(n_tasks, -1, dtype=np.int64)
        gold_of_task[gold[0]] = gold[1]
        answer_gold = gold_of_task[task_index]
        on_gold = answer_gold >= 0
        right[on_gold] = labels[on_gold] == answer_gold[on_gold]
    return effective_answers(right, worker_index, n_workers, k)


def effective_answers(
    right: FloatArray, worker_index: IntArray, n_workers: int, k: int
) -> tuple[FloatArray, FloatArray]:
    """Per worker, ``(n, s)``: the answers known right or wrong that carry the same evidence
    about its accuracy as its answers judged with probability ``right`` of being right.

    A worker right with probability ``q`` gives an answer the others judge right with
    probability ``r`` with likelihood ``r q + (1 - r)(1 - q)/(K - 1)`` (its errors spread
    evenly): the answer is right if the class is its label and the worker is right, or the class
    is another and the worker erred towards this label. The product over the worker's answers
    is its likelihood of ``q``; ``n`` and ``s`` are the Beta-shaped likelihood
    ``q^s (1 - q)^(n - s)`` with the same posterior mean and variance under a uniform prior
    (exactly ``s`` right of ``n`` when every ``r`` is 0 or 1, as on gold). An answer the
    others leave at the class prior (``r = 1/K``) adds nothing; one the others judge right
    with ``r = 0.7`` adds less than one answer but counts as right, not as 0.7 of one
    (which would pull every worker toward the middle). Shapes ``(n_answers,)`` in,
    ``(n_workers,)`` out.
    """
    grid = (np.arange(GRID_POINTS, dtype=np.float64) + 0.5) / GRID_POINTS
    if right.size > EXACT_UP_TO:
        loglik = _binned_loglik(right, worker_index, n_workers, k, grid)
    else:
        wrong = (1.0 - right) / max(k - 1, 1)
        slope = right - wrong
        loglik = np.empty((n_workers, grid.size))
        for j, q in enumerate(grid.tolist()):
            loglik[:, j] = np.bincount(
                worker_index,
                weights=np.log(np.maximum(wrong + slope * q, 1e-300)),
                minlength=n_workers,
            )
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    mean = post @ grid
    var = np.maximum(post @ grid**2 - mean**2, 1e-12)
    # Beta(1 + s, 1 + n - s) has this mean and variance when n + 2 = mean (1 - mean) / var - 1
    n = np.maximum(mean * (1.0 - mean) / var - 3.0, 0.0)
    s = np.clip(mean * (n + 2.0) - 1.0, 0.0, n)
    return n, s


def _binned_loglik(
    right: FloatArray, worker_index: IntArray, n_workers: int, k: int, grid: FloatArray
) -> FloatArray:
    """:func:`effective_answers`' log-likelihood ``(n_workers, grid.size)`` in O(answers +
    workers x R_BINS x grid): each answer's ``r`` is rounded to one of ``R_BINS`` points and
    its log-likelihood expanded to second order around it (per worker and point: the count,
    the sum of offsets and of squared offsets), instead of one pass over the answers per grid
    point. Relative error about 1e-6 on ``(n, s)`` (benchmarks/RESULTS.md, issue 14)."""
    c = 1.0 / max(k - 1, 1)
    scaled = right * (R_BINS - 1)  # reused below for the squared offsets
    at = np.rint(scaled, out=scaled).astype(np.int64)
    point = np.arange(R_BINS, dtype=np.float64) / (R_BINS - 1)
    offset = point[at]
    np.subtract(right, offset, out=offset)
    # f(r, q) = r q + (1 - r)(1 - q) / (K - 1); log f and its r-derivatives at each point.
    value = (1.0 - point)[:, None] * c + (point * (1.0 + c) - c)[:, None] * grid[None, :]
    value = np.maximum(value, 1e-300)
    first = ((1.0 + c) * grid[None, :] - c) / value
    terms = (np.log(value), first, -0.5 * first**2)
    key = np.multiply(worker_index, R_BINS, dtype=np.int64)
    key += at
    del at
    size = n_workers * R_BINS
    dense = size <= 2**22  # else a sparse (worker, point) matrix: many workers
    if not dense:
        pairs, key = np.unique(key, return_inverse=True)
        size = pairs.size
    loglik = np.zeros((n_workers, grid.size))
    squared = np.multiply(offset, offset, out=scaled)
    for weights, term in zip((None, offset, squared), terms, strict=True):
        sums = np.bincount(key, weights=weights, minlength=size).astype(np.float64)
        if dense:
            loglik += sums.reshape(n_workers, R_BINS) @ term
        else:
            shape = (n_workers, R_BINS)
            loglik += sparse.csr_matrix((sums, divmod(pairs, R_BINS)), shape=shape) @ term
    return loglik


def recent_gold(
    answer_ids: IntArray,
    worker_index: IntArray,
    correct: NDArray[np.bool_],
    n_workers: int,
    window: int,
) -> tuple[IntArray, IntArray]:
    """Per worker, ``(gold answers, correct ones)`` among its last ``window`` gold answers.

    Args:
        answer_ids: ``(n,)`` ids of gold answers (later answers have larger ids).
        worker_index: ``(n,)`` worker index of each, in ``[0, n_workers)``.
        correct: ``(n,)`` whether each matched the gold label.
    """
    order = np.lexsort((-answer_ids, worker_index))  # by worker, newest first
    workers_sorted = worker_index[order]
    starts = np.searchsorted(workers_sorted, workers_sorted, side="left")
    rank = np.arange(order.size) - starts
    keep = order[rank < window]
    answered = np.bincount(worker_index[keep], minlength=n_workers)
    right = np.bincount(worker_index[keep], weights=correct[keep], minlength=n_workers)
    return answered.astype(np.int64), right.astype(np.int64)


def encode_ids(ids: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(ids, return_inverse=True)``, the same arrays, in O(n + span) when the ids
    lie in a span of at most a few times their number (database ids of one project's tasks
    or workers usually do): a presence table instead of a sort, 10 s -> 0.7 s at 10M ids on
    a shared 2-core machine."""
    if ids.size == 0:
        return np.unique(ids, return_inverse=True)
    low, high = int(ids.min()), int(ids.max())
    span = high - low + 1
    if span > 4 * ids.size + 1024:
        return np.unique(ids, return_inverse=True)
    offset = ids - low
    present = np.zeros(span, dtype=bool)
    present[offset] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present).astype(ids.dtype) + low, rank[offset]


def fit_run(
    answer_ids: IntArray,
    task_ids: IntArray,
    worker_ids: IntArray,
    labels: IntArray,
    *,
    n_classes: int,
    gold_task_ids: IntArray,
    gold_labels: IntArray,
    method: str = "ds",
    gold_window: int = 20,
    warm_workers: IntArray | None = None,
    warm_confusion: FloatArray | None = None,
    warm_priors: FloatArray | None = None,
    decide: bool = False,
    cold_check: bool = False,
    proposals: IntArray | None = None,
    votes: ModelVotes | None = None,
) -> RunResult:
    """Fit ``method`` on one project's answers (database ids); inputs are not modified.

    Gold tasks with answers are clamped to their labels. The fit warm-starts from
    ``warm_*`` (the previous run's estimates, worker ids sorted) when given. With
    ``cold_check`` as well, the answers are also fitted cold (the method's majority-vote
    start), and the warm fit is kept only when its objective beats the cold one's by more than
    the method's ``tol``: a warm start that stayed in a worse fit (a first run's single class)
    or a relabelled one (same objective) gives way to the cold fit, and ``warm_start`` says
    which was kept. Without it, a warm fit whose labels agree with the majority vote on fewer
    than ``RELABELLED_AGREEMENT`` of the tasks with a strict majority is taken for a relabelled
    one (its classes swapped: as likely as the right one, so no objective can tell) and the
    answers are fitted cold; the cold fit is kept when it agrees more. With ``decide``
    (dynamic overlap on) and a confusion-matrix method, ``decision`` is the label's posterior
    under a second Dawid-Skene fit with ``smoothing=DECISION_SMOOTHING``, started from the
    first one, unless the label is not strictly the most probable class under
    :func:`typical_worker_posteriors` (a split vote carried by a few trusted workers, which
    more answers can flip): then it is the smaller of the two posteriors, below one half.

    ``method="auto"`` first chooses the method from cold fits of these answers and gold
    (:func:`crowd.em.auto.choose_method`, as ``crowd aggregate`` does), then fits the chosen
    method as above: warm-started, cold-checked, and with the same defaults as offline.

    ``proposals`` ``(n_answers,)``: the class proposed to the worker when it answered, -1 for
    a blind answer (see :mod:`crowd.em._review`). ``votes``: models' predictions, each model
    one more voter (:mod:`crowd.em.voters`); its predictions on tasks nobody answered count
    only on gold tasks. Voters never appear among the ``worker_*`` figures; their estimates
    are ``voters``. Without either the fit is exactly the one without these arguments.
    """
    k = n_classes
    if votes is not None and votes.size:
        votes = relevant(votes, task_ids, gold_task_ids)
    if votes is not None and votes.size:
        tasks = np.unique(np.concatenate([task_ids, votes.task_ids]))
        task_index = np.searchsorted(tasks, task_ids)
    else:
        votes = None
        tasks, task_index = encode_ids(task_ids)
    workers, worker_index = encode_ids(worker_ids)
    task_index = task_index.astype(np.int64, copy=False)
    worker_index = worker_index.astype(np.int64, copy=False)
    if proposals is not None and not np.any(proposals >= 0):
        proposals = None

    gold_pos = np.searchsorted(tasks, gold_task_ids)
    in_range = gold_pos < tasks.size
    answered_gold = np.zeros(gold_task_ids.size, dtype=bool)
    answered_gold[in_range] = tasks[gold_pos[in_range]] == gold_task_ids[in_range]
    gold = (gold_pos[answered_gold], np.asarray(gold_labels)[answered_gold])

    init = None
    if warm_workers is not None and warm_confusion is not None:
        init = _warm_params(workers, warm_workers, warm_confusion, warm_priors, k)

    # The arrays EM sees: the people's answers, then the voting models' predictions.
    fit_tasks, fit_workers, fit_labels, fit_proposals = task_index, worker_index, labels, proposals
    n_people = int(workers.size)
    voters = None if votes is None else as_answers(votes, tasks, n_people)
    if voters is not None and votes is not None:
        fit_tasks = np.concatenate([task_index, voters.tasks])
        fit_workers = np.concatenate([worker_index, voters.workers])
        fit_labels = np.concatenate([np.asarray(labels, dtype=np.int64), voters.labels])
        if proposals is not None:
            fit_proposals = np.concatenate([proposals, np.full(voters.tasks.size, -1)])
        if init is not None:
            mean = init.confusion.mean(axis=0)
            start_voters = voter_warm_confusion(voters, votes.warm, mean)
            init = DSParams(np.concatenate([init.confusion, start_voters]), init.priors)

    shape = {
        "n_tasks": int(tasks.size),
        "n_workers": n_people + (0 if voters is None else voters.n_voters),
        "n_classes": k,
    }

    def fit(model: Aggregator, start: DSParams | None) -> Aggregator:
        with warnings.catch_warnings():
            # A live run publishes what it has; the run record shows converged = false.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(
                fit_tasks,
                fit_workers,
                fit_labels,
                gold=gold,
                init=start,
                proposals=fit_proposals,
                voters=0 if voters is None else voters.n_voters,
                **shape,
            )

    # A cold fit with voters starts from the people's majority (see people_start).
    cold_start = None
    if voters is not None:
        confusion0, priors0 = people_start(
            fit_tasks,
            fit_workers,
            fit_labels,
            n_people=n_people,
            n_tasks=int(tasks.size),
            n_classes=k,
            gold=gold,
        )
        cold_start = DSParams(confusion=confusion0, priors=priors0)

    reason = "the project's method"
    if method == "auto":
        # Which method suits this crowd is a question about the people's answers.
        people_shape = {**shape, "n_workers": n_people}
        # Without answered gold the choice is the default; choose_method would first check
        # every answer to find that out (0.2 s at 10M answers).
        choice = (
            choose_method(
                task_index, worker_index, labels, gold=gold, proposals=proposals, **people_shape
            )
            if gold[0].size
            else without_gold()
        )
        method, reason = choice.method, choice.reason

    model = fit(METHODS[method](), init if init is not None else cold_start)
    if init is not None and cold_check:
        cold = fit(METHODS[method](), cold_start)
        if not _better(model, cold):
            model, init = cold, None
    elif init is not None:
        # Built class-major: majority_agreement's passes over a class's column are then
        # over contiguous memory.
        tally = np.bincount(labels * tasks.size + task_index, minlength=tasks.size * k)
        tally = tally.reshape(k, tasks.size).T
        warm_agrees = majority_agreement(tally, np.asarray(model.labels_))
        if warm_agrees < RELABELLED_AGREEMENT:
            cold = fit(METHODS[method](), cold_start)
            if majority_agreement(tally, np.asarray(cold.labels_)) > warm_agrees:
                model, init = cold, None
    posteriors = np.asarray(model.posteriors_, dtype=np.float64)
    best = np.asarray(model.labels_, dtype=np.int64)
    rows = np.arange(tasks.size)
    confidence = posteriors[rows, best]
    decision = confidence
    if decide and method != "mv":
        start = DSParams(confusion=model.confusion_, priors=model.priors_)  # type: ignore[attr-defined]
        smooth = fit(DawidSkene(smoothing=DECISION_SMOOTHING), start)
        typical = typical_worker_posteriors(
            task_index,
            worker_index,
            labels,
            n_tasks=tasks.size,
            confusion=smooth.confusion_[:n_people],  # type: ignore[attr-defined]
            priors=smooth.priors_,  # type: ignore[attr-defined]
        )
        decision = smooth.posteriors_[rows, best]
        rivals = typical.copy()
        rivals[rows, best] = -1.0
        outvoted = typical[rows, best] <= rivals.max(axis=1)
        decision = np.where(outvoted, np.minimum(decision, typical[rows, best]), decision)

    # Gold accuracy: answers on gold tasks, compared with the gold label.
    gold_of_task = np.full(tasks.size, -1, dtype=np.int64)
    gold_of_task[gold[0]] = gold[1]
    # The answers on gold tasks, found only when there are any (a pass over every answer).
    on_gold = np.flatnonzero(gold_of_task[task_index] >= 0) if gold[0].size else np.zeros(0, int)
    gold_answers, gold_correct = recent_gold(
        answer_ids[on_gold],
        worker_index[on_gold],
        labels[on_gold] == gold_of_task[task_index[on_gold]],
        workers.size,
        gold_window,
    )
    confusion = np.asarray(model.confusion_, dtype=np.float64)  # type: ignore[attr-defined]
    priors = np.asarray(model.priors_, dtype=np.float64)  # type: ignore[attr-defined]
    judged, judged_right = held_out_correct(
        task_index,
        worker_index,
        labels,
        confusion=confusion[:n_people],
        priors=priors,
        n_tasks=tasks.size,
        gold=gold,
    )
    voter_estimates: tuple[VoterEstimate, ...] = ()
    if voters is not None:
        voter_estimates = estimates(voters, confusion[n_people:], priors, gold_of_task)
    stamp = getattr(model, "stamp_rate_", None)
    stamp_people = None if stamp is None else np.asarray(stamp, dtype=np.float64)[:n_people]
    review_answers = stamp_n = stamp_looked = None
    if proposals is not None:
        looked = looked_probability(
            task_index,
            worker_index,
            np.asarray(labels, dtype=np.int64),
            proposals,
            posteriors=posteriors,
            confusion=confusion[:n_people],
            stamp=stamp_people,
            gold_of_task=gold_of_task,
        )
        reviewed = proposals >= 0
        review_workers = worker_index[reviewed]
        review_answers = np.bincount(review_workers, minlength=n_people).astype(np.int64)
        stamp_n, stamp_looked = stamp_evidence(
            review_workers, labels[reviewed] == proposals[reviewed], looked, n_people
        )
    task_answers = np.bincount(task_index, minlength=tasks.size).astype(np.int64)
    # Tasks only a model voted on (gold ones, anchoring it) get no result.
    shown = slice(None) if voters is None else task_answers > 0
    history = list(model.objective_history_)  # type: ignore[attr-defined]
    accuracy = np.asarray(model.worker_accuracy_, dtype=np.float64)  # type: ignore[attr-defined]
    return RunResult(
        task_ids=tasks.astype(np.int64)[shown],
        labels=best[shown],
        confidence=confidence[shown],
        posteriors=posteriors[shown],
        task_answers=task_answers[shown],
        decision=np.asarray(decision, dtype=np.float64)[shown],
        worker_ids=workers.astype(np.int64),
        worker_answers=np.bincount(worker_index, minlength=workers.size).astype(np.int64),
        accuracy=accuracy[:n_people],
        accuracy_n=judged,
        accuracy_right=judged_right,
        confusion=confusion[:n_people],
        gold_answers=gold_answers,
        gold_correct=gold_correct,
        priors=priors,
        n_iter=int(model.n_iter_),  # type: ignore[attr-defined]
        converged=bool(model.converged_),  # type: ignore[attr-defined]
        objective=float(history[-1]) if history else None,
        warm_start=init is not None,
        method=method,
        reason=reason,
        stamp_rate=stamp_people,
        voters=voter_estimates,
        review_answers=review_answers,
        stamp_n=stamp_n,
        stamp_looked=stamp_looked,
    )


def changed_rows(
    result: RunResult,
    task_ids: IntArray,
    labels: IntArray,
    answers: IntArray,
    confidence: FloatArray,
    decision: FloatArray | None = None,
    *,
    tol: float = CONFIDENCE_TOL,
) -> NDArray[np.bool_]:
    """Which of ``result``'s tasks differ from the published rows ``(task_ids`` sorted,
    ``labels, answers, confidence, decision)``: a new task, another label or answer count, or
    a confidence (or decision) that moved by more than ``tol``. Shape ``(n_tasks,)``."""
    if task_ids.size == 0:
        return np.ones(result.task_ids.size, dtype=bool)
    pos = np.minimum(np.searchsorted(task_ids, result.task_ids), task_ids.size - 1)
    known = task_ids[pos] == result.task_ids
    same = (
        known
        & (labels[pos] == result.labels)
        & (answers[pos] == result.task_answers)
        & (np.abs(confidence[pos] - result.confidence) <= tol)
    )
    if decision is not None:
        same &= np.abs(decision[pos] - result.decision) <= tol
    return ~same
