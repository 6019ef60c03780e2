"""Model versions: list them, and ask for one."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from crowd import training
from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.errors import Conflict, Unavailable
from crowd.store import models

bp = Blueprint("models", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/models")
@auth.require(*MANAGERS)
def list_versions(project_id: int) -> ResponseReturnValue:
    """The project's model versions, newest first: status, metrics on gold, tasks trained on,
    the aggregation run the labels came from, error."""
    project = auth.project_for_requester(project_id)
    before, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = models.page(cur, project.id, before or 2**63 - 1, limit)
    return jsonify(
        {
            "models": [v.to_json() for v in page],
            "next_cursor": body.next_cursor([v.id for v in page], limit),
        }
    )


@bp.post("/<int:project_id>/models")
@auth.require(*MANAGERS)
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
    try:
        version = training.request(deps.db(), deps.redis(), project, "api")
    except RedisError as exc:
        raise Unavailable(f"the job queue (Redis) is unavailable: {exc}") from exc
    if version is None:
        return jsonify(
            {
                "model": None,
                "message": "a model version is already queued or running; ask again when it "
                "has finished",
            }
        ), 202
    return jsonify({"model": version.to_json()}), 202
