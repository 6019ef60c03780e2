"""Predictions from any model, and the corrections people made to them (docs/REVIEW.md).

``POST .../predictions`` stores a batch of one model's predictions; a task batch may carry
each task's prediction inline (:mod:`crowd.api.tasks`, through :func:`checked_value` and
:func:`store_or_conflict`). Every bad value is a 422 naming its field, a (task, model) pair
already stored with another label a 409, and in either case nothing of the request is stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.api.schemas import PredictionsIn, PredictionValue
from crowd.errors import BadRequest, Conflict, Invalid
from crowd.store import predictions, review
from crowd.store.db import Cursor
from crowd.store.predictions import NewPrediction
from crowd.store.projects import Project

bp = Blueprint("predictions", __name__, url_prefix="/api/v1/projects")

#: How far the probabilities of a prediction may sum from 1.
SUM_TOLERANCE = 1e-6
#: Most problems one 422 lists.
_LISTED = 3


class Problems:
    """The bad values of one request, raised together as one 422."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, message: str) -> None:
        self.found.append(message)

    def raise_any(self) -> None:
        if self.found:
            more = len(self.found) - _LISTED
            listed = self.found[:_LISTED] + ([f"and {more} more"] if more > 0 else [])
            raise Invalid("; ".join(listed), code="invalid_prediction")


def check_model_name(name: str, where: str, problems: Problems) -> None:
    """Names are 1 to 100 characters (the schema), not blank, and not the built-in model's."""
    if not name.strip():
        problems.add(f"{where}: must not be only spaces; name the model, e.g. 'resnet@2026-12-01'")
    elif name.startswith(predictions.BUILTIN):
        problems.add(
            f"{where}: names starting with {predictions.BUILTIN!r} are the built-in model's "
            "versions; choose another name"
        )


def checked_value(
    project: Project, value: PredictionValue, where: str, problems: Problems
) -> tuple[int, float, list[float] | None] | None:
    """``(label index, confidence, probabilities or None)`` of a prediction, or None after
    adding what is wrong with it to ``problems``. ``where`` prefixes each message."""
    labels = project.labels
    if value.confidence is not None and value.probabilities is not None:
        problems.add(f"{where}: send confidence or probabilities, not both")
        return None
    label = None
    if value.label is not None:
        label = project.label_index(value.label)
        if label is None:
            problems.add(_not_a_label(f"{where}.label", value.label, labels))
            return None
    if value.probabilities is None:
        if value.confidence is None:
            problems.add(
                f"{where}.confidence: send the predicted label's probability (0 to 1), "
                "or probabilities of the labels instead"
            )
            return None
        if label is None:
            problems.add(f"{where}.label: send the predicted label, one of {labels[:20]}")
            return None
        return label, float(value.confidence), None
    unknown = [name for name in value.probabilities if project.label_index(name) is None]
    if unknown:
        problems.add(_not_a_label(f"{where}.probabilities", unknown[0], labels))
        return None
    total = math.fsum(value.probabilities.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        problems.add(
            f"{where}.probabilities: must sum to 1 ± {SUM_TOLERANCE:g}, got {total:.9g}; "
            "send each label's probability (labels left out count as 0)"
        )
        return None
    probabilities = [float(value.probabilities.get(name, 0.0)) for name in labels]
    if label is None:
        label = max(range(len(labels)), key=probabilities.__getitem__)
    return label, probabilities[label], probabilities


def _not_a_label(where: str, name: str, labels: Sequence[str]) -> str:
    return f"{where}: {name[:100]!r} is not one of the project's labels {list(labels[:20])}"


def store_or_conflict(
    cur: Cursor, project: Project, batch: Sequence[NewPrediction], where: Sequence[str]
) -> int:
    """Insert ``batch`` (``where[i]`` names item i in messages); returns how many were new.
    Raises a 409 when a (task, model) pair is stored already with another label: the caller's
    transaction then rolls back, so nothing of the request is stored. With the review lane on,
    the tasks are routed by their new newest prediction in the same transaction."""
    created, conflicts = predictions.insert(cur, project.id, batch)
    if conflicts:
        at = {id(p): where[i] for i, p in enumerate(batch)}
        first, stored = conflicts[0]
        more = f" ({len(conflicts) - 1} more pairs too)" if len(conflicts) > 1 else ""
        raise Conflict(
            f"{at[id(first)]}.label: model {first.model[:100]!r} already predicted "
            f"{project.labels[stored]!r} for this task, not {project.labels[first.label]!r}"
            f"{more}; a task takes one prediction per model: post a changed model under a "
            "new name (e.g. its new version)",
            code="prediction_conflict",
        )
    if project.review is not None and created:
        review.route(cur, project, sorted({p.task_id for p in batch}))
    return created


@bp.post("/<int:project_id>/predictions")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def post_predictions(project_id: int) -> ResponseReturnValue:
    """Store one model's predictions: idempotent per (task, model)."""
    project = auth.project_for_requester(project_id)
    if project.type != "categorical":
        raise Invalid(
            f"predictions: project {project.id} is {project.type}; models predict one label"
            " per task, so only categorical projects take predictions",
            code="meaningless_for_type",
        )
    spec = body.json_body(PredictionsIn)
    problems = Problems()
    check_model_name(spec.model, "model", problems)
    values: list[tuple[int, float, list[float] | None]] = []
    for i, item in enumerate(spec.predictions):
        where = f"predictions.{i}"
        if (item.external_id is None) == (item.task_id is None):
            problems.add(f"{where}: name the task by external_id or by task_id (one of them)")
            continue
        value = checked_value(project, item, where, problems)
        if value is not None:
            values.append(value)
    problems.raise_any()
    with idempotency.transaction() as cur:
        by_external = predictions.tasks_by_external_id(
            cur, project.id, [p.external_id for p in spec.predictions if p.external_id is not None]
        )
        known = predictions.known_task_ids(
            cur, project.id, [p.task_id for p in spec.predictions if p.task_id is not None]
        )
        batch: list[NewPrediction] = []
        seen: dict[int, int] = {}
        for i, (item, (label, confidence, probabilities)) in enumerate(
            zip(spec.predictions, values, strict=True)
        ):
            where = f"predictions.{i}"
            if item.external_id is not None:
                task_id = by_external.get(item.external_id)
                if task_id is None:
                    problems.add(
                        f"{where}.external_id: no task {item.external_id[:100]!r} in project "
                        f"{project.id}; post it first with POST /api/v1/projects/{project.id}/tasks"
                    )
                    continue
            else:
                assert item.task_id is not None
                task_id = item.task_id
                if task_id not in known:
                    problems.add(f"{where}.task_id: no task {task_id} in project {project.id}")
                    continue
            if task_id in seen:
                problems.add(
                    f"{where}: the same task as predictions.{seen[task_id]}; send each task once"
                )
                continue
            seen[task_id] = i
            batch.append(NewPrediction(task_id, spec.model, label, confidence, probabilities))
        problems.raise_any()
        created = store_or_conflict(
            cur, project, batch, [f"predictions.{i}" for i in seen.values()]
        )
        out = {"model": spec.model, "created": created, "existing": len(batch) - created}
        idempotency.record(cur, 201, out)
    return jsonify(out), 201


@bp.get("/<int:project_id>/corrections")
@auth.require(*MANAGERS)
def list_corrections(project_id: int) -> ResponseReturnValue:
    """Tasks whose current label differs from ``?model=NAME``'s prediction, by task id."""
    project = auth.project_for_requester(project_id)
    model = request.args.get("model", "")
    if not model or len(model) > 100 or "\x00" in model:
        raise BadRequest(
            "model must name the model whose corrections to list (1 to 100 characters), e.g. "
            f"?model=resnet@2026-12-01; got {model[:40]!r}"
        )
    after, limit = body.page_params()
    with deps.db().transaction() as cur:
        rows = predictions.corrections_page(cur, project.id, model, after, limit)
    labels = project.labels
    out: list[dict[str, Any]] = [
        {
            "task_id": task_id,
            "external_id": external_id,
            "prediction": {"label": labels[predicted], "confidence": round(p_conf, 6)},
            "label": labels[label],
            "confidence": round(conf, 6) if conf is not None else None,
            "label_source": source,
        }
        for task_id, external_id, predicted, p_conf, label, conf, source in rows
    ]
    return jsonify(
        {
            "model": model,
            "corrections": out,
            "next_cursor": body.next_cursor([r[0] for r in rows], limit),
        }
    )
