"""Worker identities, created by requesters (each gets its own token)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.api.schemas import WorkerIn
from crowd.store import accounts
from crowd.store.accounts import Role

bp = Blueprint("workers", __name__, url_prefix="/api/v1/workers")


@bp.post("")
@auth.require(*MANAGERS)
def create() -> ResponseReturnValue:
    spec = body.json_body(WorkerIn)
    with deps.db().transaction() as cur:
        worker, token = accounts.create(cur, Role.WORKER, spec.name, created_by=auth.current().id)
    return jsonify({"id": worker.id, "name": worker.name, "token": token}), 201


@bp.get("")
@auth.require(*MANAGERS)
def list_() -> ResponseReturnValue:
    after, limit = body.page_params()
    account = auth.current()
    creator = None if account.role == Role.ADMIN else account.id
    with deps.db().transaction() as cur:
        page = accounts.list_workers(cur, creator, after, limit)
    return jsonify(
        {
            "workers": [{"id": w.id, "name": w.name} for w in page],
            "next_cursor": body.next_cursor([w.id for w in page], limit),
        }
    )
