"""The worker's loop: fetch a task, then answer or skip it."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2.errors
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency, typed
from crowd.api.schemas import ONBOARDING_TRAPS, AnswerIn
from crowd.errors import Conflict, Forbidden, Invalid, NotFound
from crowd.store import assignments, quality
from crowd.store.accounts import Role
from crowd.store.assignments import Outcome, Reservation
from crowd.store.db import Cursor
from crowd.store.projects import Project

bp = Blueprint("assignments", __name__, url_prefix="/api/v1")

# Expired reservations are swept at most this often per project and process, and always when a
# fetch finds nothing, so a worker never waits on a dead reservation for long.
_SWEEP_EVERY = 1.0
_last_sweep: dict[int, float] = {}
_sweep_lock = threading.Lock()


def _sweep_due(project_id: int) -> bool:
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(project_id, 0.0) < _SWEEP_EVERY:
            return False
        _last_sweep[project_id] = now
        return True


def _project_for_worker(project_id: int) -> Project:
    project = auth.cached_project(project_id)
    if project is None or not auth.can_work_on(auth.current(), project):
        raise NotFound(f"no project {project_id} open to this worker; ask the requester for its id")
    return project


def _sweep(project: Project, *, force: bool = False) -> None:
    """Reclaim the project's expired reservations, in a transaction of its own.

    Never inside a request's own transaction: the sweep updates other tasks' rows, and doing
    that while holding the row of the task just answered could deadlock with another worker
    doing the same the other way round.
    """
    if force or _sweep_due(project.id):
        try:
            with deps.db().transaction() as cur:
                assignments.release_expired(cur, project.id)
        except psycopg2.errors.DeadlockDetected:
            # An aggregation run publishing overlap decisions locked the same task rows in
            # another order. The sweep is opportunistic: the next one reclaims them.
            pass


def _trap_drawn(cur: Cursor, project: Project, worker_id: int) -> bool:
    """Whether this fetch tries a trap: with probability ``review.trap_rate``, or
    ``review.onboarding_trap_rate`` while the worker has answered fewer than
    ``review.onboarding_traps`` traps in the project (every reviewer meets that many traps
    early, so a stamper is judged within its first answers; an established reviewer pays only
    ``trap_rate``). The worker's traps are counted only when the draw falls between the two
    rates."""
    review = project.review or {}
    rate = float(review["trap_rate"])
    onboarding = review.get("onboarding_trap_rate")
    draw = random.random()
    if draw < rate:
        return True
    if onboarding is None or draw >= onboarding:
        return False
    first = int(review.get("onboarding_traps", ONBOARDING_TRAPS))
    return assignments.traps_answered(cur, project.id, worker_id, first) < first


def _reserve(cur: Cursor, project: Project, worker_id: int) -> Reservation | None:
    """The worker's next task: a gold (control) task with probability ``gold_rate`` when the
    project has one this worker has not seen, otherwise the next regular task (in the
    project's ``order``: see :func:`crowd.store.assignments.reserve`). (Whether the
    project has gold tasks comes from the project cache: gold posted through another API
    process is mixed in within its few seconds.)

    With the review lane on, a ``review.trap_rate`` share of fetches (a new reviewer's:
    ``review.onboarding_trap_rate``; :func:`_trap_drawn`) first try a trap: a gold task shown
    with a wrong proposal (see :func:`crowd.store.assignments.reserve`)."""
    review = project.review
    if review is not None and project.has_gold and _trap_drawn(cur, project, worker_id):
        trap = assignments.reserve(
            cur, project.id, worker_id, project.lease_seconds, gold=True,
            trap_labels=len(project.labels),
        )  # fmt: skip
        if trap is not None:
            return trap
    if project.has_gold and project.gold_rate > 0 and random.random() < project.gold_rate:
        gold = assignments.reserve(cur, project.id, worker_id, project.lease_seconds, gold=True)
        if gold is not None:
            return gold
    if project.order == "uncertainty" and project.model is not None:
        # A random share keeps the training data a fair sample, not only the model's doubts.
        if random.random() < project.random_share:
            drawn = assignments.reserve(
                cur, project.id, worker_id, project.lease_seconds, by="random"
            )
            if drawn is not None:
                return drawn
        return assignments.reserve(
            cur, project.id, worker_id, project.lease_seconds, by="uncertainty"
        )
    return assignments.reserve(cur, project.id, worker_id, project.lease_seconds)


def _refuse_if_banned(project: Project, worker_id: int) -> None:
    with deps.db().transaction() as cur:
        reason = quality.ban_reason(cur, project.id, worker_id)
    if reason is not None:
        raise Forbidden(
            f"you are banned from project {project.id}: {reason}; the requester can lift the ban",
            code="banned",
        )


def _reserve_after_sweep(
    project: Project,
    worker_id: int,
    record: Callable[[Cursor, Reservation], None] | None = None,
) -> Reservation | None:
    """Nothing was free (or, rarely, this worker raced itself for one task): reclaim expired
    reservations now and try once more. ``record`` stores the response of a reservation made
    here, in its transaction (see :mod:`crowd.api.idempotency`)."""
    _sweep(project, force=True)
    with deps.db().transaction() as cur:
        reservation = _reserve(cur, project, worker_id)
        if reservation is not None and record is not None:
            record(cur, reservation)
        return reservation


def _fetch_recorder(project: Project) -> Callable[[Cursor, Reservation], None]:
    def record(cur: Cursor, reservation: Reservation) -> None:
        if idempotency.keyed():  # the hot path builds no response to store without a key
            idempotency.record(cur, 201, reservation.to_json(project.labels))

    return record


@bp.post("/projects/<int:project_id>/assignments")
@auth.require(Role.WORKER)
@idempotency.idempotent()
def fetch(project_id: int) -> ResponseReturnValue:
    project = _project_for_worker(project_id)
    worker_id = auth.current().id
    _sweep(project)
    with idempotency.transaction() as cur:
        reservation = _reserve(cur, project, worker_id)
        if reservation is not None:
            _fetch_recorder(project)(cur, reservation)
    if reservation is None:
        reservation = _reserve_after_sweep(project, worker_id, _fetch_recorder(project))
    if reservation is None:
        _refuse_if_banned(project, worker_id)
        return Response(status=204)
    return jsonify(reservation.to_json(project.labels)), 201


_ERRORS = {
    Outcome.NOT_FOUND: (
        NotFound,
        "no assignment {id}; fetch one with POST /api/v1/projects/{{id}}/assignments",
    ),
    Outcome.NOT_YOURS: (Forbidden, "assignment {id} belongs to another worker; answer your own"),
    Outcome.DIFFERENT_ANSWER: (
        Conflict,
        "assignment {id} already has a different answer; an answer cannot be changed",
    ),
    Outcome.ALREADY_SKIPPED: (Conflict, "assignment {id} was skipped; fetch a new task"),
    Outcome.ALREADY_ANSWERED: (
        Conflict,
        "assignment {id} is answered; it can no longer be skipped",
    ),
    Outcome.EXPIRED: (
        Conflict,
        "the reservation of assignment {id} expired; fetch a new task and answer within its lease",
    ),
}


def _raise_for(outcome: Outcome, assignment_id: int) -> None:
    if outcome in _ERRORS:
        cls, message = _ERRORS[outcome]
        raise cls(message.format(id=assignment_id), code=outcome.value)


def _ack(
    assignment_id: int,
    spec: AnswerIn,
    outcome: Outcome,
    following: Reservation | None,
    labels: Sequence[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {"assignment_id": assignment_id}
    # The answer's own field: label, labels, value or winner (see crowd/api/typed.py).
    if spec.labels is not None:
        out["labels"] = spec.labels
    elif spec.value is not None:
        out["value"] = spec.value
    elif spec.winner is not None:
        out["winner"] = spec.winner
    else:
        out["label"] = spec.label
    out["status"] = outcome.value
    if spec.next:
        out["next"] = following.to_json(labels) if following is not None else None
    return out


@bp.post("/assignments/<int:assignment_id>/answer")
@auth.require(Role.WORKER)
@idempotency.idempotent()
def answer(assignment_id: int) -> ResponseReturnValue:
    """Store the answer; with ``"next": true`` also reserve the worker's next task.

    Answer and next reservation share one transaction, so a worker's loop costs one request
    per answer. ``next`` is null when no task is left for this worker.
    """
    spec = body.json_body(AnswerIn)
    if spec.label is None and spec.labels is None and spec.value is None and spec.winner is None:
        raise Invalid(
            'label: missing; send the answer: {"label": ...} (categorical), {"labels": [...]}'
            ' (multilabel), {"value": ...} (numeric) or {"winner": "left"} (pairwise)'
        )
    worker = auth.current()
    following: Reservation | None = None
    with idempotency.transaction() as cur:
        held = assignments.lock(cur, assignment_id)
        label = -1
        project = None
        labels: Sequence[str] = ()
        given = None
        if held is not None and held.worker_id == worker.id:
            project = auth.cached_project(held.project_id, cur)
            assert project is not None
            given = typed.answer(project, spec)
            label = given.label
            labels = project.labels
        if project is not None and project.type != typed.CATEGORICAL:
            assert given is not None
            outcome = assignments.answer_typed(
                cur, held, worker.id, label, given.value, given.label_set
            )
        else:
            review_cap = project.review["max_overlap"] if project and project.review else None
            outcome = assignments.answer(cur, held, worker.id, label, review_cap)
        if spec.next and project is not None and outcome == Outcome.CREATED:
            following = _reserve(cur, project, worker.id)
        elif spec.next and project is not None and outcome == Outcome.REPEATED:
            # A retry whose first response was lost: hand back the task that attempt reserved
            # rather than reserving (and stranding) another one.
            following = assignments.held_by(cur, project.id, worker.id) or _reserve(
                cur, project, worker.id
            )
        status = 201 if outcome == Outcome.CREATED else 200
        if idempotency.keyed() and outcome in (Outcome.CREATED, Outcome.REPEATED):
            idempotency.record(cur, status, _ack(assignment_id, spec, outcome, following, labels))
    _raise_for(outcome, assignment_id)
    if outcome == Outcome.CREATED and project is not None:
        deps.stale_marks().add(project.id)
    if spec.next and project is not None:
        if following is None:

            def record_next(cur: Cursor, reserved: Reservation) -> None:
                idempotency.record(
                    cur, status, _ack(assignment_id, spec, outcome, reserved, labels)
                )

            following = _reserve_after_sweep(project, worker.id, record_next)
        else:
            _sweep(project)  # the periodic one, after this request's own transaction
    return jsonify(_ack(assignment_id, spec, outcome, following, labels)), status


@bp.post("/assignments/<int:assignment_id>/skip")
@auth.require(Role.WORKER)
@idempotency.idempotent()
def skip(assignment_id: int) -> ResponseReturnValue:
    worker = auth.current()
    out = {"assignment_id": assignment_id, "status": Outcome.SKIPPED.value}
    with idempotency.transaction() as cur:
        outcome = assignments.skip(cur, assignments.lock(cur, assignment_id), worker.id)
        if outcome == Outcome.SKIPPED:
            idempotency.record(cur, 200, out)
    _raise_for(outcome, assignment_id)
    return jsonify(out), 200
