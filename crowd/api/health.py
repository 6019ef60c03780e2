"""Liveness and the API description."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import deps
from crowd.api.openapi import document

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when PostgreSQL and Redis both answer, 503 (with which one failed) otherwise."""
    checks: dict[str, Any] = {}
    try:
        with deps.db().transaction() as cur:
            cur.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = (
            f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        )
    try:
        deps.redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ok" if ok else "unavailable", **checks})
    if not ok:
        response.status_code = 503
        response.headers["Retry-After"] = "2"
    return response


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document())
