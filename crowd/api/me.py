"""The calling worker's own view: the projects it may work on."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.store import assignments, projects, quality
from crowd.store.accounts import Role

bp = Blueprint("me", __name__, url_prefix="/api/v1/me")


@bp.get("/projects")
@auth.require(Role.WORKER)
def list_projects() -> ResponseReturnValue:
    """Projects open to the calling worker (those of the requester who created it; every
    project when an admin did), by id, with what a worker needs: name, labels, lease,
    whether it is banned from the project (and why), and whether a task is waiting for it
    there now (``has_tasks``: a fetch would get one)."""
    after, limit = body.page_params()
    worker = auth.current()
    # Same rule as auth.can_work_on; a worker with no creator (none is made so) works for no one.
    owner = None if worker.creator_is_admin else (worker.created_by or -1)
    with deps.db().transaction() as cur:
        page = projects.list_for(cur, owner, after, limit)
        ids = [p.id for p in page]
        bans = quality.bans_of(cur, worker.id, ids)
        with_work = assignments.with_work_for(cur, worker.id, ids)
    return jsonify(
        {
            "projects": [
                {
                    "id": p.id,
                    "name": p.name,
                    "labels": list(p.labels),
                    "lease_seconds": p.lease_seconds,
                    "banned": p.id in bans,
                    "ban_reason": bans.get(p.id),
                    "has_tasks": p.id in with_work and p.id not in bans,
                    # A typed project says what an answer is, for the labelling page's
                    # controls (docs/TYPES.md); a categorical one lists as it always did.
                    **(
                        {"type": p.type, "scale": p.scale, "ties": p.ties}
                        if p.type != "categorical"
                        else {}
                    ),
                }
                for p in page
            ],
            "next_cursor": body.next_cursor([p.id for p in page], limit),
        }
    )
