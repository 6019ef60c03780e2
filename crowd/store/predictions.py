"""Predictions from any model, and the corrections people make to them.

Guarantees, and how each is kept:

* One prediction per (task, model): a unique index. :func:`insert` adds the new pairs with
  ``ON CONFLICT DO NOTHING`` and reports the pairs already stored with another label, which
  the caller turns into a 409 (rolling the whole request back, so nothing of it is stored).
  A repeat with the same label changes nothing, not even the confidence.
* A task's prediction, as results, export and ``task.completed`` show it, is its newest row
  (highest id): :data:`NEWEST` reads it through ``predictions_newest``. No task row is written
  when a prediction arrives, so posting predictions never waits on answers or runs.
* Each built-in model version keeps its predictions as ``builtin:<version id>``; writing a
  version's batch removes the older versions' rows for the same tasks (:func:`write_builtin`),
  so a project keeps one built-in prediction per task, not one per version.
* A correction is counted once: the run that first publishes, for a task, a label other than
  its newest prediction's stamps that prediction (``corrected_run_id``) and adds it to the
  project's ``corrections_total`` in its publish transaction (:func:`count_corrections`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import execute_values

from crowd.store.db import Cursor, id_array, one

#: Prefix of the built-in model's names; API clients may not post under it.
BUILTIN = "builtin:"

#: SQL for a LATERAL subquery giving the newest prediction of task ``t``:
#: ``pr.model, pr.label, pr.confidence`` (all null when it has none).
NEWEST = """LEFT JOIN LATERAL (
            SELECT p.model, p.label, p.confidence FROM predictions p
            WHERE p.task_id = t.id AND p.project_id = t.project_id ORDER BY p.id DESC LIMIT 1
        ) pr ON true"""


def builtin_name(version_id: int) -> str:
    return f"{BUILTIN}{version_id}"


def to_json(
    labels: Sequence[str], model: str | None, label: int | None, confidence: float | None
) -> dict[str, Any] | None:
    """A task's prediction as results, export and webhooks show it; None without one."""
    if model is None or label is None or confidence is None:
        return None
    return {"model": model, "label": labels[label], "confidence": round(float(confidence), 6)}


@dataclass(frozen=True)
class NewPrediction:
    task_id: int
    model: str
    label: int  # index into the project's labels
    confidence: float  # the predicted label's probability
    probabilities: Sequence[float] | None = None  # one per project label


def tasks_by_external_id(cur: Cursor, project_id: int, external_ids: list[str]) -> dict[str, int]:
    """``external_id -> task id`` for those of ``external_ids`` that the project has."""
    if not external_ids:
        return {}
    cur.execute(
        "SELECT external_id, id FROM tasks WHERE project_id = %s AND external_id = ANY (%s)",
        (project_id, external_ids),
    )
    return {external_id: task_id for external_id, task_id in cur.fetchall()}


def known_task_ids(cur: Cursor, project_id: int, task_ids: list[int]) -> set[int]:
    """Those of ``task_ids`` that are tasks of the project."""
    if not task_ids:
        return set()
    cur.execute(
        "SELECT id FROM tasks WHERE project_id = %s AND id = ANY (%s::bigint[])",
        (project_id, id_array(task_ids)),
    )
    return {row[0] for row in cur.fetchall()}


def insert(
    cur: Cursor, project_id: int, batch: Sequence[NewPrediction]
) -> tuple[int, list[tuple[NewPrediction, int]]]:
    """Store the predictions whose (task, model) pair is new.

    Returns ``(created, conflicts)``: ``conflicts`` pairs each prediction whose pair was
    already stored with another label with that stored label. The caller rolls the
    transaction back when there are any. A concurrent insert of the same pair is waited for
    (the unique index), so its label is compared too.
    """
    if not batch:
        return 0, []
    rows = execute_values(
        cur,
        "INSERT INTO predictions (project_id, task_id, model, label, confidence, probabilities)"
        " VALUES %s ON CONFLICT (task_id, model, project_id) DO NOTHING RETURNING task_id, model",
        [
            (
                project_id,
                p.task_id,
                p.model,
                p.label,
                p.confidence,
                list(p.probabilities) if p.probabilities is not None else None,
            )
            # In one order, so two requests inserting the same pairs wait on each other
            # instead of deadlocking.
            for p in sorted(batch, key=lambda p: (p.task_id, p.model))
        ],
        page_size=1000,
        fetch=True,
    )
    created = {(task_id, model) for task_id, model in rows}
    repeats = [p for p in batch if (p.task_id, p.model) not in created]
    conflicts: list[tuple[NewPrediction, int]] = []
    if repeats:
        stored = execute_values(
            cur,
            "SELECT p.task_id, p.model, p.label FROM predictions p"
            " JOIN (VALUES %s) AS v (task_id, model) ON p.task_id = v.task_id::bigint"
            " AND p.model = v.model",
            [(p.task_id, p.model) for p in repeats],
            page_size=1000,
            fetch=True,
        )
        label_of = {(task_id, model): label for task_id, model, label in stored}
        conflicts = [
            (p, label_of[(p.task_id, p.model)])
            for p in repeats
            if label_of.get((p.task_id, p.model), p.label) != p.label
        ]
    return len(created), conflicts


def write_builtin(cur: Cursor, project_id: int, version_id: int, table: str) -> None:
    """Store built-in version ``version_id``'s predictions from the temporary ``table``
    (``task_id, label, confidence``; a null label: the model could not read the task), and
    drop the older built-in versions' predictions of the same tasks."""
    name = builtin_name(version_id)
    cur.execute(
        f"DELETE FROM predictions p USING {table} n"
        " WHERE p.project_id = %s AND p.task_id = n.task_id AND p.model LIKE %s AND p.model <> %s",
        (project_id, BUILTIN + "%", name),
    )
    cur.execute(
        "INSERT INTO predictions (project_id, task_id, model, label, confidence)"
        " SELECT %s, n.task_id, %s, n.label, least(greatest(n.confidence, 0), 1)"
        f" FROM {table} n WHERE n.label IS NOT NULL"
        " ON CONFLICT (task_id, model, project_id) DO NOTHING",
        (project_id, name),
    )


@dataclass(frozen=True)
class CorrectionsDue:
    """What a ``review.corrections`` event reports."""

    new: int  # corrections counted since the previous event
    total: int  # corrections counted in the project's life
    every: int  # the project's corrections_every
    models: dict[str, int]  # corrections since the previous event, by model name

    def to_json(self, run_id: int) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "corrections": self.new,
            "total_corrections": self.total,
            "corrections_every": self.every,
            "models": dict(self.models),
        }


def count_corrections(
    cur: Cursor, run_id: int, project_id: int, written_task_ids: Sequence[int]
) -> CorrectionsDue | None:
    """In run ``run_id``'s publish transaction, after its results are written: count the
    tasks among ``written_task_ids`` whose published label now differs from their newest
    prediction, each prediction once. Returns what the ``review.corrections`` event reports
    when ``corrections_every`` new ones have built up since the previous event, else None
    (and then the event is due later)."""
    if not written_task_ids:
        return None
    cur.execute("SELECT EXISTS (SELECT 1 FROM predictions WHERE project_id = %s)", (project_id,))
    if not one(cur)[0]:
        return None  # the usual case without predictions: no look-up per written task
    cur.execute(
        """
        UPDATE predictions q SET corrected_run_id = %(run)s
        FROM tasks t JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
        JOIN LATERAL (
            SELECT p.id, p.label FROM predictions p
            WHERE p.task_id = t.id AND p.project_id = t.project_id ORDER BY p.id DESC LIMIT 1
        ) pr ON true
        WHERE t.id = ANY (%(ids)s::bigint[]) AND t.project_id = %(project)s
          AND q.id = pr.id AND q.project_id = %(project)s AND q.corrected_run_id IS NULL
          AND r.label <> pr.label
        """,
        {"run": run_id, "ids": id_array(written_task_ids), "project": project_id},
    )
    counted = int(cur.rowcount)
    if counted == 0:
        return None
    cur.execute(
        "UPDATE projects SET corrections_total = corrections_total + %s WHERE id = %s"
        " RETURNING corrections_total, corrections_reported, corrections_reported_run,"
        " corrections_every",
        (counted, project_id),
    )
    total, reported, reported_run, every = one(cur)
    if total - reported < every:
        return None
    cur.execute(
        "SELECT model, count(*) FROM predictions WHERE project_id = %s"
        " AND corrected_run_id > %s GROUP BY model ORDER BY model",
        (project_id, reported_run),
    )
    models = {model: int(n) for model, n in cur.fetchall()}
    cur.execute(
        "UPDATE projects SET corrections_reported = %s, corrections_reported_run = %s"
        " WHERE id = %s",
        (total, run_id, project_id),
    )
    return CorrectionsDue(new=total - reported, total=total, every=every, models=models)


def corrections_page(
    cur: Cursor, project_id: int, model: str, after_task_id: int, limit: int
) -> list[tuple[Any, ...]]:
    """The tasks whose current label differs from ``model``'s prediction, by task id.

    Rows: ``(task_id, external_id, predicted label, predicted confidence, label, label
    confidence, label source)``. The current label is a gold task's known answer (source
    ``gold``, no confidence) or the published aggregation result (``crowd``); tasks with
    neither, and auto-labelled ones (whose label is a model's), are left out.
    """
    cur.execute(
        """
        SELECT t.id, t.external_id, p.label, p.confidence,
               coalesce(t.gold, r.label),
               CASE WHEN t.gold IS NULL THEN r.confidence END,
               CASE WHEN t.gold IS NULL THEN 'crowd' ELSE 'gold' END
        FROM predictions p
        JOIN tasks t ON t.id = p.task_id AND t.project_id = p.project_id
        LEFT JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
        WHERE p.project_id = %s AND p.model = %s AND p.task_id > %s
          AND coalesce(t.gold, r.label) <> p.label
        ORDER BY p.task_id LIMIT %s
        """,
        (project_id, model, after_task_id, limit),
    )
    return list(cur.fetchall())
