"""Reading everything one aggregation run needs, in one short consistent transaction.

Answers are streamed with ``COPY ... TO STDOUT`` and parsed by pyarrow into integer arrays:
at a million answers that is a fraction of the time row-by-row fetching takes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from crowd.em.voters import ModelVotes
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

    @property
    def n_answers(self) -> int:
        return int(self.answer_ids.size)


def _copy_columns(
    cur: Cursor, query: str, columns: dict[str, pa.DataType]
) -> dict[str, np.ndarray]:
    """Run ``COPY (query) TO STDOUT`` (values already inlined by mogrify); return its columns
    as numpy arrays of the given arrow types."""
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
    if buffer.tell() == 0:
        return {name: np.zeros(0, dtype=kind.to_pandas_dtype()) for name, kind in columns.items()}
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=list(columns)),
        convert_options=pacsv.ConvertOptions(column_types=columns),
    )
    return {name: table.column(name).to_numpy() for name in columns}


def load(cur: Cursor, project_id: int, n_classes: int, *, exclude_banned: bool) -> Snapshot:
    """Read a run's input. Call first thing in a fresh transaction: it makes the transaction
    REPEATABLE READ so answers, gold and warm start all come from one snapshot."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    banned = (
        " AND NOT EXISTS (SELECT 1 FROM project_workers pw WHERE pw.project_id = a.project_id"
        " AND pw.worker_id = a.worker_id AND pw.status = 'banned')"
        if exclude_banned
        else ""
    )
    query = cur.mogrify(
        "SELECT a.id, a.task_id, a.worker_id, a.label, coalesce(a.proposal, -1)"
        " FROM assignments a"
        f" WHERE a.project_id = %s AND a.status = 'answered'{banned}",
        (project_id,),
    ).decode()
    answers = _copy_columns(
        cur, query, dict.fromkeys(["id", "task", "worker", "label", "proposal"], pa.int64())
    )
    published = _copy_columns(
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
        " JOIN aggregation_runs r ON r.id = p.last_run_id"
        " WHERE p.id = %s",
        (project_id,),
    )
    last = cur.fetchone()
    priors = None
    if last and last[0] is not None and len(last[0]) == n_classes:
        priors = np.array(last[0], dtype=np.float64)
    cur.execute("SELECT coalesce(sum(answers), 0) FROM tasks WHERE project_id = %s", (project_id,))
    total = cur.fetchone()
    votes = _votes(cur, project_id, (last[2] if last else None) or [], n_classes)
    return Snapshot(
        votes=votes,
        proposals=answers["proposal"],
        published=published,
        answers_total=int(total[0]) if total else 0,
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
    rows = _copy_columns(cur, query, dict.fromkeys(["task", "model", "label"], pa.int64()))
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
