"""Distributions for the requester dashboard, computed in SQL (one pass over each table)."""

from __future__ import annotations

from crowd.store.db import Cursor


def confidence_histogram(cur: Cursor, project_id: int, bins: int) -> list[int]:
    """Regular (non-gold) tasks with a published result, counted into ``bins`` equal bins of
    confidence over [0, 1]; a confidence of exactly 1 goes into the last bin."""
    cur.execute(
        """
        SELECT least(floor(r.confidence * %(bins)s)::int, %(bins)s - 1) AS bin, count(*)
        FROM task_results r JOIN tasks t ON t.id = r.task_id AND t.project_id = r.project_id
        WHERE r.project_id = %(project)s AND t.gold IS NULL
        GROUP BY bin
        """,
        {"project": project_id, "bins": bins},
    )
    counts = [0] * bins
    for index, n in cur.fetchall():
        counts[max(0, index)] += int(n)
    return counts


def answers_per_task(cur: Cursor, project_id: int) -> list[tuple[int, int]]:
    """``(answers, tasks)``: how many regular tasks have each number of stored answers."""
    cur.execute(
        "SELECT answers, count(*) FROM tasks WHERE project_id = %s AND gold IS NULL"
        " GROUP BY answers ORDER BY answers",
        (project_id,),
    )
    return [(int(a), int(n)) for a, n in cur.fetchall()]
