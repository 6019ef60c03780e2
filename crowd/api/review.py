"""The review lane's report: auto-accepts, their audited precision, per model (docs/REVIEW.md)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, cast

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from crowd.api import auth, deps
from crowd.api.projects import MANAGERS
from crowd.em.intervals import wilson_lower
from crowd.store import projects, review
from crowd.store.db import Cursor

bp = Blueprint("review", __name__, url_prefix="/api/v1/projects")

#: Two-sided 95% normal quantile, for the audited precision's interval.
Z_95_TWO_SIDED = 1.96

#: Per-model figures (:func:`crowd.store.review.model_figures`) are kept in Redis for this many
#: seconds, shared by every web process: they read every prediction of the project (1.5-2 s
#: per 200k on the 2-core machine, benchmarks/review_panel.py) and the dashboard polls every
#: 10 s. Each copy is stamped with the run it saw; a copy from an older run is still served if
#: it was slow to make (at least :data:`FIGURES_SLOW` seconds), so a big project with runs
#: every few seconds pays for its figures once per :data:`FIGURES_TTL` seconds at most, while a
#: small one shows a new run's figures at once.
FIGURES_TTL = 30
FIGURES_SLOW = 0.25


def cached_figures(cur: Cursor, project_id: int, last_run: int) -> dict[str, dict[str, Any]]:
    """The project's per-model figures, from Redis when a usable copy is there (see
    :data:`FIGURES_TTL`), else computed and kept; computed on each call when Redis is down."""
    key = f"crowd:review:figures:{project_id}"
    try:
        raw = deps.redis().get(key)
    except RedisError:
        raw = None  # Redis down: the figures still come, just uncached
    if raw is not None:
        kept = json.loads(raw)
        if kept["run"] == last_run or kept["seconds"] >= FIGURES_SLOW:
            return cast(dict[str, dict[str, Any]], kept["figures"])
    start = time.perf_counter()
    figures = review.model_figures(cur, project_id)
    seconds = time.perf_counter() - start
    kept = {"run": last_run, "seconds": seconds, "figures": figures}
    with contextlib.suppress(RedisError):
        deps.redis().set(key, json.dumps(kept), ex=FIGURES_TTL)
    return figures


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
        last_run = projects.last_run_id(cur, project.id) or 0
        figures = cached_figures(cur, project.id, last_run)
    models = []
    for name in sorted(counts):
        c = counts[name]
        f = figures.get(name)
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
