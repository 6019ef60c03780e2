"""Worker identities, created by requesters (each gets its own token)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.api.schemas import WorkerIn
from crowd.store import accounts
from crowd.store.accounts import Role

bp = Blueprint("workers", __name__, url_prefix="/api/v1/workers")


def _fresh_token(stored: dict[str, Any]) -> dict[str, Any]:
    """A replayed creation: tokens are stored only as hashes, so the replay cannot show the
    first one; it issues the worker a new token, which replaces the unseen one."""
    with deps.db().transaction() as cur:
        token = accounts.rotate_token(cur, stored["id"])
    return {**stored, "token": token}


@bp.post("")
@auth.require(*MANAGERS)
@idempotency.idempotent(on_replay=_fresh_token)
def create() -> ResponseReturnValue:
    spec = body.json_body(WorkerIn)
    with idempotency.transaction() as cur:
        worker, token = accounts.create(cur, Role.WORKER, spec.name, created_by=auth.current().id)
        out = {"id": worker.id, "name": worker.name}
        idempotency.record(cur, 201, out)  # without the token: never stored in clear
    return jsonify({**out, "token": token}), 201


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
