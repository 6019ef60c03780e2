"""Webhooks and their deliveries: the outbox of events a project's URLs are sent.

:func:`emit` records an event as one ``pending`` delivery row per webhook subscribed to it,
inside the caller's transaction, so an event exists exactly when what it reports committed.
Sending is not done here: after the commit the caller queues the deliveries
(:func:`crowd.background.webhooks.enqueue`), and :func:`crowd.background.webhooks.requeue_lost` picks up any whose
job was lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from crowd.store.db import Cursor, id_array, one
from crowd.store.predictions import NEWEST
from crowd.store.projects import COMPLETE, Project


class Event(StrEnum):
    AGGREGATION_COMPLETED = "aggregation.completed"
    MODEL_TRAINED = "model.trained"
    TASK_COMPLETED = "task.completed"
    REVIEW_CORRECTIONS = "review.corrections"


EVENTS = tuple(e.value for e in Event)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: Most webhooks one project may have.
MAX_PER_PROJECT = 20
#: ``task.completed`` lists at most this many tasks per delivery; a run completing more
#: sends several deliveries (``part`` / ``parts`` in the payload).
TASKS_PER_DELIVERY = 1000


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Webhook:
    id: int
    project_id: int
    url: str
    events: list[str]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "url": self.url,
            "events": list(self.events),
            "created_at": _at(self.created_at),
        }


_HOOK_COLUMNS = "id, project_id, url, events, created_at"


def create(cur: Cursor, project_id: int, url: str, events: list[str], secret: str) -> Webhook:
    cur.execute(
        "INSERT INTO webhooks (project_id, url, events, secret) VALUES (%s, %s, %s, %s)"
        f" RETURNING {_HOOK_COLUMNS}",
        (project_id, url, events, secret),
    )
    return Webhook(*one(cur))


def lock_and_count(cur: Cursor, project_id: int) -> int:
    """How many webhooks the project has; locks the project row so two concurrent creates
    cannot both pass the :data:`MAX_PER_PROJECT` check."""
    cur.execute("SELECT 1 FROM projects WHERE id = %s FOR UPDATE", (project_id,))
    cur.execute("SELECT count(*) FROM webhooks WHERE project_id = %s", (project_id,))
    return int(one(cur)[0])


def get(cur: Cursor, project_id: int, webhook_id: int) -> Webhook | None:
    cur.execute(
        f"SELECT {_HOOK_COLUMNS} FROM webhooks WHERE id = %s AND project_id = %s",
        (webhook_id, project_id),
    )
    row = cur.fetchone()
    return Webhook(*row) if row else None


def page(cur: Cursor, project_id: int, after_id: int, limit: int) -> list[Webhook]:
    """The project's webhooks, by id."""
    cur.execute(
        f"SELECT {_HOOK_COLUMNS} FROM webhooks WHERE project_id = %s AND id > %s"
        " ORDER BY id LIMIT %s",
        (project_id, after_id, limit),
    )
    return [Webhook(*r) for r in cur.fetchall()]


def delete(cur: Cursor, project_id: int, webhook_id: int) -> bool:
    """Delete a webhook with its deliveries (pending ones are then never sent)."""
    cur.execute("DELETE FROM webhooks WHERE id = %s AND project_id = %s", (webhook_id, project_id))
    return cur.rowcount == 1


def emit(cur: Cursor, project_id: int, event: str, payload: dict[str, Any]) -> list[int]:
    """Record ``event`` for every webhook of the project subscribed to it; returns the new
    delivery ids (none when nobody listens). Call inside the transaction that commits what
    the event reports, then queue the ids after the commit (:func:`crowd.background.webhooks.enqueue`).
    ``payload`` becomes the ``data`` of the delivered body and must be JSON-serializable.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; one of {', '.join(EVENTS)}")
    cur.execute(
        "INSERT INTO webhook_deliveries (webhook_id, project_id, event, payload)"
        " SELECT id, project_id, %s, %s::jsonb FROM webhooks"
        " WHERE project_id = %s AND %s = ANY (events) ORDER BY id RETURNING id",
        (event, json.dumps(payload), project_id, event),
    )
    return [row[0] for row in cur.fetchall()]


def listens(cur: Cursor, project_id: int, event: str) -> bool:
    """Whether any webhook of the project is subscribed to ``event``."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE project_id = %s AND %s = ANY (events))",
        (project_id, event),
    )
    return bool(one(cur)[0])


def baseline_completed(cur: Cursor, project_id: int) -> None:
    """Mark the tasks complete now as reported (run 0) and the others as not, before the
    project's first ``task.completed`` webhook: it hears of tasks completing after it exists.
    Only rows whose mark is wrong are written (none, while tracking never stopped)."""
    cur.execute(
        f"""
        UPDATE tasks t SET completed_run_id = CASE WHEN {COMPLETE} THEN 0 END
        FROM projects p
        WHERE p.id = t.project_id AND t.project_id = %s AND t.gold IS NULL
          AND {COMPLETE} <> (t.completed_run_id IS NOT NULL)
        """,
        (project_id,),
    )


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: int
    project_id: int
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": _at(self.created_at),
            "last_attempt_at": _at(self.last_attempt_at),
            "finished_at": _at(self.finished_at),
            "payload": self.payload,
        }


_DELIVERY_COLUMNS = (
    "id, webhook_id, project_id, event, payload, status, attempts, last_status_code,"
    " last_error, created_at, last_attempt_at, finished_at"
)


def deliveries_page(
    cur: Cursor,
    project_id: int,
    webhook_id: int,
    before_id: int,
    limit: int,
    status: str | None = None,
) -> list[Delivery]:
    """A webhook's deliveries, newest first, with ids below ``before_id``."""
    cur.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
        " WHERE project_id = %s AND webhook_id = %s AND id < %s"
        " AND (%s::text IS NULL OR status = %s)"
        " ORDER BY id DESC LIMIT %s",
        (project_id, webhook_id, before_id, status, status, limit),
    )
    return [Delivery(*r) for r in cur.fetchall()]


def pending_target(
    cur: Cursor, project_id: int, delivery_id: int
) -> tuple[Delivery, str, str] | None:
    """``(delivery, url, secret)`` of the project's delivery still to send; None once it
    succeeded, failed for good, or its webhook was deleted."""
    cur.execute(
        f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY_COLUMNS.split(','))},"
        " h.url, h.secret"
        " FROM webhook_deliveries d"
        " JOIN webhooks h ON h.id = d.webhook_id AND h.project_id = d.project_id"
        " WHERE d.id = %s AND d.project_id = %s AND d.status = 'pending'",
        (delivery_id, project_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return Delivery(*row[:-2]), row[-2], row[-1]


def record_attempt(
    cur: Cursor,
    project_id: int,
    delivery_id: int,
    *,
    ok: bool,
    status_code: int | None,
    error: str | None,
    max_attempts: int,
) -> tuple[str, int] | None:
    """Count one attempt; the delivery succeeds when ``ok``, fails for good at
    ``max_attempts``, else stays pending. Returns ``(status, attempts)``, or None when it was
    no longer pending (another attempt finished it, or the webhook was deleted)."""
    cur.execute(
        """
        UPDATE webhook_deliveries SET
            attempts = attempts + 1,
            last_attempt_at = clock_timestamp(),
            last_status_code = %(code)s,
            last_error = %(error)s,
            status = CASE WHEN %(ok)s THEN 'succeeded'
                          WHEN attempts + 1 >= %(max)s THEN 'failed' ELSE 'pending' END,
            finished_at = CASE WHEN %(ok)s OR attempts + 1 >= %(max)s
                               THEN clock_timestamp() END
        WHERE id = %(id)s AND project_id = %(project)s AND status = 'pending'
        RETURNING status, attempts
        """,
        {
            "code": status_code,
            "error": error[:2000] if error else None,
            "ok": ok,
            "max": max_attempts,
            "id": delivery_id,
            "project": project_id,
        },
    )
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def stalled(cur: Cursor, idle_seconds: float, limit: int = 1000) -> list[tuple[int, int]]:
    """``(delivery_id, project_id)`` of the pending deliveries untouched (created or last
    tried) for ``idle_seconds``, of every project: candidates for a lost job, which the
    caller checks against the queue."""
    cur.execute(
        "SELECT id, project_id FROM webhook_deliveries WHERE status = 'pending'"
        " AND coalesce(last_attempt_at, created_at) < now() - make_interval(secs => %s)"
        " ORDER BY id LIMIT %s",
        (idle_seconds, limit),
    )
    return [(row[0], row[1]) for row in cur.fetchall()]


#: Past this many written results, :func:`mark_completed_tasks` looks at every task.
_SCAN_ALL_ABOVE = 20_000


def mark_completed_tasks(
    cur: Cursor, run_id: int, project: Project, changed_task_ids: Sequence[int]
) -> list[tuple[int, str, int, float, str | None, int | None, float | None]]:
    """Tasks run ``run_id`` completed: ``(task_id, external_id, label, confidence,
    prediction model, prediction label, prediction confidence)``, the prediction being the
    task's newest (all None without one).

    A task counts once it is complete (:data:`~crowd.store.projects.COMPLETE`) and its
    published result covers every answer it has (a banned worker's answers, left out of the
    aggregation, excepted), so the label reported is the final one. ``tasks.completed_run_id``
    remembers the report; a task found open again is cleared, and reported again when it
    completes again. Call only while the project has a ``task.completed`` webhook (see
    :func:`baseline_completed`): the marks are kept only then. Only the tasks whose result the run wrote (``changed_task_ids``: a task
    completing by answers or reopening by dynamic overlap has a changed result) and closed
    tasks not yet reported (a settings change can close tasks whose result is unchanged) are
    looked at, so the cost follows the run's changes, not the project's size (a run that
    wrote most results looks at every task in one pass). Call after the
    run's results and overlap decisions are written, in the same transaction.
    """
    candidates = (
        ""  # most of the project: one pass over it is cheaper than 100,000s of lookups
        if len(changed_task_ids) > _SCAN_ALL_ABOVE
        else """AND t.id IN (SELECT unnest(%(ids)s::bigint[])
                         UNION ALL
                         SELECT id FROM tasks WHERE project_id = %(project)s AND done
                             AND completed_run_id IS NULL AND gold IS NULL
                             -- auto-labelled tasks have no crowd result to report
                             AND NOT auto_labelled)"""
    )
    cur.execute(
        f"""
        SELECT t.id, t.external_id, r.label, r.confidence, pr.model, pr.label, pr.confidence,
               t.completed_run_id IS NOT NULL,
               CASE WHEN NOT {COMPLETE} THEN false
                    WHEN r.answers >= t.answers THEN true
                    WHEN NOT p.exclude_banned THEN false
                    ELSE r.answers >= t.answers - (
                        SELECT count(*) FROM assignments a
                        JOIN project_workers pw ON pw.project_id = a.project_id
                             AND pw.worker_id = a.worker_id AND pw.status = 'banned'
                        WHERE a.task_id = t.id AND a.project_id = t.project_id
                          AND a.status = 'answered')
               END
        FROM tasks t
        JOIN projects p ON p.id = t.project_id
        JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
        {NEWEST}
        WHERE t.project_id = %(project)s AND t.gold IS NULL {candidates}
        """,
        {"project": project.id, "ids": id_array(changed_task_ids)},
    )
    flips = [row for row in cur.fetchall() if row[7] != row[8]]
    completed = sorted(row[:7] for row in flips if row[8])
    reopened = [row[0] for row in flips if not row[8]]
    for ids, value in (([c[0] for c in completed], run_id), (reopened, None)):
        if ids:
            cur.execute(
                "UPDATE tasks SET completed_run_id = %s"
                " WHERE project_id = %s AND id = ANY (%s::bigint[])",
                (value, project.id, id_array(ids)),
            )
    return completed
