"""A project's workers: estimates, gold accuracy, and bans (automatic or by hand)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.api.schemas import BanIn
from crowd.errors import NotFound
from crowd.store import accounts, quality, typed

bp = Blueprint("quality", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/workers")
@auth.require(*MANAGERS)
def list_workers(project_id: int) -> ResponseReturnValue:
    """Workers with answers in the project (or banned from it), by id: answers, the last
    run's accuracy estimate and confusion matrix (rows: true label, columns: answer, in the
    project's label order), accuracy on their recent gold tasks, status, and per quality rule
    the evidence: estimate, 95% interval, probability below the threshold and answers still
    needed for a decision (docs/QUALITY.md). ``?status=active|banned`` filters."""
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    status = body.choice_arg("status", ("active", "banned"))
    with deps.db().transaction() as cur:
        page = quality.page(cur, project.id, after, limit, status)
        if project.type != "categorical":  # the type's estimates (docs/TYPES.md)
            estimates = typed.worker_estimates(cur, project.id, [w["id"] for w in page])
            for worker in page:
                worker["estimates"] = estimates.get(worker["id"])
    return jsonify(
        {
            "labels": project.labels,
            "workers": page,
            "next_cursor": body.next_cursor([w["id"] for w in page], limit),
        }
    )


def _worker_of(project_id: int, worker_id: int) -> None:
    project = auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        worker = accounts.get_worker(cur, worker_id)
    if worker is None or not auth.can_work_on(worker, project):
        raise NotFound(
            f"no worker {worker_id} who can work on project {project_id}; "
            f"GET /api/v1/projects/{project_id}/workers lists them"
        )


@bp.post("/<int:project_id>/workers/<int:worker_id>/ban")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def ban(project_id: int, worker_id: int) -> ResponseReturnValue:
    """Ban a worker from the project by hand; its live reservations are released."""
    _worker_of(project_id, worker_id)
    spec = body.json_body(BanIn, allow_empty=True)
    out = {"worker_id": worker_id, "status": "banned", "reason": spec.reason}
    with idempotency.transaction() as cur:
        quality.ban(cur, project_id, worker_id, spec.reason)
        idempotency.record(cur, 200, out)
    return jsonify(out)


@bp.post("/<int:project_id>/workers/<int:worker_id>/unban")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def unban(project_id: int, worker_id: int) -> ResponseReturnValue:
    """Lift a ban (idempotent). The quality rules judge the worker again only after
    ``qc_min_answers`` more answers."""
    _worker_of(project_id, worker_id)
    out = {"worker_id": worker_id, "status": "active"}
    with idempotency.transaction() as cur:
        quality.unban(cur, project_id, worker_id)
        idempotency.record(cur, 200, out)
    return jsonify(out)
