"""Every task of a project with its labels, read through a server-side cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crowd.store.db import Cursor
from crowd.store.predictions import NEWEST
from crowd.store.projects import COMPLETE

#: Columns of each exported row, in order.
COLUMNS = (
    "task_id",
    "external_id",
    "gold",
    "label",
    "label_source",
    "confidence",
    "answers",
    "status",
    "run_id",
    "model_label",
    "model_confidence",
    "prediction_model",
    "prediction_label",
    "prediction_confidence",
    "corrected",
)


def rows(cur: Cursor, project_id: int, batch: int = 2000) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the project's tasks by id, ``batch`` rows at a time, as tuples of :data:`COLUMNS`
    with labels as indices into the project's labels.

    ``label`` and ``label_source``: the published aggregation result (``crowd``); the model's
    label for a task closed by auto-labelling (``model``); the known answer of a gold task
    (``gold``, with no confidence). A task with none of these (no run has covered it yet: it
    has no answers, or its answers came after the last run) has ``label``, ``label_source``
    and ``confidence`` null and ``status`` ``pending``: in the export, ``complete`` means the
    task needs no more answers *and* has its label.

    ``prediction_*`` are the task's newest prediction by any model; ``corrected`` says whether
    ``label`` differs from it (null when either is missing).

    A named (server-side) cursor on the caller's transaction keeps memory flat whatever the
    project's size; the caller keeps the transaction open while it consumes the rows.
    """
    named = cur.connection.cursor(name=f"crowd_export_{project_id}")
    named.itersize = batch
    try:
        named.execute(
            f"""
            SELECT id, external_id, gold, label, source, confidence, answers,
                   CASE WHEN source IS NOT NULL AND (source = 'gold' OR complete)
                        THEN 'complete' ELSE 'pending' END,
                   run_id, model_label, model_confidence,
                   prediction_model, prediction_label, prediction_confidence,
                   CASE WHEN label IS NOT NULL AND prediction_label IS NOT NULL
                        THEN label <> prediction_label END
            FROM (
                SELECT t.id, t.external_id, t.gold,
                       CASE WHEN t.gold IS NOT NULL THEN t.gold
                            WHEN r.task_id IS NOT NULL THEN r.label
                            WHEN t.auto_labelled THEN t.model_label END AS label,
                       CASE WHEN t.gold IS NOT NULL THEN 'gold'
                            WHEN r.task_id IS NOT NULL THEN 'crowd'
                            WHEN t.auto_labelled AND t.model_label IS NOT NULL THEN 'model'
                       END AS source,
                       CASE WHEN t.gold IS NOT NULL THEN NULL
                            WHEN r.task_id IS NOT NULL THEN r.confidence
                            WHEN t.auto_labelled THEN t.model_confidence END AS confidence,
                       t.answers, {COMPLETE} AS complete,
                       r.run_id, t.model_label, t.model_confidence,
                       pr.model AS prediction_model, pr.label AS prediction_label,
                       pr.confidence AS prediction_confidence
                FROM tasks t JOIN projects p ON p.id = t.project_id
                LEFT JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
                {NEWEST}
                WHERE t.project_id = %s
            ) x
            ORDER BY id
            """,
            (project_id,),
        )
        while True:
            chunk = named.fetchmany(batch)
            if not chunk:
                return
            yield chunk
    finally:
        named.close()
