"""Reading everything one aggregation run needs, in one short consistent transaction.

The answers come from the copy a worker keeps between runs plus the rows it lacks
(:mod:`crowd.store.answer_state`); the rest (gold, bans, warm start, published results) is
read from PostgreSQL each time, streamed with ``COPY ... TO STDOUT`` where it is large.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from crowd.em.voters import ModelVotes
from crowd.store import answer_state
from crowd.store.columns import copy_columns
from crowd.store.db import Cursor
from crowd.store.predictions import BUILTIN

IntArray = np.ndarray


@dataclass(frozen=True)
class Snapshot:
    """A project's answers and what a run starts from.

    Attributes:
        answer_ids, task_ids, worker_ids, labels: ``(n_answers,)`` int64, in no particular order.
        proposals: ``(n_answers,)`` int64, the label proposed when the worker answered (a
            review answer), -1 for a blind one.
        votes: the requester models' predictions, each model a voter (not the built-in
            model's: it learnt from the crowd's labels, see docs/REVIEW.md), with the previous
            run's estimate of each to warm-start from.
        gold_task_ids, gold_labels: the project's gold tasks and their known classes.
        warm_workers: ``(m,)`` worker ids with estimates from the previous run.
        warm_confusion: ``(m, K, K)`` their confusion matrices.
        warm_priors: ``(K,)`` class priors of the previous run, or None.
        warm_cold_answers: answers of the newest cold-started fit behind the previous run.
        answers_total: answers stored at the snapshot, banned workers' included.
        published: the results now published, as arrays ``task`` (sorted), ``label``,
            ``answers``, ``confidence`` and ``decision``, so a run writes only the rows it
            changes.
        load: how the answers were read: ``"incremental"`` or ``"full: <why>"``.
        read: answer rows read from PostgreSQL (all of them for a full read).
        kept: where the answers came from, for keeping the published results after the run
            (:func:`crowd.store.answer_state.keep_published`).
    """

    answer_ids: IntArray
    task_ids: IntArray
    worker_ids: IntArray
    labels: IntArray
    proposals: IntArray
    gold_task_ids: IntArray
    gold_labels: IntArray
    warm_workers: IntArray
    warm_confusion: np.ndarray
    warm_priors: np.ndarray | None
    warm_cold_answers: int = 0
    answers_total: int = 0
    published: dict[str, np.ndarray] = field(default_factory=dict)
    votes: ModelVotes = field(default_factory=ModelVotes.empty)
    load: str = "full"
    read: int = 0
    kept: answer_state.Answers | None = None

    @property
    def n_answers(self) -> int:
        return int(self.answer_ids.size)


def load(
    cur: Cursor,
    project_id: int,
    n_classes: int,
    *,
    exclude_banned: bool,
    state_dir: Path | None = None,
    full_reload_seconds: float = answer_state.FULL_RELOAD_SECONDS,
) -> Snapshot:
    """Read a run's input. Call first thing in a fresh transaction: it makes the transaction
    REPEATABLE READ so answers, bans, gold and warm start all come from one snapshot.

    ``state_dir``: where this worker keeps projects' answers between runs (None: read them
    all every time); see :func:`crowd.store.answer_state.read`."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    kept = answer_state.read(cur, project_id, state_dir, full_reload_seconds=full_reload_seconds)
    answers = kept.columns
    if exclude_banned:
        cur.execute(
            "SELECT worker_id FROM project_workers WHERE project_id = %s AND status = 'banned'",
            (project_id,),
        )
        banned = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        if banned.size:
            counted = ~np.isin(answers["worker"], banned)
            answers = {name: column[counted] for name, column in answers.items()}
    published = answer_state.read_published(kept)
    if published is None:
        published = read_published(cur, project_id)
    cur.execute(
        "SELECT id, gold FROM tasks WHERE project_id = %s AND gold IS NOT NULL ORDER BY id",
        (project_id,),
    )
    gold = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 2)
    cur.execute(
        "SELECT worker_id, confusion FROM project_workers"
        " WHERE project_id = %s AND confusion IS NOT NULL ORDER BY worker_id",
        (project_id,),
    )
    rows = [(w, c) for w, c in cur.fetchall() if len(c) == n_classes]
    warm_workers = np.array([w for w, _ in rows], dtype=np.int64)
    warm_confusion = np.array([c for _, c in rows], dtype=np.float64).reshape(
        -1, n_classes, n_classes
    )
    cur.execute(
        "SELECT r.priors, r.cold_answers, r.voters FROM projects p"
        " JOIN aggregation_runs r ON r.id = p.last_run_id AND r.project_id = p.id"
        " WHERE p.id = %s",
        (project_id,),
    )
    last = cur.fetchone()
    priors = None
    if last and last[0] is not None and len(last[0]) == n_classes:
        priors = np.array(last[0], dtype=np.float64)
    cur.execute(
        "SELECT coalesce(sum(answers), 0) FROM project_counts WHERE project_id = %s",
        (project_id,),
    )
    total = cur.fetchone()
    votes = _votes(cur, project_id, (last[2] if last else None) or [], n_classes)
    return Snapshot(
        votes=votes,
        proposals=answers["proposal"],
        published=published,
        answers_total=int(total[0]) if total else 0,
        load=kept.load,
        read=kept.read,
        kept=kept,
        answer_ids=answers["id"],
        task_ids=answers["task"],
        worker_ids=answers["worker"],
        labels=answers["label"],
        gold_task_ids=gold[:, 0].copy(),
        gold_labels=gold[:, 1].copy(),
        warm_workers=warm_workers,
        warm_confusion=warm_confusion,
        warm_priors=priors,
        warm_cold_answers=int(last[1] or 0) if last else 0,
    )


def _votes(
    cur: Cursor, project_id: int, warm: list[dict[str, object]], n_classes: int
) -> ModelVotes:
    """The voting models' predictions (one per task and model), and the previous run's
    estimates of them. Without predictions this costs one index probe."""
    cur.execute(
        "SELECT DISTINCT model FROM predictions WHERE project_id = %s AND model NOT LIKE %s"
        " ORDER BY model",
        (project_id, BUILTIN + "%"),
    )
    names = [row[0] for row in cur.fetchall()]
    if not names:
        return ModelVotes.empty()
    query = cur.mogrify(
        "SELECT task_id, array_position(%s::text[], model) - 1, label FROM predictions"
        " WHERE project_id = %s AND model NOT LIKE %s",
        (names, project_id, BUILTIN + "%"),
    ).decode()
    rows = copy_columns(cur, query, dict.fromkeys(["task", "model", "label"], pa.int64()))
    known = {}
    for voter in warm:
        confusion = np.asarray(voter.get("confusion"), dtype=np.float64)
        if confusion.shape == (n_classes, n_classes):
            known[str(voter.get("model"))] = confusion
    return ModelVotes(
        task_ids=rows["task"],
        models=rows["model"],
        labels=rows["label"],
        names=tuple(names),
        warm=known,
    )


def read_published(cur: Cursor, project_id: int) -> dict[str, np.ndarray]:
    """The project's published results as columns ``task`` (sorted), ``label``, ``answers``,
    ``confidence`` and ``decision``: what a run compares its output with."""
    return copy_columns(
        cur,
        cur.mogrify(
            "SELECT task_id, label, answers, confidence, decision FROM task_results"
            " WHERE project_id = %s ORDER BY task_id",
            (project_id,),
        ).decode(),
        {
            "task": pa.int64(),
            "label": pa.int64(),
            "answers": pa.int64(),
            "confidence": pa.float64(),
            "decision": pa.float64(),
        },
    )
