"""Reading out: aggregated results and raw answers, paginated."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.store import results

bp = Blueprint("results", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/results")
@auth.require(*MANAGERS)
def list_results(project_id: int) -> ResponseReturnValue:
    """Majority vote per task until aggregation runs: ``confidence`` is the winner's vote share."""
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = results.majority_page(cur, project.id, after, limit)
    out = []
    for task_id, external_id, answers, target, label, votes in page:
        out.append(
            {
                "task_id": task_id,
                "external_id": external_id,
                "label": project.labels[label] if label is not None else None,
                "confidence": round(votes / answers, 6) if answers else None,
                "answers": answers,
                "status": "complete" if answers >= target else "pending",
            }
        )
    return jsonify({"results": out, "next_cursor": body.next_cursor([r[0] for r in page], limit)})


@bp.get("/<int:project_id>/answers")
@auth.require(*MANAGERS)
def list_answers(project_id: int) -> ResponseReturnValue:
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = results.answers_page(cur, project.id, after, limit)
    out = [
        {
            "id": answer_id,
            "task_id": task_id,
            "external_id": external_id,
            "worker_id": worker_id,
            "label": project.labels[label],
            "created_at": at.isoformat(),
        }
        for answer_id, task_id, external_id, worker_id, label, at in page
    ]
    return jsonify({"answers": out, "next_cursor": body.next_cursor([r[0] for r in page], limit)})
