"""Models as voters: each model's predictions as the answers of one extra worker.

A requester's model (its predictions, one per task) is a voter in the confusion-matrix EM
with its own ``K x K`` confusion matrix, estimated jointly with the workers' and anchored by
gold like theirs: on a gold task its prediction is compared with the clamped label. A model
that is always wrong on one class gets a confusion row that says so, and its votes there
stop counting; a reliable model's vote counts like a reliable worker's, so fewer people are
needed to reach a confidence.

The voters are appended after the human workers (worker indices ``n_workers ..``), so the
caller can slice them off every per-worker figure: a model never appears as a worker.
Everything here is pure: arrays in, new arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ModelVotes:
    """Predictions of the voting models: prediction ``i`` says task ``task_ids[i]`` (a
    database id) is class ``labels[i]``, by model ``names[models[i]]``; one per (task, model).

    ``warm``: ``{name: (K, K) confusion}`` from the previous run, to warm-start the voters.
    """

    task_ids: IntArray
    models: IntArray
    labels: IntArray
    names: tuple[str, ...]
    warm: dict[str, FloatArray] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> ModelVotes:
        none = np.zeros(0, dtype=np.int64)
        return cls(task_ids=none, models=none.copy(), labels=none.copy(), names=())

    @property
    def size(self) -> int:
        return int(self.task_ids.size)


@dataclass(frozen=True)
class VoterEstimate:
    """What a run estimated of one model: ``predictions`` used in the fit, ``accuracy``
    (``sum_k p_k pi[k, k]``, as a worker's) and ``confusion`` ``(K, K)``, rows the true class;
    ``gold_predictions`` / ``gold_correct``: its predictions on gold tasks and how many were
    right."""

    model: str
    predictions: int
    accuracy: float
    confusion: FloatArray
    gold_predictions: int
    gold_correct: int

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "predictions": self.predictions,
            "accuracy": round(self.accuracy, 6),
            "confusion": [[round(float(v), 6) for v in row] for row in self.confusion],
            "gold_predictions": self.gold_predictions,
            "gold_correct": self.gold_correct,
        }


@dataclass(frozen=True)
class Voters:
    """The voters' predictions on a fit's tasks, as extra answers.

    ``tasks`` (dense task indices), ``workers`` (``n_workers + voter``), ``labels``: shape
    ``(n_kept,)``; ``names`` ``(n_voters,)`` in voter order; ``counts`` predictions per voter.
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    names: tuple[str, ...]
    counts: IntArray
    first: int  # worker index of voter 0: the number of human workers

    @property
    def n_voters(self) -> int:
        return len(self.names)


def relevant(votes: ModelVotes, answered_task_ids: IntArray, gold_task_ids: IntArray) -> ModelVotes:
    """The predictions that bear on a fit: those on tasks people answered (they vote there)
    and on gold tasks (they anchor the model's confusion matrix). A prediction on any other
    task would only echo itself in EM."""
    keep = np.isin(votes.task_ids, answered_task_ids) | np.isin(votes.task_ids, gold_task_ids)
    return ModelVotes(
        task_ids=votes.task_ids[keep],
        models=votes.models[keep],
        labels=votes.labels[keep],
        names=votes.names,
        warm=votes.warm,
    )


def as_answers(votes: ModelVotes, tasks: IntArray, n_workers: int) -> Voters:
    """``votes`` (already :func:`relevant`) as answers of workers ``n_workers + v``, with
    ``tasks`` the fit's sorted task ids (every voted task among them). Models left without
    predictions get no voter."""
    present, voter = np.unique(votes.models, return_inverse=True)
    return Voters(
        tasks=np.searchsorted(tasks, votes.task_ids).astype(np.int64),
        workers=(n_workers + voter).astype(np.int64),
        labels=votes.labels.astype(np.int64),
        names=tuple(votes.names[int(m)] for m in present),
        counts=np.bincount(voter, minlength=present.size).astype(np.int64),
        first=n_workers,
    )


def warm_confusion(voters: Voters, warm: dict[str, FloatArray], fallback: FloatArray) -> FloatArray:
    """Starting confusion ``(n_voters, K, K)`` of the voters: the previous run's where it has
    one of the right shape, else ``fallback`` ``(K, K)`` (the workers' mean)."""
    k = fallback.shape[0]
    out = np.broadcast_to(fallback, (voters.n_voters, k, k)).copy()
    for v, name in enumerate(voters.names):
        known = warm.get(name)
        if known is not None and np.shape(known) == (k, k):
            out[v] = known
    return out


def estimates(
    voters: Voters,
    confusion: FloatArray,
    priors: FloatArray,
    gold_of_task: IntArray,
) -> tuple[VoterEstimate, ...]:
    """Per voter, from a fit's ``confusion`` ``(n_voters, K, K)`` (the voters' rows only) and
    ``priors``; ``gold_of_task`` ``(n_tasks,)`` the gold class of each task, -1 if none."""
    gold = gold_of_task[voters.tasks]
    on_gold = gold >= 0
    voter = voters.workers - voters.first
    n = voters.n_voters
    gold_n = np.bincount(voter[on_gold], minlength=n)
    gold_right = np.bincount(voter[on_gold & (voters.labels == gold)], minlength=n)
    accuracy = np.einsum("k,vkk->v", priors, confusion)
    return tuple(
        VoterEstimate(
            model=name,
            predictions=int(voters.counts[v]),
            accuracy=float(accuracy[v]),
            confusion=np.asarray(confusion[v], dtype=np.float64),
            gold_predictions=int(gold_n[v]),
            gold_correct=int(gold_right[v]),
        )
        for v, name in enumerate(voters.names)
    )


def people_start(
    tasks: IntArray,
    workers: IntArray,
    labels: IntArray,
    *,
    n_people: int,
    n_tasks: int,
    n_classes: int,
    gold: tuple[IntArray, IntArray],
) -> tuple[FloatArray, FloatArray]:
    """A cold start that judges the voters by the people: ``(confusion (n_workers, K, K),
    priors (K,))`` from one Dawid-Skene M-step on the people's vote shares (gold clamped).

    ``tasks``, ``workers``, ``labels``: every answer, people's (``workers < n_people``) and
    voters'. Started from a majority that counted the models' votes, a model voting on every
    task would shape the first estimate of every worker's matrix (and its own, from its own
    votes); started from the people's majority, a model's matrix is first estimated against
    what people and gold say, and the fit goes on from there.
    """
    k = n_classes
    people = workers < n_people
    votes = np.bincount(tasks[people] * k + labels[people], minlength=n_tasks * k)
    shares = votes.reshape(n_tasks, k).astype(np.float64)
    gold_tasks, gold_labels = gold
    shares[gold_tasks] = 0.0
    shares[gold_tasks, gold_labels] = 1.0
    totals = shares.sum(axis=1, keepdims=True)
    known = totals[:, 0] > 0
    shares[known] /= totals[known]
    shares[~known] = 1.0 / k  # only a model voted: no say yet
    n_workers = int(workers.max()) + 1 if workers.size else 0
    cells = workers * k + labels
    counts = np.empty((n_workers * k, k))
    for c in range(k):
        counts[:, c] = np.bincount(cells, weights=shares[tasks, c], minlength=n_workers * k)
    confusion = counts.reshape(n_workers, k, k).transpose(0, 2, 1) + 1e-10
    confusion = confusion / confusion.sum(axis=2, keepdims=True)
    mass = shares[known].sum(axis=0) + 1e-10
    return np.ascontiguousarray(confusion), mass / mass.sum()
