"""The worker's loop: fetch a task, then answer or skip it."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from psycopg2 import errors as pg_errors

from crowd.api import auth, body, deps
from crowd.api.schemas import AnswerIn
from crowd.errors import Conflict, Forbidden, Invalid, NotFound
from crowd.store import assignments, projects
from crowd.store.accounts import Role
from crowd.store.assignments import Outcome, Reservation
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
    with deps.db().transaction() as cur:
        project = projects.get(cur, project_id)
    if project is None or not auth.can_work_on(auth.current(), project):
        raise NotFound(f"no project {project_id} open to this worker; ask the requester for its id")
    return project


def _reserve(project: Project, worker_id: int, sweep: bool) -> Reservation | None:
    for attempt in range(3):
        try:
            with deps.db().transaction() as cur:
                if sweep:
                    assignments.release_expired(cur, project.id)
                return assignments.reserve(cur, project.id, worker_id, project.lease_seconds)
        except pg_errors.UniqueViolation:
            # The same worker fetched twice at once and both picked one task; try the next one.
            if attempt == 2:
                raise
    return None


@bp.post("/projects/<int:project_id>/assignments")
@auth.require(Role.WORKER)
def fetch(project_id: int) -> ResponseReturnValue:
    project = _project_for_worker(project_id)
    worker = auth.current()
    reservation = _reserve(project, worker.id, sweep=_sweep_due(project.id))
    if reservation is None:
        reservation = _reserve(project, worker.id, sweep=True)
    if reservation is None:
        return Response(status=204)
    return jsonify(reservation.to_json()), 201


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


@bp.post("/assignments/<int:assignment_id>/answer")
@auth.require(Role.WORKER)
def answer(assignment_id: int) -> ResponseReturnValue:
    spec = body.json_body(AnswerIn)
    worker = auth.current()
    with deps.db().transaction() as cur:
        held = assignments.lock(cur, assignment_id)
        if held is not None and held.worker_id == worker.id:
            project = projects.get(cur, held.project_id)
            assert project is not None
            label = project.label_index(spec.label)
            if label is None:
                raise Invalid(
                    f"label: {spec.label!r} is not one of this project's labels {project.labels[:20]}",
                    code="unknown_label",
                )
        else:
            label = -1
        outcome = assignments.answer(cur, held, worker.id, label)
    _raise_for(outcome, assignment_id)
    status = 201 if outcome == Outcome.CREATED else 200
    return jsonify(
        {"assignment_id": assignment_id, "label": spec.label, "status": outcome.value}
    ), status


@bp.post("/assignments/<int:assignment_id>/skip")
@auth.require(Role.WORKER)
def skip(assignment_id: int) -> ResponseReturnValue:
    worker = auth.current()
    with deps.db().transaction() as cur:
        outcome = assignments.skip(cur, assignments.lock(cur, assignment_id), worker.id)
    _raise_for(outcome, assignment_id)
    return jsonify({"assignment_id": assignment_id, "status": outcome.value}), 200
