"""Reading results and raw answers, page by page (keyset pagination on ids).

A page reads its rows from the cursor on, through an index, and looks up each row's result:
it costs the same at any depth (``tests/store/test_results_paging.py`` checks the plan).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crowd.store.db import Cursor
from crowd.store.predictions import NEWEST
from crowd.store.projects import COMPLETE


def page(
    cur: Cursor,
    project_id: int,
    after_id: int,
    limit: int,
    *,
    since_run: int | None = None,
    status: str | None = None,
    include_gold: bool = False,
) -> list[tuple[Any, ...]]:
    """Results of the project's regular (non-gold) tasks, by task id; with ``include_gold``
    its gold tasks too (complete, since their label is known; no run changes them).

    Rows: ``(task_id, external_id, answers, complete, run_id, label, confidence,
    aggregated_answers, posteriors, majority_label, majority_votes, model_label,
    model_confidence, auto_labelled, gold, prediction model, prediction label, prediction
    confidence)``, the prediction being the task's newest (see :mod:`crowd.store.predictions`).
    The run columns come
    from the last run that changed the task's result; a task no run has covered yet (run_id
    None) has the majority vote instead, ties going to the label listed first in the
    project. ``since_run`` keeps tasks whose result a later run changed, and auto-labelled
    tasks whose label the model set or changed while run ``since_run`` or a later one was the
    project's last (``tasks.auto_after_run``, see
    :func:`crowd.store.models.write_predictions`); ``status`` is ``complete`` or ``pending``
    (see :data:`crowd.store.projects.COMPLETE`).
    """
    complete = f"(t.gold IS NOT NULL OR {COMPLETE})"
    source, where = page_tasks(since_run)
    cur.execute(
        f"""
        SELECT t.id, t.external_id, t.answers, {complete}, r.run_id, r.label, r.confidence,
               r.answers, r.posteriors, v.label, coalesce(v.n, 0),
               t.model_label, t.model_confidence, t.auto_labelled, t.gold,
               pr.model, pr.label, pr.confidence
        FROM {source}
        -- Looked up per task of the page (LIMIT 1 keeps the planner from merging the join
        -- with a scan of task_results from its first row: that made a page cost its depth).
        LEFT JOIN LATERAL (
            SELECT * FROM task_results r
            WHERE r.task_id = t.id AND r.project_id = t.project_id LIMIT 1
        ) r ON true
        {NEWEST}
        LEFT JOIN LATERAL (
            SELECT a.label, count(*) AS n FROM assignments a
            WHERE a.task_id = t.id AND a.project_id = t.project_id AND a.status = 'answered'
                  AND r.task_id IS NULL
                  AND t.gold IS NULL
            GROUP BY a.label ORDER BY count(*) DESC, a.label LIMIT 1
        ) v ON true
        WHERE {where}
        ORDER BY t.project_id, t.id LIMIT %(limit)s
        """,
        page_args(project_id, after_id, limit, since_run, status, include_gold),
    )
    return list(cur.fetchall())


def page_tasks(since_run: int | None) -> tuple[str, str]:
    """The FROM (tasks ``t`` joined to their project ``p``) and WHERE of a page of a
    project's tasks after the cursor, with the filters of :func:`page`; its parameters are
    :func:`page_args`'. Typed projects' pages (:mod:`crowd.store.typed`) read through it too.
    """
    complete = f"(t.gold IS NOT NULL OR {COMPLETE})"
    kept = (
        "(t.gold IS NULL OR %(gold)s)"
        f" AND (%(status)s::text IS NULL OR (%(status)s = 'complete') = {complete})"
    )
    if since_run is None:
        # The row comparison is the tasks_project index's own order, so the page is read
        # through it from the cursor on, never through the ids of other projects' tasks; the
        # equality names the project, so a database distributed by project reads one node.
        source = "tasks t JOIN projects p ON p.id = t.project_id"
        where = (
            "t.project_id = %(project)s"
            " AND (t.project_id, t.id) > (%(project)s, %(after)s) AND t.project_id <= %(project)s"
            f" AND {kept}"
        )
    else:
        # The page is driven from the changed rows, never from the project's tasks: a walk
        # of the tasks that keeps the few changed ones costs the project's size per page.
        # Each branch is one table's rows of this project after the cursor, in id order, cut
        # at the page size, so the planner can choose per branch between walking the ids in
        # order (many changed) and reading the changed ones through their index and sorting
        # them (few changed): task_results_run, tasks_auto_after_run.
        source = f"""(
            SELECT DISTINCT id FROM (
                (SELECT r.task_id AS id FROM task_results r
                 JOIN tasks t ON t.id = r.task_id AND t.project_id = r.project_id
                 JOIN projects p ON p.id = t.project_id
                 WHERE r.project_id = %(project)s AND r.run_id > %(since)s
                       AND r.task_id > %(after)s AND {kept}
                 ORDER BY r.task_id LIMIT %(limit)s)
                UNION ALL
                (SELECT t.id FROM tasks t JOIN projects p ON p.id = t.project_id
                 WHERE t.project_id = %(project)s AND t.auto_labelled
                       AND t.auto_after_run >= %(since)s AND t.id > %(after)s AND {kept}
                 ORDER BY t.id LIMIT %(limit)s)
            ) changed ORDER BY id LIMIT %(limit)s
        ) c
        -- Each changed task looked up by its id (LIMIT 1 keeps the join per row, not a scan).
        CROSS JOIN LATERAL (
            SELECT * FROM tasks t WHERE t.id = c.id AND t.project_id = %(project)s LIMIT 1
        ) t
        JOIN projects p ON p.id = t.project_id"""
        where = "t.project_id = %(project)s"
    return source, where


def page_args(
    project_id: int,
    after_id: int,
    limit: int,
    since_run: int | None,
    status: str | None,
    include_gold: bool,
) -> dict[str, Any]:
    """The parameters of :func:`page_tasks`' SQL."""
    return {
        "project": project_id,
        "after": after_id,
        "limit": limit,
        "since": since_run,
        "status": status,
        "gold": include_gold,
    }


def answers_page(
    cur: Cursor, project_id: int, after_id: int, limit: int
) -> list[tuple[int, int, str, int, int, datetime]]:
    """Raw answers in the order they were stored: ``(id, task_id, external_id, worker_id, label, at)``."""
    cur.execute(
        """
        SELECT a.id, a.task_id, t.external_id, a.worker_id, a.label, a.answered_at
        FROM assignments a JOIN tasks t ON t.id = a.task_id AND t.project_id = a.project_id
        WHERE a.project_id = %s AND a.status = 'answered' AND a.id > %s
        ORDER BY a.id LIMIT %s
        """,
        (project_id, after_id, limit),
    )
    rows: list[Any] = cur.fetchall()
    return rows
