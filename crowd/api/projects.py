"""Projects: create, list, read with progress counts."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency, typed
from crowd.api.schemas import ProjectIn, ProjectPatch
from crowd.errors import Invalid
from crowd.store import projects, review
from crowd.store.accounts import Role

bp = Blueprint("projects", __name__, url_prefix="/api/v1/projects")

MANAGERS = (Role.ADMIN, Role.REQUESTER)


@bp.post("")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def create() -> ResponseReturnValue:
    spec = body.json_body(ProjectIn)
    labels = typed.check_project(spec)
    settings = spec.model_dump(include=set(projects.SETTINGS))
    if spec.type != typed.CATEGORICAL:
        settings.update(spec.model_dump(include=set(projects.TYPE_SETTINGS)))
    with idempotency.transaction() as cur:
        out = projects.create(cur, auth.current().id, labels, settings).to_json()
        idempotency.record(cur, 201, out)
    return jsonify(out), 201


# Settings where null means "off"; the others cannot be null.
_NULLABLE = {"max_overlap", "confidence_target", "qc_min_accuracy", "qc_min_gold_accuracy"}
_NULLABLE |= {"model", "auto_label_accuracy"}  # models (crowd/background/training.py)
_NULLABLE |= {"review", "qc_min_trap_catch"}  # the review lane (crowd/store/review.py)
_NULLABLE |= {"active"}  # active pairwise selection (crowd/store/active.py)


def update(project_id: int) -> ResponseReturnValue:
    """Change settings. Only the fields sent change; null turns an optional rule off.

    Raising ``overlap`` gives open tasks the slots they now lack; lowering it leaves tasks'
    existing slots alone.
    """
    project = auth.project_for_requester(project_id)
    spec = body.json_body(ProjectPatch)
    changes = {name: getattr(spec, name) for name in spec.model_fields_set}
    if changes.get("model") is not None:
        changes["model"] = spec.model.model_dump() if spec.model else None
    if changes.get("review") is not None:
        changes["review"] = spec.review.model_dump() if spec.review else None
    if changes.get("active") is not None:
        changes["active"] = spec.active.model_dump() if spec.active else None
    for name, value in changes.items():
        if value is None and name not in _NULLABLE:
            raise Invalid(f"{name}: cannot be null; leave it out to keep its value")
    typed.check_patch(project, changes)
    overlap = changes.get("overlap", project.overlap)
    cap = changes.get("max_overlap", project.max_overlap)
    if cap is not None and cap < overlap:
        raise Invalid(f"max_overlap ({cap}) must be at least overlap ({overlap})")
    with deps.db().transaction() as cur:
        updated = projects.update(cur, project.id, changes)
        if updated is not None and "review" in changes:
            if updated.review is None:
                review.leave_lane(cur, updated)
            review.route(cur, updated)
    auth.forget_project(project.id)
    assert updated is not None
    return jsonify(updated.to_json())


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


# GET and PATCH share one rule: with two rules for one path, werkzeug answers an id beyond
# bigint (which the converter rejects) with 405 instead of 404.
@bp.route("/<int:project_id>", methods=["GET", "PATCH"])
@auth.require(*MANAGERS)
def one(project_id: int) -> ResponseReturnValue:
    return update(project_id) if request.method == "PATCH" else get(project_id)


def get(project_id: int) -> ResponseReturnValue:
    auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        project = projects.get(cur, project_id)  # fresh: last_run_id changes with every run
        counts = projects.counts(cur, project_id)
    assert project is not None
    return jsonify({**project.to_json(), "counts": counts})
