"""Model versions: list them, and ask for one."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.background import training
from crowd.errors import Conflict, Unavailable
from crowd.store import models
from crowd.store.db import Cursor
from crowd.store.models import ModelVersion

bp = Blueprint("models", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/models")
@auth.require(*MANAGERS)
def list_versions(project_id: int) -> ResponseReturnValue:
    """The project's model versions, newest first: status, metrics on gold, tasks trained on,
    the aggregation run the labels came from, error."""
    project = auth.project_for_requester(project_id)
    before, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = models.page(cur, project.id, before or body.MAX_ID, limit)
    return jsonify(
        {
            "models": [v.to_json() for v in page],
            "next_cursor": body.next_cursor([v.id for v in page], limit),
        }
    )


@bp.post("/<int:project_id>/models")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def trigger(project_id: int) -> ResponseReturnValue:
    """Ask for a new version now. 202 with the queued version, or ``"model": null`` when one
    is already queued or running; 409 when the project has no model settings."""
    project = auth.project_for_requester(project_id)
    if project.model is None:
        raise Conflict(
            f"project {project_id} has no model; set one with PATCH /api/v1/projects/"
            f'{project_id} {{"model": {{"input": "text", "field": "text"}}}}',
            code="no_model",
        )
    idempotency.precheck()  # before the Redis side of queueing a version

    def record(cur: Cursor, queued: ModelVersion) -> None:
        idempotency.record(cur, 202, {"model": queued.to_json()})

    try:
        version = training.request(deps.db(), deps.redis(), project, "api", on_queued=record)
    except RedisError as exc:
        raise Unavailable(f"the job queue (Redis) is unavailable: {exc}") from exc
    if version is None:
        # Nothing new was queued: the request changed nothing, so there is nothing to record.
        return jsonify(
            {
                "model": None,
                "message": "a model version is already queued or running; ask again when it "
                "has finished",
            }
        ), 202
    return jsonify({"model": version.to_json()}), 202
