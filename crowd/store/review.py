"""The review lane: which tasks are shown to workers with a model's proposal.

Guarantees, and how each is kept:

* A task's lane is stored on its row (``tasks.proposal``: the proposed label, NULL for a blind
  task), so a fetch reads it off the row it locks and copies it to the assignment
  (``assignments.proposal``) in the same statement: what a worker was shown is recorded with
  the reservation, and a blind task has no proposal to leak.
* Routing (:func:`route`) decides only tasks nobody has answered or holds (``answers = 0 AND
  taken = 0``, re-checked by the UPDATE under the row lock), so a task's answers all come from
  one lane. It sets the task's ``target`` to its lane's overlap at the same time, so the
  ``taken <= target`` invariant of :mod:`crowd.store.assignments` caps both lanes alike.
  Rows another transaction holds (a fetch taking the task, a sweep) are skipped; the next
  routing (the next prediction, or the project's next run) decides them.
* Projects without a review setting are never routed: their tasks keep ``proposal`` NULL and
  the project's overlap, and a fetch costs what it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crowd.store.db import Cursor, id_array
from crowd.store.projects import Project


def route(cur: Cursor, project: Project, task_ids: Sequence[int] | None = None) -> int:
    """Put the project's undecided tasks (those among ``task_ids``, or all) in their lanes
    from their newest prediction; returns how many tasks changed lane or target.

    Review lane: the newest prediction's confidence is at least ``review.blind_below``; the
    task needs ``review.overlap`` answers and shows the predicted label. Blind: no prediction,
    or a less confident one; the project's ``overlap``, no proposal. With the review setting
    off, every undecided task is blind.
    """
    review: dict[str, Any] = project.review or {}
    params = {
        "project": project.id,
        "ids": id_array(task_ids) if task_ids is not None else None,
        "on": project.review is not None,
        "blind_below": review.get("blind_below", 1.0),
        "review_overlap": review.get("overlap", project.overlap),
        "overlap": project.overlap,
    }
    cur.execute(
        """
        WITH undecided AS (
            SELECT t.id FROM tasks t
            WHERE t.project_id = %(project)s AND t.gold IS NULL AND NOT t.done
              AND t.answers = 0 AND t.taken = 0
              AND (%(ids)s::bigint[] IS NULL OR t.id = ANY (%(ids)s::bigint[]))
            ORDER BY t.id
            FOR UPDATE SKIP LOCKED
        ), decided AS (
            SELECT u.id,
                   CASE WHEN %(on)s AND pr.confidence >= %(blind_below)s THEN pr.label
                   END AS proposal
            FROM undecided u
            LEFT JOIN LATERAL (
                SELECT p.label, p.confidence FROM predictions p
                WHERE p.task_id = u.id ORDER BY p.id DESC LIMIT 1
            ) pr ON true
        )
        UPDATE tasks t SET proposal = d.proposal,
               target = CASE WHEN d.proposal IS NULL THEN %(overlap)s
                             ELSE %(review_overlap)s END
        FROM decided d
        WHERE t.id = d.id AND t.answers = 0 AND t.taken = 0
          AND (t.proposal IS DISTINCT FROM d.proposal
               OR t.target <> CASE WHEN d.proposal IS NULL THEN %(overlap)s
                                   ELSE %(review_overlap)s END)
        """,
        params,
    )
    return int(cur.rowcount)


def leave_lane(cur: Cursor, project: Project) -> None:
    """The review setting was turned off: open tasks still in the review lane become blind
    tasks with the project's overlap (keeping any answers they have)."""
    cur.execute(
        "UPDATE tasks SET proposal = NULL, target = greatest(%s, taken)"
        " WHERE project_id = %s AND proposal IS NOT NULL AND NOT done",
        (project.overlap, project.id),
    )
