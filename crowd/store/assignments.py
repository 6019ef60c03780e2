"""Reservations and answers: the concurrency core.

Invariants, enforced here and by the schema:

* ``tasks.taken`` counts a task's answers plus its live reservations and never exceeds
  ``tasks.target``, so no task gets more than ``target`` distinct workers.
* ``UNIQUE (task_id, worker_id, project_id)``: a worker sees a task at most once (answered,
  skipped, held or expired), so no worker answers a task twice. A task belongs to one project
  (the foreign key to ``tasks (project_id, id)``), so ``project_id`` narrows nothing; it is in
  the key so the table can be distributed by project (migration 0020).
* An answer is a state change of its assignment row, inside one transaction with the task's
  counter: an acknowledged answer is stored exactly once, and a retry finds it already there.
  The row records the answering transaction (``answered_xid``), which incremental runs read
  by (see :mod:`crowd.store.answer_state`).

Fetching locks one candidate task row with ``FOR UPDATE SKIP LOCKED``: concurrent workers
take different tasks instead of queueing behind one row lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from crowd.store.db import Cursor, execute_prepared


@dataclass(frozen=True)
class Reservation:
    assignment_id: int
    task_id: int
    external_id: str
    data: dict[str, Any]
    expires_at: datetime
    #: The label shown as a model's proposal (an index into the project's labels): the
    #: assignment is in the review lane. None: blind, and nothing of a proposal is sent.
    proposal: int | None = None

    def to_json(self, labels: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "assignment_id": self.assignment_id,
            "task": {"id": self.task_id, "external_id": self.external_id, "data": self.data},
            "expires_at": self.expires_at.isoformat(),
            "lane": "blind" if self.proposal is None else "review",
        }
        if self.proposal is not None:
            out["proposal"] = {"label": labels[self.proposal]}
        return out


def _release(cur: Cursor, condition: str, params: tuple[Any, ...]) -> int:
    """Mark the live reservations matching ``condition`` ``expired`` and give their tasks'
    slots back; returns how many tasks got slots back.

    Rows another transaction holds are skipped (it is answering or releasing them itself),
    so concurrent releases never wait on each other.
    """
    cur.execute(
        f"""
        WITH stale AS (
            SELECT id, project_id FROM assignments
            WHERE status = 'reserved' AND {condition}
            FOR UPDATE SKIP LOCKED
        ), gone AS (
            UPDATE assignments a SET status = 'expired' FROM stale
            WHERE a.id = stale.id AND a.project_id = stale.project_id
            RETURNING a.task_id, a.project_id
        ), per_task AS (
            SELECT task_id, project_id, count(*) AS n FROM gone GROUP BY task_id, project_id
        )
        UPDATE tasks t SET taken = t.taken - per_task.n FROM per_task
        WHERE t.id = per_task.task_id AND t.project_id = per_task.project_id
        """,
        params,
    )
    return int(cur.rowcount)


def release_expired(cur: Cursor, project_id: int) -> int:
    """Release the project's reservations whose lease has run out (see :func:`_release`)."""
    return _release(cur, "project_id = %s AND expires_at < now()", (project_id,))


def release_held_by(cur: Cursor, project_id: int, worker_ids: list[int]) -> int:
    """Release the live reservations of ``worker_ids`` in the project (banned workers)."""
    return _release(cur, "project_id = %s AND worker_id = ANY(%s)", (project_id, worker_ids))


_NOT_BANNED = """
              AND NOT EXISTS (
                  SELECT 1 FROM project_workers pw WHERE pw.project_id = $1::bigint
                    AND pw.worker_id = $2::bigint AND pw.status = 'banned')"""

# A regular task the worker could still be given (the regular fetch's condition, unordered).
_REGULAR_LEFT = """
              AND EXISTS (
                  SELECT 1 FROM tasks o
                  WHERE o.project_id = $1::bigint AND o.taken < o.target AND NOT o.done
                    AND o.gold IS NULL
                    AND NOT EXISTS (SELECT 1 FROM assignments s
                                    WHERE s.task_id = o.id AND s.worker_id = $2::bigint
                                      AND s.project_id = $1::bigint))"""

_RESERVE = """
        WITH pick AS (
            SELECT t.id, t.external_id, t.data, {proposal} AS proposal FROM tasks t
            WHERE t.project_id = $1::bigint AND {where}
              AND NOT EXISTS (
                  SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $2::bigint
                    AND a.project_id = $1::bigint)
              {not_banned}
            ORDER BY {order}
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ), ins AS (
            INSERT INTO assignments (project_id, task_id, worker_id, status, expires_at,
                                     proposal)
            SELECT $1::bigint, pick.id, $2::bigint, 'reserved',
                   now() + make_interval(secs => $3::double precision), pick.proposal
            FROM pick
            ON CONFLICT (task_id, worker_id, project_id) DO NOTHING
            RETURNING id, task_id, expires_at, proposal
        ), bump AS (
            UPDATE tasks t SET taken = t.taken + 1 FROM ins
            WHERE t.id = ins.task_id AND t.project_id = $1::bigint
        )
        SELECT ins.id, pick.id, pick.external_id, pick.data, ins.expires_at, ins.proposal
        FROM ins JOIN pick ON pick.id = ins.task_id
        """


def reserve(
    cur: Cursor,
    project_id: int,
    worker_id: int,
    lease_seconds: int,
    *,
    gold: bool = False,
    by: str = "fifo",
    trap_labels: int | None = None,
) -> Reservation | None:
    """Reserve the next task for ``worker_id``; None when none is available right now (or the
    worker is banned from the project: see :func:`crowd.store.quality.ban_reason`).

    Order: tasks that already have answers first (so results finish rather than scatter), then
    creation order. Tasks the worker has seen in any way are excluded, and so are gold tasks
    and tasks closed by dynamic overlap. With ``gold=True`` it reserves a gold (control) task
    instead, the least answered first, and only while a regular task is left for the worker.
    ``by="uncertainty"`` takes the open task whose model margin is lowest (no prediction yet
    counts as lowest), then creation order; ``by="random"``
    a uniformly random open task (None when the draw lands past the last one: retry another
    way). Each order reads one partial index (tasks_open, tasks_uncertain, tasks_random), so
    no fetch sorts the project's tasks. The task row is locked with SKIP LOCKED, the
    assignment inserted, and only then is the task's slot taken, so the rare race of one
    worker fetching twice at once yields None instead of an error (callers retry), and never a
    slot taken without its assignment.

    ``trap_labels`` (with ``gold=True``): a trap for the review lane, the gold task shown with
    a proposal drawn uniformly from the project's ``trap_labels`` labels other than its gold
    label (recorded on the assignment like any proposal).
    """
    proposal = "t.proposal"
    params: tuple[int, ...] = (project_id, worker_id, lease_seconds)
    if gold:
        # Gold is mixed into regular work, never served on its own: a worker with no regular
        # task left is done (204, "next": null) whatever the gold draw, so that a fetch after
        # "next": null is a 204 too, and "done" means what with_work_for says.
        name, order = "crowd_reserve_gold", "t.answers, t.id"
        where = "t.gold IS NOT NULL" + _REGULAR_LEFT
        if trap_labels is not None:
            name, params = "crowd_reserve_trap", (*params, trap_labels)
            proposal = "((t.gold + 1 + floor(random() * ($4::int - 1)))::int % $4::int)::smallint"
    else:
        where = "t.taken < t.target AND NOT t.done AND t.gold IS NULL"
        name, order = "crowd_reserve", "t.answers DESC, t.id"
        if by == "uncertainty":
            name, order = "crowd_reserve_uncertain", "t.model_margin NULLS FIRST, t.id"
        elif by == "random":
            # A uniform draw: the first open task at or after a random point of `rand`
            # (an InitPlan, drawn once per statement), read off the tasks_random index.
            name, order = "crowd_reserve_random", "t.rand"
            where += " AND t.rand >= (SELECT random())"
    execute_prepared(
        cur,
        name,
        # A task's lane is on its row (see crowd.store.review); gold tasks have none.
        _RESERVE.format(where=where, order=order, not_banned=_NOT_BANNED, proposal=proposal),
        params,
    )
    row = cur.fetchone()
    return Reservation(*row) if row else None


def traps_answered(cur: Cursor, project_id: int, worker_id: int, up_to: int) -> int:
    """The traps (gold tasks served with a wrong proposal) the worker has answered in the
    project, counted up to ``up_to``: stops at that many, reading the worker's review answers
    through ``assignments_reviewed``."""
    cur.execute(
        "SELECT count(*) FROM (SELECT 1 FROM assignments a"
        " JOIN tasks t ON t.id = a.task_id AND t.project_id = a.project_id"
        " WHERE a.project_id = %s AND a.worker_id = %s AND a.proposal IS NOT NULL"
        " AND a.status = 'answered' AND t.gold IS NOT NULL AND a.proposal <> t.gold"
        " LIMIT %s) s",
        (project_id, worker_id, up_to),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def held_by(cur: Cursor, project_id: int, worker_id: int) -> Reservation | None:
    """The worker's newest live reservation in the project, if it holds one."""
    cur.execute(
        """
        SELECT a.id, t.id, t.external_id, t.data, a.expires_at, a.proposal
        FROM assignments a JOIN tasks t ON t.id = a.task_id AND t.project_id = a.project_id
        WHERE a.project_id = %s AND a.worker_id = %s AND a.status = 'reserved'
          AND a.expires_at > now()
        ORDER BY a.id DESC LIMIT 1
        """,
        (project_id, worker_id),
    )
    row = cur.fetchone()
    return Reservation(*row) if row else None


def with_work_for(cur: Cursor, worker_id: int, project_ids: list[int]) -> set[int]:
    """The projects among ``project_ids`` where a fetch would now find the worker a regular
    task: one not done and not seen by the worker, with a free slot or a slot held by an
    expired reservation (a fetch reclaims those first). Bans are not checked here."""
    if not project_ids:
        return set()
    cur.execute(
        """
        SELECT p.id FROM unnest(%(ids)s::bigint[]) AS p (id)
        WHERE EXISTS (
                SELECT 1 FROM tasks t
                WHERE t.project_id = p.id AND t.taken < t.target AND NOT t.done
                  AND t.gold IS NULL
                  AND NOT EXISTS (SELECT 1 FROM assignments a
                                  WHERE a.task_id = t.id AND a.worker_id = %(worker)s
                                    AND a.project_id = p.id))
           OR EXISTS (
                SELECT 1 FROM assignments r
                JOIN tasks t ON t.id = r.task_id AND t.project_id = r.project_id
                WHERE r.project_id = p.id AND r.status = 'reserved' AND r.expires_at < now()
                  AND NOT t.done AND t.gold IS NULL
                  AND NOT EXISTS (SELECT 1 FROM assignments a
                                  WHERE a.task_id = t.id AND a.worker_id = %(worker)s
                                    AND a.project_id = p.id))
        """,
        {"ids": project_ids, "worker": worker_id},
    )
    return {int(r[0]) for r in cur.fetchall()}


class Outcome(StrEnum):
    """What happened to an answer or skip request; the API maps each to a status code."""

    CREATED = "created"  # the answer is stored now
    REPEATED = "repeated"  # the same answer was already stored: a retry, not a second answer
    SKIPPED = "skipped"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    DIFFERENT_ANSWER = "different_answer"
    ALREADY_SKIPPED = "already_skipped"
    ALREADY_ANSWERED = "already_answered"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Held:
    """An assignment row locked for update, with what the caller needs to decide."""

    id: int
    project_id: int
    task_id: int
    worker_id: int
    status: str
    label: int | None
    expires_at: datetime
    expired: bool
    proposal: int | None = None  # the label shown as a model's proposal (review lane)
    value: float | None = None  # a numeric answer (migration 0016)
    label_set: list[int] | None = None  # a multilabel answer


def lock(cur: Cursor, assignment_id: int) -> Held | None:
    execute_prepared(
        cur,
        "crowd_lock",
        "SELECT id, project_id, task_id, worker_id, status, label, expires_at,"
        " expires_at <= now(), proposal, value, label_set FROM assignments"
        " WHERE id = $1::bigint FOR UPDATE",
        (assignment_id,),
    )
    row = cur.fetchone()
    return Held(*row) if row else None


def _give_back(cur: Cursor, held: Held, status: str) -> None:
    """Mark a locked reservation ``status`` (expired or skipped) and free its task's slot."""
    cur.execute(
        "UPDATE assignments SET status = %s WHERE id = %s AND project_id = %s",
        (status, held.id, held.project_id),
    )
    cur.execute(
        "UPDATE tasks SET taken = taken - 1 WHERE id = %s AND project_id = %s",
        (held.task_id, held.project_id),
    )


def _check_open(cur: Cursor, held: Held | None, worker_id: int) -> Outcome | None:
    if held is None:
        return Outcome.NOT_FOUND
    if held.worker_id != worker_id:
        return Outcome.NOT_YOURS
    if held.status == "skipped":
        return Outcome.ALREADY_SKIPPED
    if held.status == "expired":
        return Outcome.EXPIRED
    if held.status == "reserved" and held.expired:
        _give_back(cur, held, "expired")  # committed with the 409, so the slot goes back at once
        return Outcome.EXPIRED
    return None


def answer(
    cur: Cursor, held: Held | None, worker_id: int, label: int, review_cap: int | None = None
) -> Outcome:
    """Store ``label`` as the answer of a locked assignment (see :func:`lock`).

    An answer that corrects the proposal shown (review lane) opens one more slot on its task,
    up to ``review_cap`` (the review setting's ``max_overlap``), in the same transaction."""
    early = _check_open(cur, held, worker_id)
    if early is not None:
        return early
    assert held is not None
    if held.status == "answered":
        return Outcome.REPEATED if held.label == label else Outcome.DIFFERENT_ANSWER
    execute_prepared(
        cur,
        "crowd_answer",
        "WITH a AS (UPDATE assignments SET status = 'answered', label = $1::smallint,"
        " answered_at = now(), answered_xid = pg_current_xact_id()"
        " WHERE id = $2::bigint AND project_id = $4::bigint)"
        " UPDATE tasks SET answers = answers + 1 WHERE id = $3::bigint AND project_id = $4::bigint",
        (label, held.id, held.task_id, held.project_id),
    )
    if held.proposal is not None and label != held.proposal and review_cap is not None:
        # Gold tasks (traps) take any number of answers already.
        cur.execute(
            "UPDATE tasks SET target = target + 1 WHERE id = %s AND project_id = %s"
            " AND gold IS NULL AND NOT done AND target < %s",
            (held.task_id, held.project_id, review_cap),
        )
    return Outcome.CREATED


def answer_typed(
    cur: Cursor,
    held: Held | None,
    worker_id: int,
    label: int,
    value: float | None,
    label_set: list[int] | None,
) -> Outcome:
    """:func:`answer` for a typed project (migration 0016): the answer is ``label`` with a
    numeric ``value`` or a multilabel ``label_set``; the same answer again is a retry."""
    early = _check_open(cur, held, worker_id)
    if early is not None:
        return early
    assert held is not None
    if held.status == "answered":
        same = (held.label, held.value, held.label_set) == (label, value, label_set)
        return Outcome.REPEATED if same else Outcome.DIFFERENT_ANSWER
    execute_prepared(
        cur,
        "crowd_answer_typed",
        "WITH a AS (UPDATE assignments SET status = 'answered', label = $1::smallint,"
        " value = $4::float8, label_set = $5::smallint[], answered_at = now()"
        " WHERE id = $2::bigint AND project_id = $6::bigint)"
        " UPDATE tasks SET answers = answers + 1 WHERE id = $3::bigint AND project_id = $6::bigint",
        (label, held.id, held.task_id, value, label_set, held.project_id),
    )
    return Outcome.CREATED


def skip(cur: Cursor, held: Held | None, worker_id: int) -> Outcome:
    """Give a locked reservation back so that other workers get the task."""
    if held is not None and held.worker_id == worker_id and held.status == "skipped":
        return Outcome.SKIPPED  # a retried skip
    early = _check_open(cur, held, worker_id)
    if early is not None:
        return early
    assert held is not None
    if held.status == "answered":
        return Outcome.ALREADY_ANSWERED
    _give_back(cur, held, "skipped")
    return Outcome.SKIPPED
