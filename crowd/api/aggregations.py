"""Aggregation runs: list them, and ask for one."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.background import scheduling
from crowd.errors import NotFound, Unavailable
from crowd.store import runs
from crowd.store.db import Cursor
from crowd.store.runs import Run

bp = Blueprint("aggregations", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/aggregations")
@auth.require(*MANAGERS)
def list_runs(project_id: int) -> ResponseReturnValue:
    """The project's runs, newest first: status, times, iterations, objective, answers, error."""
    project = auth.project_for_requester(project_id)
    before, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = runs.page(cur, project.id, before or body.MAX_ID, limit)
    return jsonify(
        {
            "aggregations": [r.to_json() for r in page],
            "next_cursor": body.next_cursor([r.id for r in page], limit),
        }
    )


@bp.get("/<int:project_id>/aggregations/<int:run_id>")
@auth.require(*MANAGERS)
def get_run(project_id: int, run_id: int) -> ResponseReturnValue:
    """One run, e.g. to poll the run a POST queued."""
    project = auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        run = runs.get(cur, project.id, run_id)
    if run is None:
        raise NotFound(
            f"no run {run_id} in project {project_id}; "
            f"GET /api/v1/projects/{project_id}/aggregations lists them"
        )
    return jsonify(run.to_json())


@bp.post("/<int:project_id>/aggregations")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def trigger(project_id: int) -> ResponseReturnValue:
    """Ask for a run over every answer stored so far.

    202 with the queued run; when a run is already queued or running, 202 with
    ``"run": null``: that run is followed by one more, which includes every answer up to now.
    """
    project = auth.project_for_requester(project_id)
    idempotency.precheck()  # before the Redis side of queueing a run

    def record(cur: Cursor, queued: Run) -> None:
        idempotency.record(cur, 202, {"run": queued.to_json()})

    try:
        run = scheduling.mark_stale(
            deps.db(), deps.redis(), project.id, trigger="api", on_queued=record
        )
    except RedisError as exc:
        raise Unavailable(f"the job queue (Redis) is unavailable: {exc}") from exc
    if run is None:
        # Nothing new was queued: the request changed nothing, so there is nothing to record.
        return jsonify(
            {
                "run": None,
                "message": "a run is already queued or running; one more run will follow it "
                "and include every answer stored so far",
            }
        ), 202
    return jsonify({"run": run.to_json()}), 202
