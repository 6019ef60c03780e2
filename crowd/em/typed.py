"""A live run of a typed project (docs/TYPES.md): the type's estimator fitted on the
project's answers, and what the run publishes. Pure: arrays in, a :class:`TypedResult` out.

Ids (tasks, workers, items) come in as the service's ids and go out the same way; each fit
encodes them to integers once (``np.unique(..., return_inverse=True)``).

What dynamic overlap decides on (``decision``, compared with the project's
``confidence_target``):

* multilabel: the least certain label's probability of its decision, ``min_l max(p_l, 1 - p_l)``:
  a task is closed when every label is decided at the target;
* numeric: ``1 - width / (max - min)`` with ``width`` the 90% interval's: a target of 0.9
  closes a task once its interval spans at most a tenth of the scale;
* pairwise: the probability of the likelier winner of the comparison under the fitted scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from crowd.em.live import CONFIDENCE_TOL, recent_gold
from crowd.em.multilabel import MultilabelDawidSkene
from crowd.em.numeric import NumericEM
from crowd.em.pairwise import CrowdBradleyTerry, PairwiseParams

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: z of the central 90% interval of a normal distribution.
Z90 = 1.6448536269514722

#: Method names recorded on a typed project's runs.
METHODS = {"multilabel": "multilabel-ds", "numeric": "numeric-em", "pairwise": "crowd-bt"}


@dataclass(frozen=True)
class Answers:
    """A typed project's answers, one entry per answer (``(n,)`` arrays).

    ``labels``: multilabel, ``(n, n_labels)`` 0/1; pairwise, the winner (0 left, 1 right,
    2 tie); numeric, unused. ``values``: numeric answers. ``pairs``: pairwise, the
    ``(task_ids, left_items, right_items)`` of every task (answered or gold).
    Gold: ``gold_task_ids`` with ``gold_labels`` (pairwise winners), ``gold_values`` (numeric)
    or ``gold_sets`` (multilabel, ``(n_gold, n_labels)`` 0/1).
    """

    answer_ids: IntArray
    task_ids: IntArray
    worker_ids: IntArray
    labels: NDArray[Any]
    values: FloatArray
    gold_task_ids: IntArray
    gold_labels: IntArray
    gold_values: FloatArray
    gold_sets: NDArray[Any]
    pairs: tuple[IntArray, NDArray[Any], NDArray[Any]] | None = None


@dataclass(frozen=True)
class PairwiseWarm:
    """A pairwise project's previous run, to warm-start the next fit from: ``items`` (the
    requester's item ids) with their ``scores``, ``workers`` (service ids) with their
    ``reliability``, and the run's ``position_bias``. Items and workers the previous run did
    not see start as in a cold fit."""

    items: NDArray[Any]
    scores: FloatArray
    workers: IntArray
    reliability: FloatArray
    position_bias: float


@dataclass(frozen=True)
class Items:
    """Pairwise items' scores, in ranking order (component, then rank)."""

    names: NDArray[Any]
    scores: FloatArray
    low: FloatArray
    high: FloatArray
    ranks: IntArray
    components: IntArray
    comparisons: IntArray


@dataclass(frozen=True)
class TypedResult:
    """What a typed run publishes.

    Per answered task that is not gold: ``task_ids``, ``labels`` (pairwise: the likelier
    winner; else 0), ``confidence``, ``decision`` (see the module docstring),
    ``posteriors`` (multilabel: each label's probability; pairwise: P(left), P(right);
    numeric: none), ``task_answers``, ``values``/``low``/``high`` (numeric, else NaN),
    ``label_sets`` (multilabel: the chosen label indices); ``warm_start``: whether the fit
    started from the previous run's estimates. Per worker: ``worker_ids``,
    ``worker_answers``, ``accuracy`` (multilabel: mean of sensitivity and specificity;
    pairwise: reliability; numeric: NaN), ``accuracy_n``/``accuracy_right`` (the quality
    rules' evidence), ``gold_answers``/``gold_correct`` (last ``gold_window``), ``estimates``.
    """

    task_ids: IntArray
    labels: IntArray
    confidence: FloatArray
    decision: FloatArray
    posteriors: FloatArray
    task_answers: IntArray
    values: FloatArray
    low: FloatArray
    high: FloatArray
    label_sets: list[list[int]]
    worker_ids: IntArray
    worker_answers: IntArray
    accuracy: FloatArray
    accuracy_n: FloatArray
    accuracy_right: FloatArray
    gold_answers: IntArray
    gold_correct: IntArray
    estimates: list[dict[str, float]]
    method: str
    n_iter: int
    converged: bool
    objective: float | None
    items: Items | None = None
    position_bias: float | None = None
    warm_start: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _gold_figures(
    a: Answers, workers: IntArray, n_workers: int, correct_of: NDArray[np.bool_], window: int
) -> tuple[IntArray, IntArray]:
    """Gold figures from ``correct_of``: per answer, whether it matched its gold task's
    answer (only answers on gold tasks count)."""
    on_gold = np.isin(a.task_ids, a.gold_task_ids)
    return recent_gold(
        a.answer_ids[on_gold], workers[on_gold], correct_of[on_gold], n_workers, window
    )


def _gold_position(a: Answers) -> NDArray[np.intp]:
    """Per answer, the index of its task in ``gold_task_ids`` (garbage where not gold)."""
    order = np.argsort(a.gold_task_ids)
    found = np.searchsorted(a.gold_task_ids[order], a.task_ids)
    return order[np.minimum(found, max(order.size - 1, 0))] if order.size else found


def fit_multilabel(a: Answers, n_labels: int, gold_window: int) -> TypedResult:
    tasks, t = np.unique(np.concatenate([a.task_ids, a.gold_task_ids]), return_inverse=True)
    t_answers = t[: a.task_ids.size]
    workers, w = np.unique(a.worker_ids, return_inverse=True)
    gold_rows = t[a.task_ids.size :]
    model = MultilabelDawidSkene()
    model.fit(
        t_answers,
        w,
        a.labels.reshape(-1, n_labels),
        n_tasks=tasks.size,
        n_workers=workers.size,
        gold=(gold_rows, a.gold_sets.reshape(-1, n_labels)) if gold_rows.size else None,
    )
    p = model.probabilities_
    decided = np.maximum(p, 1 - p)
    sure = decided.min(axis=1) if n_labels else np.ones(tasks.size)
    se, sp = model.sensitivity_, model.specificity_
    accuracy = (se + sp) / 2
    answers_of = np.bincount(w, minlength=workers.size)
    pos = _gold_position(a)
    gold_sets = a.gold_sets.reshape(-1, n_labels).astype(bool)
    correct = (
        np.all(a.labels.reshape(-1, n_labels).astype(bool) == gold_sets[pos], axis=1)
        if a.gold_task_ids.size
        else np.zeros(a.task_ids.size, dtype=bool)
    )
    gold_answers, gold_correct = _gold_figures(a, w, workers.size, correct, gold_window)
    keep = _answered_regular(tasks, t_answers, a.gold_task_ids)
    nan = np.full(keep.size, np.nan)
    return TypedResult(
        task_ids=tasks[keep],
        labels=np.zeros(keep.size, dtype=np.int64),
        confidence=sure[keep],
        decision=sure[keep],
        posteriors=p[keep],
        task_answers=np.bincount(t_answers, minlength=tasks.size)[keep],
        values=nan,
        low=nan,
        high=nan,
        label_sets=[np.flatnonzero(row).tolist() for row in model.labels_[keep]],
        worker_ids=workers,
        worker_answers=answers_of,
        accuracy=accuracy,
        accuracy_n=answers_of.astype(np.float64),
        accuracy_right=accuracy * answers_of,
        gold_answers=gold_answers,
        gold_correct=gold_correct,
        estimates=[
            {"sensitivity": round(float(x), 6), "specificity": round(float(y), 6)}
            for x, y in zip(se, sp, strict=True)
        ],
        method=METHODS["multilabel"],
        n_iter=model.n_iter_,
        converged=model.converged_,
        objective=model.objective_history_[-1] if model.objective_history_ else None,
    )


def _answered_regular(tasks: IntArray, t_answers: IntArray, gold_task_ids: IntArray) -> IntArray:
    """Indices into ``tasks`` of the tasks with answers that are not gold."""
    answered = np.bincount(t_answers, minlength=tasks.size) > 0
    return np.flatnonzero(answered & ~np.isin(tasks, gold_task_ids))


def fit_numeric(
    a: Answers, low: float, high: float, step: float | None, gold_window: int
) -> TypedResult:
    tasks, t = np.unique(np.concatenate([a.task_ids, a.gold_task_ids]), return_inverse=True)
    t_answers = t[: a.task_ids.size]
    workers, w = np.unique(a.worker_ids, return_inverse=True)
    gold_rows = t[a.task_ids.size :]
    model = NumericEM(bounds=(low, high), interval_mass=0.9)
    model.fit(
        t_answers,
        w,
        a.values,
        n_tasks=tasks.size,
        n_workers=workers.size,
        gold=(gold_rows, a.gold_values) if gold_rows.size else None,
    )
    width = model.interval_[:, 1] - model.interval_[:, 0]
    sure = np.clip(1.0 - width / (high - low), 0.0, 1.0)
    answers_of = np.bincount(w, minlength=workers.size)
    tolerance = step / 2 if step else 0.05 * (high - low)
    pos = _gold_position(a)
    correct = (
        np.abs(a.values - a.gold_values[pos]) <= tolerance + 1e-9
        if a.gold_task_ids.size
        else np.zeros(a.task_ids.size, dtype=bool)
    )
    gold_answers, gold_correct = _gold_figures(a, w, workers.size, correct, gold_window)
    keep = _answered_regular(tasks, t_answers, a.gold_task_ids)
    nan = np.full(workers.size, np.nan)
    return TypedResult(
        task_ids=tasks[keep],
        labels=np.zeros(keep.size, dtype=np.int64),
        confidence=sure[keep],
        decision=sure[keep],
        posteriors=np.zeros((keep.size, 0)),
        task_answers=np.bincount(t_answers, minlength=tasks.size)[keep],
        values=model.values_[keep],
        low=model.interval_[keep, 0],
        high=model.interval_[keep, 1],
        label_sets=[],
        worker_ids=workers,
        worker_answers=answers_of,
        accuracy=nan,
        accuracy_n=nan,
        accuracy_right=nan,
        gold_answers=gold_answers,
        gold_correct=gold_correct,
        estimates=[
            {"bias": round(float(b), 6), "noise": round(float(s), 6)}
            for b, s in zip(model.bias_, model.noise_, strict=True)
        ],
        method=METHODS["numeric"],
        n_iter=model.n_iter_,
        converged=model.converged_,
        objective=model.objective_history_[-1] if model.objective_history_ else None,
    )


#: A pairwise answer's outcome for the left item: left won, right won, tie.
OUTCOME = np.array([1.0, 0.0, 0.5])


def _lookup(known: NDArray[Any], values: FloatArray, wanted: NDArray[Any]) -> FloatArray:
    """``values`` of each of ``wanted`` by its key in ``known`` (any order), NaN where absent."""
    out = np.full(wanted.size, np.nan)
    if known.size == 0:
        return out
    order = np.argsort(known)
    pos = order[np.minimum(np.searchsorted(known[order], wanted), known.size - 1)]
    found = known[pos] == wanted
    out[found] = values[pos[found]]
    return out


def _pairwise_init(
    warm: PairwiseWarm | None, names: NDArray[Any], workers: IntArray
) -> PairwiseParams | None:
    """The previous run's estimates in this fit's item and worker order (NaN: unknown)."""
    if warm is None:
        return None
    return PairwiseParams(
        scores=_lookup(np.asarray(warm.items).astype(str), warm.scores, names),
        position_bias=warm.position_bias,
        reliability=_lookup(warm.workers, warm.reliability, workers),
    )


def fit_pairwise(a: Answers, gold_window: int, warm: PairwiseWarm | None = None) -> TypedResult:
    """Fit a pairwise project's answers; ``warm``: start from the previous run's estimates
    (:class:`crowd.em.pairwise.CrowdBradleyTerry`'s ``init``), or cold."""
    assert a.pairs is not None
    pair_tasks, pair_left, pair_right = a.pairs
    order = np.argsort(pair_tasks)
    pair_tasks, pair_left, pair_right = pair_tasks[order], pair_left[order], pair_right[order]
    used = np.isin(pair_tasks, np.concatenate([a.task_ids, a.gold_task_ids]))
    names, codes = np.unique(
        np.concatenate([pair_left[used], pair_right[used]]).astype(str), return_inverse=True
    )
    n_used = int(used.sum())
    left_of = np.full(pair_tasks.size, -1, dtype=np.int64)
    right_of = np.full(pair_tasks.size, -1, dtype=np.int64)
    left_of[used], right_of[used] = codes[:n_used], codes[n_used:]

    def at(task_ids: IntArray) -> NDArray[np.intp]:
        return np.searchsorted(pair_tasks, task_ids)

    row = at(a.task_ids)
    workers, w = np.unique(a.worker_ids, return_inverse=True)
    gold_row = at(a.gold_task_ids)
    model = CrowdBradleyTerry()
    model.fit(
        left_of[row],
        right_of[row],
        w,
        OUTCOME[a.labels],
        n_items=names.size,
        n_workers=workers.size,
        gold=(left_of[gold_row], right_of[gold_row], OUTCOME[a.gold_labels])
        if a.gold_task_ids.size
        else None,
        init=_pairwise_init(warm, names, workers),
    )
    tasks, t = np.unique(a.task_ids, return_inverse=True)
    keep = np.flatnonzero(~np.isin(tasks, a.gold_task_ids))
    task_row = at(tasks[keep])
    diff = model.scores_[left_of[task_row]] - model.scores_[right_of[task_row]]
    p_left = expit(diff)
    sure = np.maximum(p_left, 1 - p_left)
    answers_of = np.bincount(w, minlength=workers.size)
    pos = _gold_position(a)
    correct = (
        a.labels == a.gold_labels[pos]
        if a.gold_task_ids.size
        else np.zeros(a.task_ids.size, dtype=bool)
    )
    gold_answers, gold_correct = _gold_figures(a, w, workers.size, correct, gold_window)
    rank_order = np.lexsort((names, model.ranks_, model.components_))
    std = model.score_std_
    items = Items(
        names=names[rank_order],
        scores=model.scores_[rank_order],
        low=(model.scores_ - Z90 * std)[rank_order],
        high=(model.scores_ + Z90 * std)[rank_order],
        ranks=model.ranks_[rank_order].astype(np.int64),
        components=model.components_[rank_order].astype(np.int64),
        comparisons=model.comparisons_[rank_order].astype(np.int64),
    )
    nan = np.full(keep.size, np.nan)
    return TypedResult(
        task_ids=tasks[keep],
        labels=(p_left < 0.5).astype(np.int64),
        confidence=sure,
        decision=sure,
        posteriors=np.stack([p_left, 1 - p_left], axis=1),
        task_answers=np.bincount(t, minlength=tasks.size)[keep],
        values=nan,
        low=nan,
        high=nan,
        label_sets=[],
        worker_ids=workers,
        worker_answers=answers_of,
        accuracy=model.reliability_,
        accuracy_n=answers_of.astype(np.float64),
        accuracy_right=model.reliability_ * answers_of,
        gold_answers=gold_answers,
        gold_correct=gold_correct,
        estimates=[{"reliability": round(float(r), 6)} for r in model.reliability_],
        method=METHODS["pairwise"],
        n_iter=model.n_iter_,
        converged=model.converged_,
        objective=model.objective_,
        items=items,
        position_bias=model.position_bias_,
        warm_start=warm is not None,
    )


def fit_typed(
    kind: str,
    answers: Answers,
    *,
    n_labels: int,
    scale: dict[str, Any] | None,
    gold_window: int,
    warm: PairwiseWarm | None = None,
) -> TypedResult:
    """Fit a ``kind`` project's answers with its method (see :data:`METHODS`); ``warm``
    (pairwise only) starts the fit from the previous run's estimates."""
    if kind == "multilabel":
        return fit_multilabel(answers, n_labels, gold_window)
    if kind == "numeric":
        assert scale is not None
        return fit_numeric(answers, scale["min"], scale["max"], scale.get("step"), gold_window)
    if kind == "pairwise":
        return fit_pairwise(answers, gold_window, warm)
    raise ValueError(f"not a typed project: {kind!r}")


def changed_typed(
    result: TypedResult,
    published: dict[str, NDArray[Any]],
    *,
    value_tol: float,
    tol: float = CONFIDENCE_TOL,
) -> NDArray[np.bool_]:
    """Which of ``result``'s tasks differ from the published rows (``published``: arrays
    ``task`` (sorted), ``label``, ``answers``, ``confidence``, ``decision``, ``value``,
    ``low``, ``high`` (NaN when none) and ``label_set`` (label indices joined by spaces)), as
    :func:`crowd.em.live.changed_rows` for categorical runs: a new task, another label, label
    set or answer count, a confidence or decision that moved by more than ``tol``, or a value
    or interval end that moved by more than ``value_tol``. Shape ``(n_tasks,)``."""
    task_ids = published["task"]
    if task_ids.size == 0:
        return np.ones(result.task_ids.size, dtype=bool)
    pos = np.minimum(np.searchsorted(task_ids, result.task_ids), task_ids.size - 1)
    same = (
        (task_ids[pos] == result.task_ids)
        & (published["label"][pos] == result.labels)
        & (published["answers"][pos] == result.task_answers)
        & (np.abs(published["confidence"][pos] - result.confidence) <= tol)
        & (np.abs(published["decision"][pos] - result.decision) <= tol)
    )
    for name, new in (("value", result.values), ("low", result.low), ("high", result.high)):
        old = published[name][pos]
        both_nan = np.isnan(old) & np.isnan(new)
        with np.errstate(invalid="ignore"):
            same &= both_nan | (np.abs(old - new) <= value_tol)
    if result.label_sets:
        joined = np.array([" ".join(map(str, s)) for s in result.label_sets], dtype=object)
        same &= published["label_set"][pos] == joined
    return ~same
