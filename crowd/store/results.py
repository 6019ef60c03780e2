"""Reading results and raw answers, page by page (keyset pagination on ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crowd.store.db import Cursor
from crowd.store.projects import COMPLETE


def page(
    cur: Cursor,
    project_id: int,
    after_id: int,
    limit: int,
    *,
    since_run: int | None = None,
    status: str | None = None,
) -> list[tuple[Any, ...]]:
    """Results of the project's regular (non-gold) tasks, by task id.

    Rows: ``(task_id, external_id, answers, complete, run_id, label, confidence,
    aggregated_answers, posteriors, majority_label, majority_votes, model_label,
    model_confidence, auto_labelled)``. The run columns come
    from the last run that changed the task's result; a task no run has covered yet (run_id
    None) has the majority vote instead, ties going to the label listed first in the
    project. ``since_run`` keeps tasks whose result a later run changed; ``status`` is
    ``complete`` or ``pending`` (see :data:`crowd.store.projects.COMPLETE`).
    """
    cur.execute(
        f"""
        SELECT t.id, t.external_id, t.answers, {COMPLETE}, r.run_id, r.label, r.confidence,
               r.answers, r.posteriors, v.label, coalesce(v.n, 0),
               t.model_label, t.model_confidence, t.auto_labelled
        FROM tasks t
        JOIN projects p ON p.id = t.project_id
        LEFT JOIN task_results r ON r.task_id = t.id
        LEFT JOIN LATERAL (
            SELECT a.label, count(*) AS n FROM assignments a
            WHERE a.task_id = t.id AND a.status = 'answered' AND r.task_id IS NULL
            GROUP BY a.label ORDER BY count(*) DESC, a.label LIMIT 1
        ) v ON true
        WHERE t.project_id = %(project)s AND t.gold IS NULL AND t.id > %(after)s
          AND (%(since)s::bigint IS NULL OR r.run_id > %(since)s)
          AND (%(status)s::text IS NULL OR (%(status)s = 'complete') = {COMPLETE})
        ORDER BY t.id LIMIT %(limit)s
        """,
        {
            "project": project_id,
            "after": after_id,
            "limit": limit,
            "since": since_run,
            "status": status,
        },
    )
    return list(cur.fetchall())


def answers_page(
    cur: Cursor, project_id: int, after_id: int, limit: int
) -> list[tuple[int, int, str, int, int, datetime]]:
    """Raw answers in the order they were stored: ``(id, task_id, external_id, worker_id, label, at)``."""
    cur.execute(
        """
        SELECT a.id, a.task_id, t.external_id, a.worker_id, a.label, a.answered_at
        FROM assignments a JOIN tasks t ON t.id = a.task_id
        WHERE a.project_id = %s AND a.status = 'answered' AND a.id > %s
        ORDER BY a.id LIMIT %s
        """,
        (project_id, after_id, limit),
    )
    rows: list[Any] = cur.fetchall()
    return rows
