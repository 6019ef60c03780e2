"""Model versions, and the task columns their predictions fill.

A version goes ``queued`` -> ``running`` -> ``succeeded`` | ``failed``, like an aggregation
run; at most one per project is queued or running (a partial unique index). A succeeded
version holds its fitted model (joblib bytes) and its metrics, and is recorded by
:func:`record_trained` alone. Versions whose worker died or whose job was lost are found by
the workers' sweep (:func:`crowd.background.training.reap`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from crowd.em.live import CONFIDENCE_TOL
from crowd.store import job_rows, predictions, projects
from crowd.store.db import Cursor, one
from crowd.store.job_rows import JobStatus, Table
from crowd.store.projects import COMPLETE

ModelStatus = JobStatus


_TABLE: Table = "model_versions"
_COLUMNS = (
    "id, project_id, status, trigger, run_id, complete_tasks, trained_tasks, skipped_tasks,"
    " gold_tasks, gold_accuracy, gold_log_loss, threshold, auto_labelled, predicted_tasks,"
    " kind, error, created_at, started_at, finished_at"
)


@dataclass(frozen=True)
class ModelVersion:
    id: int
    project_id: int
    status: str
    trigger: str
    run_id: int | None
    complete_tasks: int
    trained_tasks: int | None
    skipped_tasks: int | None
    gold_tasks: int | None
    gold_accuracy: float | None
    gold_log_loss: float | None
    threshold: float | None
    auto_labelled: int | None
    predicted_tasks: int | None
    kind: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "project_id": self.project_id,
            "status": self.status,
            "trigger": self.trigger,
            "run_id": self.run_id,
            "trained_tasks": self.trained_tasks,
            "skipped_tasks": self.skipped_tasks,
            "metrics": {
                "gold_accuracy": self.gold_accuracy,
                "gold_log_loss": self.gold_log_loss,
                "gold_tasks": self.gold_tasks,
            },
            "predicted_tasks": self.predicted_tasks,
            "auto_label_threshold": self.threshold,
            "auto_labelled": self.auto_labelled,
            "kind": self.kind,
            "error": self.error,
            "created_at": at(self.created_at),
            "started_at": at(self.started_at),
            "finished_at": at(self.finished_at),
        }


def complete_tasks(cur: Cursor, project_id: int) -> int:
    """Regular tasks the crowd has completed (auto-labelled ones are not counted)."""
    cur.execute(
        f"SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id"
        f" WHERE t.project_id = %s AND t.gold IS NULL AND NOT t.auto_labelled AND {COMPLETE}",
        (project_id,),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def last_complete_tasks(cur: Cursor, project_id: int) -> int:
    """``complete_tasks`` of the newest version (0 before the first): retrains count from it."""
    cur.execute(
        "SELECT complete_tasks FROM model_versions WHERE project_id = %s ORDER BY id DESC LIMIT 1",
        (project_id,),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def create(
    cur: Cursor, project_id: int, trigger: str, run_id: int | None, complete: int
) -> ModelVersion | None:
    """Queue a version; None when one is already queued or running."""
    cur.execute(
        "INSERT INTO model_versions (project_id, status, trigger, run_id, complete_tasks)"
        " VALUES (%s, 'queued', %s, %s, %s)"
        " ON CONFLICT (project_id) WHERE status IN ('queued', 'running') DO NOTHING"
        f" RETURNING {_COLUMNS}",
        (project_id, trigger, run_id, complete),
    )
    row = cur.fetchone()
    return ModelVersion(*row) if row else None


def get(cur: Cursor, project_id: int, version_id: int) -> ModelVersion | None:
    row = job_rows.get(cur, _TABLE, _COLUMNS, project_id, version_id)
    return ModelVersion(*row) if row else None


def page(cur: Cursor, project_id: int, before_id: int, limit: int) -> list[ModelVersion]:
    """The project's versions, newest first, with ids below ``before_id``."""
    rows = job_rows.page(cur, _TABLE, _COLUMNS, project_id, before_id, limit)
    return [ModelVersion(*r) for r in rows]


def start(cur: Cursor, project_id: int, version_id: int) -> bool:
    """Mark a queued version running; False if it is not queued."""
    return job_rows.start(cur, _TABLE, project_id, version_id)


def fail(cur: Cursor, project_id: int, version_id: int, error: str) -> None:
    job_rows.fail(cur, _TABLE, project_id, version_id, error)


def open_versions(cur: Cursor) -> list[tuple[int, int, str, datetime]]:
    """``(version_id, project_id, status, created_at)`` of every queued or running version."""
    return job_rows.open_rows(cur, _TABLE)


def lock_if(cur: Cursor, project_id: int, version_id: int, status: str) -> ModelVersion | None:
    """The version, row-locked until the transaction ends, if its status is ``status``."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM model_versions"
        " WHERE id = %s AND project_id = %s AND status = %s FOR UPDATE",
        (version_id, project_id, status),
    )
    row = cur.fetchone()
    return ModelVersion(*row) if row else None


def record_trained(
    cur: Cursor,
    project_id: int,
    version_id: int,
    *,
    blob: bytes,
    kind: str,
    run_id: int | None,
    trained_tasks: int,
    skipped_tasks: int,
    predicted_tasks: int,
    metrics: dict[str, Any],
    threshold: float | None,
    auto_labelled: int,
) -> ModelVersion | None:
    """Record a trained version as succeeded, with its model and metrics; returns it (None if
    it was no longer running). The one place a trained version is recorded; the training job
    emits ``model.trained`` in the same transaction."""
    cur.execute(
        "UPDATE model_versions SET status = 'succeeded', finished_at = clock_timestamp(),"
        " model = %s, kind = %s, run_id = %s, trained_tasks = %s, skipped_tasks = %s,"
        " predicted_tasks = %s, gold_tasks = %s, gold_accuracy = %s, gold_log_loss = %s,"
        " threshold = %s, auto_labelled = %s"
        f" WHERE id = %s AND project_id = %s AND status = 'running' RETURNING {_COLUMNS}",
        (
            blob,
            kind,
            run_id,
            trained_tasks,
            skipped_tasks,
            predicted_tasks,
            metrics.get("gold_tasks"),
            metrics.get("gold_accuracy"),
            metrics.get("gold_log_loss"),
            threshold,
            auto_labelled,
            version_id,
            project_id,
        ),
    )
    row = cur.fetchone()
    return ModelVersion(*row) if row else None


def latest_model(cur: Cursor, project_id: int) -> tuple[int, bytes] | None:
    """``(version_id, joblib bytes)`` of the newest succeeded version."""
    cur.execute(
        "SELECT id, model FROM model_versions WHERE project_id = %s AND status = 'succeeded'"
        " ORDER BY id DESC LIMIT 1",
        (project_id,),
    )
    row = cur.fetchone()
    return (int(row[0]), bytes(row[1])) if row else None


def _field(input_kind: str) -> str:
    """SQL for the model's field of ``t.data``: text as text, features as JSON."""
    return "t.data ->> %(field)s" if input_kind == "text" else "t.data -> %(field)s"


def training_rows(
    cur: Cursor, project_id: int, field: str, input_kind: str
) -> tuple[list[int], list[Any], list[list[float]], int | None]:
    """What a version trains on: the crowd-completed regular tasks with a published result.

    Returns ``(task_ids, field values, posteriors, run_id)``: a value is None where the task
    data lacks the field; ``run_id`` is the project's last published aggregation run.
    Call in a REPEATABLE READ transaction so the rows and the run id agree.
    """
    cur.execute(
        f"""
        SELECT t.id, {_field(input_kind)}, r.posteriors
        FROM tasks t JOIN projects p ON p.id = t.project_id
        JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
        WHERE t.project_id = %(project)s AND t.gold IS NULL AND NOT t.auto_labelled
          AND {COMPLETE}
        ORDER BY t.id
        """,
        {"project": project_id, "field": field},
    )
    rows = cur.fetchall()
    return (
        [r[0] for r in rows],
        [r[1] for r in rows],
        [list(r[2]) for r in rows],
        projects.last_run_id(cur, project_id),
    )


def gold_rows(
    cur: Cursor, project_id: int, field: str, input_kind: str
) -> tuple[list[Any], np.ndarray]:
    """The gold tasks' field values (None where missing) and gold labels: held out from
    training, used for the metrics and the auto-labelling threshold."""
    cur.execute(
        f"SELECT {_field(input_kind)}, t.gold FROM tasks t"
        " WHERE t.project_id = %(project)s AND t.gold IS NOT NULL ORDER BY t.id",
        {"project": project_id, "field": field},
    )
    rows = cur.fetchall()
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64)


def prediction_batch(
    cur: Cursor, project_id: int, field: str, input_kind: str, after_id: int, limit: int
) -> list[tuple[int, Any]]:
    """The next ``limit`` tasks (gold ones too) after ``after_id``, by id:
    ``(task_id, field value)``."""
    cur.execute(
        f"SELECT t.id, {_field(input_kind)} FROM tasks t"
        " WHERE t.project_id = %(project)s AND t.id > %(after)s"
        " ORDER BY t.id LIMIT %(limit)s",
        {"project": project_id, "field": field, "after": after_id, "limit": limit},
    )
    return list(cur.fetchall())


def _cell(value: float | int | None) -> str:
    return "\\N" if value is None else repr(value)


def write_predictions(
    cur: Cursor,
    project_id: int,
    version_id: int,
    rows: list[tuple[int, int | None, float | None, float | None]],
    threshold: float | None,
) -> tuple[int, int]:
    """Store ``(task_id, label, confidence, margin)`` predictions (None: the model could not
    read the task), on the tasks and as model ``builtin:<version_id>``'s predictions (see
    :func:`crowd.store.predictions.write_builtin`). With a ``threshold``, close the tasks among them that nobody has answered
    or holds and whose confidence reaches it (auto-labelling). Returns ``(closed, stamped)``:
    the tasks it closed, and the auto-labelled tasks whose result it set or changed (those
    closed now, and earlier ones whose label, or confidence by more than
    :data:`~crowd.em.live.CONFIDENCE_TOL`, the new prediction changes).

    Each stamped task gets ``auto_after_run``: the project's ``last_run_id`` as this
    transaction commits, so ``GET .../results?since_run=N`` returns it when N is at most that
    (see :func:`crowd.store.results.page`). The project row is share-locked for that, after
    the task rows, in the order a run's publish takes them, so no run publishes in between.
    """
    cur.execute(
        "CREATE TEMP TABLE new_predictions (task_id bigint, label smallint, confidence real,"
        " margin real, stamp boolean NOT NULL DEFAULT false) ON COMMIT DROP"
    )
    text = "".join(f"{t}\t{_cell(lab)}\t{_cell(c)}\t{_cell(m)}\n" for t, lab, c, m in rows)
    cur.copy_expert(
        "COPY new_predictions (task_id, label, confidence, margin) FROM STDIN",
        io.StringIO(text),
    )
    params = {
        "version": version_id,
        "project": project_id,
        "threshold": threshold,
        "tol": CONFIDENCE_TOL,
    }
    # Auto-labelled tasks whose result (the model's label) this prediction changes; read
    # before the update below overwrites the old prediction.
    cur.execute(
        """
        UPDATE new_predictions n SET stamp = true
        FROM tasks t
        WHERE t.id = n.task_id AND t.project_id = %(project)s AND t.auto_labelled
          AND (t.model_label IS DISTINCT FROM n.label
               OR abs(t.model_confidence - n.confidence) > %(tol)s)
        """,
        params,
    )
    cur.execute(
        """
        UPDATE tasks t SET model_id = %(version)s, model_label = n.label,
               model_confidence = n.confidence, model_margin = n.margin
        FROM new_predictions n WHERE t.id = n.task_id AND t.project_id = %(project)s
        """,
        params,
    )
    predictions.write_builtin(cur, project_id, version_id, "new_predictions")
    closed = 0
    if threshold is not None:
        cur.execute(
            """
            WITH closed AS (
                UPDATE tasks t SET done = true, auto_labelled = true
                FROM new_predictions n
                WHERE t.id = n.task_id AND t.project_id = %(project)s AND t.gold IS NULL
                  AND NOT t.done AND t.answers = 0 AND t.taken = 0
                  AND n.confidence >= %(threshold)s::real
                RETURNING t.id
            )
            UPDATE new_predictions n SET stamp = true FROM closed c WHERE n.task_id = c.id
            """,
            params,
        )
        closed = int(cur.rowcount)
    cur.execute("SELECT count(*) FROM new_predictions WHERE stamp")
    stamped = int(one(cur)[0])
    if stamped:
        cur.execute(
            "SELECT coalesce(last_run_id, 0) FROM projects WHERE id = %s FOR SHARE",
            (project_id,),
        )
        cur.execute(
            "UPDATE tasks t SET auto_after_run = %s FROM new_predictions n"
            " WHERE n.stamp AND t.id = n.task_id AND t.project_id = %s",
            (one(cur)[0], project_id),
        )
    return closed, stamped
