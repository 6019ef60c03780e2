"""The review lane's report: auto-accepts, their audited precision, per model (docs/REVIEW.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, deps
from crowd.api.cache import TTLCache
from crowd.api.projects import MANAGERS
from crowd.store import review

bp = Blueprint("review", __name__, url_prefix="/api/v1/projects")

#: Two-sided 95% normal quantile, for the audited precision's interval.
Z_95_TWO_SIDED = 1.96

#: Per-model figures (:func:`crowd.store.review.model_figures`) by (project, last run): they
#: read every prediction of the project (about 0.3 s per 200k) while the dashboard polls every
#: 10 s. What they summarise changes mostly when a run publishes (the crowd labels), which
#: changes the key; answers and predictions posted between runs show within this many seconds.
FIGURES_TTL = 30.0
_figures: TTLCache[tuple[int, int], dict[str, dict[str, Any]]] = TTLCache(FIGURES_TTL, 1000)


def _share(part: float, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _accuracy(tasks: int, correct: int) -> dict[str, Any]:
    return {"tasks": tasks, "correct": correct, "accuracy": _share(correct, tasks)}


_EMPTY: dict[str, Any] = {
    **dict.fromkeys(
        (
            "predictions",
            "reviewed",
            "review_answers",
            "confirmed",
            "gold",
            "gold_correct",
            "reviewed_labelled",
            "reviewed_correct",
        ),
        0,
    ),
    "buckets": [[0, 0.0, 0]] * review.BUCKETS,
}


def model_panel(f: dict[str, Any]) -> dict[str, Any]:
    """One model's review figures, as shares with the counts they come from."""
    answers, confirmed = f["review_answers"], f["confirmed"]
    width = 1.0 / review.BUCKETS
    return {
        "reviewed": f["reviewed"],
        "share_reviewed": _share(f["reviewed"], f["predictions"]),
        "review_answers": answers,
        "confirmed": confirmed,
        "corrected": answers - confirmed,
        "share_confirmed": _share(confirmed, answers),
        "share_corrected": _share(answers - confirmed, answers),
        "accuracy": {
            "gold": _accuracy(f["gold"], f["gold_correct"]),
            "reviewed": _accuracy(f["reviewed_labelled"], f["reviewed_correct"]),
        },
        "reliability": [
            {
                "from": round(i * width, 6),
                "to": round((i + 1) * width, 6),
                "tasks": n,
                "confidence": _share(conf, n),
                "accuracy": _share(ok, n),
            }
            for i, (n, conf, ok) in enumerate(f["buckets"])
        ],
    }


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
        # Read here, not off the cached project row: a new run must change the cache key.
        cur.execute("SELECT coalesce(last_run_id, 0) FROM projects WHERE id = %s", (project.id,))
        row = cur.fetchone()
        figures = _figures.get(
            (project.id, int(row[0]) if row else 0), lambda _key: review.model_figures(cur, project.id)
        )
    models = []
    for name in sorted(counts):
        c = counts[name]
        f = (figures or {}).get(name)
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
                **(model_panel(f) if f is not None else model_panel(_EMPTY)),
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
