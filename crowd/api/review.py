"""The review lane's report: auto-accepts, their audited precision, per model (docs/REVIEW.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, deps
from crowd.api.projects import MANAGERS
from crowd.store import review

bp = Blueprint("review", __name__, url_prefix="/api/v1/projects")

#: Two-sided 95% normal quantile, for the audited precision's interval.
Z_95_TWO_SIDED = 1.96


def precision(agree: int, labelled: int) -> dict[str, Any]:
    """``agree`` of ``labelled`` audits right: the share and its 95% Wilson interval (null
    with no labelled audit yet)."""
    from crowd.learn.calibrate import wilson_lower

    if labelled == 0:
        return {"labelled": 0, "agree": 0, "precision": None, "interval": None}
    low = wilson_lower(agree, labelled, Z_95_TWO_SIDED)
    high = 1.0 - wilson_lower(labelled - agree, labelled, Z_95_TWO_SIDED)
    return {
        "labelled": labelled,
        "agree": agree,
        "precision": round(agree / labelled, 6),
        "interval": [round(low, 6), round(high, 6)],
    }


@bp.get("/<int:project_id>/review")
@auth.require(*MANAGERS)
def get_review(project_id: int) -> ResponseReturnValue:
    """The review setting, the tasks auto-accepted, and the audited precision of auto-accepts
    (the share of audited would-be-accepted tasks whose crowd label is the prediction's), with
    its 95% interval, overall and per model, with each model's calibrated threshold."""
    project = auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        counts = review.report(cur, project)
        thresholds = review.thresholds(cur, project)
    models = []
    for name in sorted(counts):
        c = counts[name]
        models.append(
            {
                "model": name,
                "predictions": c["predictions"],
                "auto_accepted": c["auto_accepted"],
                "threshold": thresholds.get(name),
                "audits": {
                    "audited": c["audited"],
                    **precision(c["audits_agree"], c["audits_labelled"]),
                },
            }
        )
    total = {k: sum(c[k] for c in counts.values()) for k in ("audited", "audits_labelled")}
    agree = sum(c["audits_agree"] for c in counts.values())
    return jsonify(
        {
            "review": project.review,
            "auto_accepted": sum(c["auto_accepted"] for c in counts.values()),
            "audits": {
                "audited": total["audited"],
                **precision(agree, total["audits_labelled"]),
            },
            "models": models,
        }
    )
