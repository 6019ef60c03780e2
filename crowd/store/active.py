"""Active pairwise selection's store side (migration 0019, docs/TYPES.md): after a run of a
pairwise project with ``active`` set, create the next comparisons from the project's items.

:func:`extend` runs in the run's publish transaction (see
:func:`crowd.background.aggregation._typed_run`), so a run's comparisons are created with its
results or not at all. Guarantees:

* never past the budget: ``projects.active_created`` counts the comparisons created so far,
  and a run creates at most ``budget - active_created``;
* at most ``batch`` of the service's comparisons are open (created and short of their
  answers) at once: each run tops them up to ``batch``, so the next comparisons are chosen on
  the newest scores;
* a retried run creates nothing twice: a run whose id some task already carries
  (``tasks.active_run``) creates nothing, its tasks' external ids (``active-<run>-<k>``) are
  unique, and the selection is seeded by the run id.

Runs of one project never overlap (they hold the project's lock), so the counts read here are
not raced by another run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowd.em.active_pairs import ActivePairSelector
from crowd.em.typed import Z90, TypedResult
from crowd.store.db import Cursor, one
from crowd.store.projects import Project
from crowd.store.tasks import NewTask, insert_batch

#: Prior standard deviation of an item no answered comparison has reached (the Bradley-Terry
#: fit's score prior, variance 1: :class:`crowd.em.pairwise.CrowdBradleyTerry`).
UNSEEN_STD = 1.0


def extend(cur: Cursor, run_id: int, project: Project, result: TypedResult) -> int:
    """Create the run's new comparisons (see the module docstring); returns how many."""
    if project.type != "pairwise" or project.active is None or result.items is None:
        return 0
    budget, batch = int(project.active["budget"]), int(project.active["batch"])
    cur.execute("SELECT active_created FROM projects WHERE id = %s FOR UPDATE", (project.id,))
    created = int(one(cur)[0])
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE project_id = %s AND active_run = %s)",
        (project.id, run_id),
    )
    if one(cur)[0]:
        return 0  # this run's comparisons exist: a retry
    cur.execute(
        "SELECT count(*) FROM tasks WHERE project_id = %s AND active_run IS NOT NULL"
        " AND answers < target",
        (project.id,),
    )
    wanted = min(batch - int(one(cur)[0]), budget - created)
    if wanted <= 0:
        return 0
    names, data = _items(cur, project.id)
    if names.size < 2:
        return 0
    scores, std = _posterior(names, result)
    pending = _pending(cur, project.id, names)
    selector = ActivePairSelector(reliability=_reliability(result), seed=run_id)
    left, right = selector.select(scores, std, wanted, pending=pending)
    if left.size == 0:
        return 0
    comparisons = [
        NewTask(
            f"active-{run_id}-{k}",
            {
                "left": {"id": str(names[i]), "data": data[i]},
                "right": {"id": str(names[j]), "data": data[j]},
            },
            None,
        )
        for k, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True), start=1)
    ]
    made = insert_batch(cur, project.id, project.overlap, comparisons, active_run=run_id)
    cur.execute(
        "UPDATE projects SET active_created = active_created + %s WHERE id = %s",
        (made, project.id),
    )
    return made


def _reliability(result: TypedResult) -> float:
    """The crowd's reliability, its workers' fitted ones weighted by their answers (kept
    within (0.5, 1]: a crowd no better than a coin still gets pairs chosen)."""
    answers = result.worker_answers.astype(np.float64)
    if answers.sum() <= 0:
        return 1.0
    mean = float(np.average(result.accuracy, weights=answers))
    return min(max(mean, 0.55), 1.0) if np.isfinite(mean) else 1.0


def _items(cur: Cursor, project_id: int) -> tuple[np.ndarray, list[Any]]:
    """Every item in the project's tasks, sorted by id, with the ``data`` of its first
    appearance (what a new comparison shows of it)."""
    cur.execute(
        """
        SELECT DISTINCT ON (item) item, shown FROM (
            SELECT id, (data -> 'left' ->> 'id') COLLATE "C" AS item,
                   data -> 'left' -> 'data' AS shown
            FROM tasks WHERE project_id = %(p)s
            UNION ALL
            SELECT id, (data -> 'right' ->> 'id') COLLATE "C", data -> 'right' -> 'data'
            FROM tasks WHERE project_id = %(p)s
        ) s ORDER BY item, id
        """,
        {"p": project_id},
    )
    rows = cur.fetchall()
    return np.array([r[0] for r in rows], dtype=object), [r[1] or {} for r in rows]


def _posterior(names: np.ndarray, result: TypedResult) -> tuple[np.ndarray, np.ndarray]:
    """Each item's fitted score and posterior sd (from the run's 90% interval); items no
    answer has reached yet get the prior (score 0, sd :data:`UNSEEN_STD`)."""
    items = result.items
    assert items is not None
    scores = np.zeros(names.size)
    std = np.full(names.size, UNSEEN_STD)
    fitted = np.asarray(items.names, dtype=str)
    where = _lookup(names, fitted)
    found = where >= 0
    scores[where[found]] = items.scores[found]
    std[where[found]] = (items.high[found] - items.low[found]) / (2 * Z90)
    return scores, std


def _lookup(names: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each of ``wanted`` in the sorted ``names`` (-1 when absent)."""
    sorted_names = names.astype(str)
    pos = np.searchsorted(sorted_names, wanted)
    pos = np.minimum(pos, max(sorted_names.size - 1, 0))
    hit = sorted_names[pos] == wanted if sorted_names.size else np.zeros(wanted.size, bool)
    return np.where(hit, pos, -1)


def _pending(cur: Cursor, project_id: int, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The comparisons still waiting for answers (any task short of its target, gold
    aside), as item indices."""
    cur.execute(
        "SELECT data -> 'left' ->> 'id', data -> 'right' ->> 'id' FROM tasks"
        " WHERE project_id = %s AND gold IS NULL AND answers < target",
        (project_id,),
    )
    rows = cur.fetchall()
    left = _lookup(names, np.array([r[0] for r in rows], dtype=str))
    right = _lookup(names, np.array([r[1] for r in rows], dtype=str))
    return left, right
