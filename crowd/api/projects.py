"""Projects: create, list, read with progress counts."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.schemas import ProjectIn
from crowd.store import projects
from crowd.store.accounts import Role

bp = Blueprint("projects", __name__, url_prefix="/api/v1/projects")

MANAGERS = (Role.ADMIN, Role.REQUESTER)


@bp.post("")
@auth.require(*MANAGERS)
def create() -> ResponseReturnValue:
    spec = body.json_body(ProjectIn)
    with deps.db().transaction() as cur:
        project = projects.create(
            cur, auth.current().id, spec.name, spec.labels, spec.overlap, spec.lease_seconds
        )
    return jsonify(project.to_json()), 201


@bp.get("")
@auth.require(*MANAGERS)
def list_() -> ResponseReturnValue:
    after, limit = body.page_params()
    account = auth.current()
    owner = None if account.role == Role.ADMIN else account.id
    with deps.db().transaction() as cur:
        page = projects.list_for(cur, owner, after, limit)
    return jsonify(
        {
            "projects": [p.to_json() for p in page],
            "next_cursor": body.next_cursor([p.id for p in page], limit),
        }
    )


@bp.get("/<int:project_id>")
@auth.require(*MANAGERS)
def get(project_id: int) -> ResponseReturnValue:
    project = auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        counts = projects.counts(cur, project_id)
    return jsonify({**project.to_json(), "counts": counts})
