"""Projects: a label set, an overlap (answers per task) and a reservation lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

from crowd.store.db import Cursor, one

_COLUMNS = (
    "id, owner_id, name, labels, overlap, lease_seconds, created_at, max_overlap,"
    " confidence_target, gold_rate, gold_window, qc_min_answers, qc_min_accuracy,"
    " qc_min_gold_accuracy, qc_min_gold_answers, exclude_banned, method, last_run_id,"
    # Models (migration 0003); "order" is a reserved word, so always quoted.
    ' model, retrain_every, "order", random_share, auto_label_accuracy,'
    # Quality rules' evidence (migration 0008).
    " qc_confidence,"
    # Predictions (migration 0010)
    " corrections_every,"
    # The review lane (migration 0013), traps (0014)
    " review, qc_min_trap_catch,"
    # Project types (migration 0016)
    " type, scale, ties,"
    # Active pairwise selection (migration 0019)
    " active"
)

#: Settings a requester may set at creation and change later (PATCH), with their columns.
SETTINGS = (
    "name",
    "overlap",
    "lease_seconds",
    "max_overlap",
    "confidence_target",
    "gold_rate",
    "gold_window",
    "qc_min_answers",
    "qc_min_accuracy",
    "qc_min_gold_accuracy",
    "qc_min_gold_answers",
    "exclude_banned",
    "method",
    # Models (see crowd/background/training.py)
    "model",
    "retrain_every",
    "order",
    "random_share",
    "auto_label_accuracy",
    # Quality rules' evidence (see crowd/em/quality.py)
    "qc_confidence",
    # Predictions (see crowd/store/predictions.py)
    "corrections_every",
    # The review lane (see crowd/store/review.py) and its traps' quality rule
    "review",
    "qc_min_trap_catch",
    # Active pairwise selection (see crowd/store/active.py)
    "active",
)

#: Set at creation only: what an answer is (see docs/TYPES.md).
TYPE_SETTINGS = ("type", "scale", "ties")

#: Largest task target: gold tasks take any number of answers.
UNLIMITED = 2**31 - 1


@dataclass(frozen=True)
class Project:
    id: int
    owner_id: int
    name: str
    labels: list[str]
    overlap: int
    lease_seconds: int
    created_at: datetime
    max_overlap: int | None = None
    confidence_target: float | None = None
    gold_rate: float = 0.1
    gold_window: int = 20
    qc_min_answers: int = 20
    qc_min_accuracy: float | None = None
    qc_min_gold_accuracy: float | None = None
    qc_min_gold_answers: int = 5
    exclude_banned: bool = True
    method: str = "auto"
    last_run_id: int | None = None
    #: ``{"input": "text" | "features", "field": key}``, or None: no model.
    model: dict[str, Any] | None = None
    retrain_every: int = 200
    order: str = "fifo"
    random_share: float = 0.1
    auto_label_accuracy: float | None = None
    qc_confidence: float = 0.95
    corrections_every: int = 100
    #: The review lane's settings (:class:`crowd.api.schemas.ReviewSettings` as a dict), or
    #: None: off, every task is labelled blind.
    review: dict[str, Any] | None = None
    qc_min_trap_catch: float | None = None
    #: What an answer is: categorical, multilabel, numeric or pairwise (docs/TYPES.md).
    type: str = "categorical"
    #: numeric: ``{"min", "max", "step"}`` (step may be None).
    scale: dict[str, Any] | None = None
    #: pairwise: whether "tie" is an answer.
    ties: bool = False
    #: pairwise: ``{"budget", "batch"}`` when the service creates comparisons itself
    #: (:class:`crowd.api.schemas.ActiveSettings` as a dict), or None.
    active: dict[str, Any] | None = None
    #: Whether the project had gold tasks when read (only :func:`get` fills it in).
    has_gold: bool = False

    @property
    def dynamic(self) -> bool:
        """Whether dynamic overlap is on (a confidence target is set)."""
        return self.confidence_target is not None

    @property
    def overlap_cap(self) -> int:
        """The most answers a non-gold task can get."""
        return max(self.overlap, self.max_overlap or self.overlap)

    def label_index(self, label: str) -> int | None:
        try:
            return self.labels.index(label)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "labels": list(self.labels),
            "overlap": self.overlap,
            "lease_seconds": self.lease_seconds,
            "max_overlap": self.overlap_cap,
            "confidence_target": self.confidence_target,
            "gold_rate": self.gold_rate,
            "gold_window": self.gold_window,
            "qc_min_answers": self.qc_min_answers,
            "qc_min_accuracy": self.qc_min_accuracy,
            "qc_min_gold_accuracy": self.qc_min_gold_accuracy,
            "qc_min_gold_answers": self.qc_min_gold_answers,
            "qc_confidence": self.qc_confidence,
            "exclude_banned": self.exclude_banned,
            "method": self.method,
            "last_run_id": self.last_run_id,
            "model": self.model,
            "retrain_every": self.retrain_every,
            "order": self.order,
            "random_share": self.random_share,
            "auto_label_accuracy": self.auto_label_accuracy,
            "corrections_every": self.corrections_every,
            "review": self.review,
            "qc_min_trap_catch": self.qc_min_trap_catch,
            "type": self.type,
            "scale": self.scale,
            "ties": self.ties,
            "active": self.active,
            "owner_id": self.owner_id,
            "created_at": self.created_at.isoformat(),
        }


def _row(row: tuple[Any, ...]) -> Project:
    return Project(row[0], row[1], row[2], list(row[3]), *row[4:])


def _quoted(name: str) -> str:
    """A setting's column in SQL (``order`` is a reserved word)."""
    return f'"{name}"'


def _value(value: Any) -> Any:
    """A setting's value as a query parameter: objects (``model``) go to jsonb."""
    return Json(value) if isinstance(value, dict) else value


def create(cur: Cursor, owner_id: int, labels: list[str], settings: dict[str, Any]) -> Project:
    """Insert a project; ``settings`` holds any of :data:`SETTINGS` and
    :data:`TYPE_SETTINGS` (the rest take defaults)."""
    unknown = set(settings) - set(SETTINGS) - set(TYPE_SETTINGS)
    assert not unknown, unknown
    names = ["owner_id", "labels", *settings]
    cur.execute(
        f"INSERT INTO projects ({', '.join(_quoted(n) for n in names)})"
        f" VALUES ({', '.join(['%s'] * len(names))}) RETURNING {_COLUMNS}",
        (owner_id, labels, *(_value(v) for v in settings.values())),
    )
    return _row(one(cur))


def update(cur: Cursor, project_id: int, changes: dict[str, Any]) -> Project | None:
    """Change settings (keys from :data:`SETTINGS`). Tasks' targets follow a new ``overlap``:
    a task with fewer answers than the new minimum gets the slots it now lacks."""
    unknown = set(changes) - set(SETTINGS)
    assert not unknown, unknown
    if not changes:
        return get(cur, project_id)
    sets = ", ".join(f"{_quoted(name)} = %s" for name in changes)
    cur.execute(
        f"UPDATE projects SET {sets} WHERE id = %s RETURNING {_COLUMNS}",
        (*(_value(v) for v in changes.values()), project_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    project = _row(row)
    if "overlap" in changes:
        cur.execute(
            "UPDATE tasks SET target = greatest(%s, taken), done = false"
            " WHERE project_id = %s AND gold IS NULL AND target < %s AND NOT done"
            # Review-lane tasks take the review setting's overlap (crowd/store/review.py).
            " AND proposal IS NULL",
            (project.overlap, project_id, project.overlap),
        )
    return project


def last_run_id(cur: Cursor, project_id: int) -> int | None:
    """The newest published aggregation run (not cached: it changes with every run)."""
    cur.execute("SELECT last_run_id FROM projects WHERE id = %s", (project_id,))
    row = cur.fetchone()
    return row[0] if row else None


def get(cur: Cursor, project_id: int) -> Project | None:
    cur.execute(
        f"SELECT {_COLUMNS}, EXISTS (SELECT 1 FROM tasks t WHERE t.project_id = projects.id"
        " AND t.gold IS NOT NULL) FROM projects WHERE id = %s",
        (project_id,),
    )
    row = cur.fetchone()
    return _row(row) if row else None


def list_for(cur: Cursor, owner_id: int | None, after_id: int, limit: int) -> list[Project]:
    """Projects owned by ``owner_id`` (every project when None), by id."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM projects"
        " WHERE (%s::bigint IS NULL OR owner_id = %s) AND id > %s ORDER BY id LIMIT %s",
        (owner_id, owner_id, after_id, limit),
    )
    return [_row(r) for r in cur.fetchall()]


def answer_count(cur: Cursor, project_id: int) -> int:
    """The project's stored answers, from its counter rows (see :func:`counts`)."""
    cur.execute(
        "SELECT coalesce(sum(answers), 0) FROM project_counts WHERE project_id = %s",
        (project_id,),
    )
    return int(one(cur)[0])


def counts(cur: Cursor, project_id: int) -> dict[str, int]:
    """Progress figures: tasks (gold ones counted apart), stored answers, complete tasks (see
    :data:`COMPLETE`), live reservations.

    None of them counts the project's tasks: the first four are sums of the counter rows of
    ``project_counts`` (migration 0009: kept by triggers on ``tasks`` in the transactions that
    change them, a few rows per project whatever its size), the reservations are the live
    ones in the ``assignments_live`` index (as many as workers hold tasks right now).
    """
    cur.execute(
        """
        SELECT coalesce(sum(c.tasks), 0), coalesce(sum(c.gold_tasks), 0),
               coalesce(sum(c.answers), 0),
               coalesce(sum(c.done), 0) + coalesce(sum(c."full") FILTER (
                   WHERE p.confidence_target IS NULL
                      OR c.target >= greatest(p.overlap, coalesce(p.max_overlap, p.overlap))), 0),
               (SELECT count(*) FROM assignments a
                WHERE a.project_id = p.id AND a.status = 'reserved')
        FROM projects p LEFT JOIN project_counts c ON c.project_id = p.id
        WHERE p.id = %s GROUP BY p.id
        """,
        (project_id,),
    )
    tasks, gold, answers, complete, reserved = one(cur)
    return {
        "tasks": int(tasks),
        "gold_tasks": int(gold),
        "answers": int(answers),
        "tasks_complete": int(complete),
        "reservations": int(reserved),
    }


#: SQL for "this task needs no more answers" over ``tasks t JOIN projects p``: closed by dynamic
#: overlap, or all its slots answered and no more to come (fixed overlap, or at max_overlap;
#: a review-lane task's cap is ``review.max_overlap``).
COMPLETE = (
    "(t.done OR (t.answers >= t.target AND (p.confidence_target IS NULL"
    " OR t.target >= CASE WHEN t.proposal IS NOT NULL AND p.review IS NOT NULL"
    " THEN (p.review ->> 'max_overlap')::int"
    " ELSE greatest(p.overlap, coalesce(p.max_overlap, p.overlap)) END)))"
)
