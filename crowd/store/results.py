"""Reading results and raw answers, page by page (keyset pagination on ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crowd.store.db import Cursor


def majority_page(
    cur: Cursor, project_id: int, after_id: int, limit: int
) -> list[tuple[int, str, int, int, int | None, int]]:
    """Majority vote per task: ``(task_id, external_id, answers, target, label, votes)``.

    ``label`` is the index of the most chosen label, ties going to the label listed first in
    the project (the lowest index); it is None for a task with no answers yet.
    """
    cur.execute(
        """
        SELECT t.id, t.external_id, t.answers, t.target, v.label, coalesce(v.n, 0)
        FROM (SELECT id, external_id, answers, target FROM tasks
              WHERE project_id = %s AND id > %s ORDER BY id LIMIT %s) t
        LEFT JOIN LATERAL (
            SELECT a.label, count(*) AS n FROM assignments a
            WHERE a.task_id = t.id AND a.status = 'answered'
            GROUP BY a.label ORDER BY count(*) DESC, a.label LIMIT 1
        ) v ON true
        ORDER BY t.id
        """,
        (project_id, after_id, limit),
    )
    return cur.fetchall()


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
