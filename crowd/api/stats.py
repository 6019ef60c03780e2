"""Distributions a requester looks at rather than reads: confidence and answers per task."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.store import projects, stats

bp = Blueprint("stats", __name__, url_prefix="/api/v1/projects")

MAX_BINS = 100


def _bins() -> int:
    bins = body.int_arg("bins", 1, MAX_BINS)
    return 10 if bins is None else bins


@bp.get("/<int:project_id>/stats")
@auth.require(*MANAGERS)
def get_stats(project_id: int) -> ResponseReturnValue:
    """A histogram of the published confidence of regular tasks (``?bins=``, default 10, over
    [0, 1]) and how many tasks have each number of answers, read in one snapshot."""
    project = auth.project_for_requester(project_id)
    bins = _bins()
    with deps.db().transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        last_run_id = projects.last_run_id(cur, project.id)
        histogram = stats.confidence_histogram(cur, project.id, bins)
        per_task = stats.answers_per_task(cur, project.id)
    return jsonify(
        {
            "last_run_id": last_run_id,
            "confidence": {
                "tasks": sum(histogram),
                "bins": [
                    {"from": round(i / bins, 6), "to": round((i + 1) / bins, 6), "tasks": n}
                    for i, n in enumerate(histogram)
                ],
            },
            "answers_per_task": [{"answers": a, "tasks": n} for a, n in per_task],
        }
    )
