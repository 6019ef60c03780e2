"""Posting task batches, each task with its model prediction if it has one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, idempotency, predictions, typed
from crowd.api.projects import MANAGERS
from crowd.api.schemas import TasksIn
from crowd.errors import Conflict, Invalid
from crowd.store import predictions as store_predictions
from crowd.store import tasks
from crowd.store.predictions import NewPrediction
from crowd.store.tasks import NewTask

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/projects")


#: External ids a 409 names before it says "and N more".
_NAMED = 20


@bp.post("/<int:project_id>/tasks")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def post_batch(project_id: int) -> ResponseReturnValue:
    """Create the batch's new tasks; ``existing`` counts those already posted identically.

    A task is fixed once posted: re-posting an external_id with other ``data`` or ``gold`` is a
    409 naming those external_ids, and nothing of the batch is stored, so a retry of the same
    batch stays harmless and an edit is never silently dropped.
    """
    project = auth.project_for_requester(project_id)
    spec = body.json_body(TasksIn)
    limit = deps.settings().max_batch_tasks
    if len(spec.tasks) > limit:
        raise Invalid(
            f"tasks: at most {limit} tasks per request, got {len(spec.tasks)}; split the batch"
        )
    seen: set[str] = set()
    batch = []
    problems = predictions.Problems()
    inline: list[tuple[str, str, str, tuple[int, float, list[float] | None]]] = []
    for i, task in enumerate(spec.tasks):
        if task.external_id in seen:
            raise Invalid(
                f"tasks.{i}.external_id: {task.external_id!r} appears twice in this batch; "
                "send each task once"
            )
        seen.add(task.external_id)
        if project.type != typed.CATEGORICAL:
            shaped = typed.task(project, task, f"tasks.{i}")
            batch.append(
                NewTask(
                    task.external_id, shaped.data, shaped.gold, shaped.gold_value, shaped.gold_set
                )
            )
            continue
        if task.left is not None or task.right is not None:
            raise Invalid(f"tasks.{i}.left: only pairwise tasks have left and right items")
        gold = None
        if task.gold is not None and not isinstance(task.gold, str):
            raise Invalid(f"tasks.{i}.gold: send one of the project's labels {project.labels[:20]}")
        if task.gold is not None:
            gold = project.label_index(task.gold)
            if gold is None:
                raise Invalid(
                    f"tasks.{i}.gold: {task.gold!r} is not one of the project's labels "
                    f"{project.labels[:20]}"
                )
        batch.append(NewTask(task.external_id, task.data, gold))
        if task.prediction is not None:
            where = f"tasks.{i}.prediction"
            predictions.check_model_name(task.prediction.model, f"{where}.model", problems)
            value = predictions.checked_value(project, task.prediction, where, problems)
            if value is not None:
                inline.append((where, task.external_id, task.prediction.model, value))
    problems.raise_any()
    with idempotency.transaction() as cur:
        created = tasks.insert_batch(cur, project.id, project.overlap, batch)
        if created < len(batch):
            _refuse_changes(tasks.differing(cur, project.id, batch))
        out: dict[str, Any] = {"created": created, "existing": len(batch) - created}
        if inline:
            # Predictions of tasks that existed already count too: idempotent per (task, model).
            ids = store_predictions.tasks_by_external_id(
                cur, project.id, [external_id for _, external_id, _, _ in inline]
            )
            new = [
                NewPrediction(ids[external_id], model, *value)
                for _, external_id, model, value in inline
            ]
            made = predictions.store_or_conflict(cur, project, new, [w for w, *_ in inline])
            out["predictions"] = {"created": made, "existing": len(new) - made}
        idempotency.record(cur, 201, out)
    if any(t.gold is not None for t in batch) and not project.has_gold:
        auth.forget_project(project.id)  # so this process mixes the gold in at once
    return jsonify(out), 201


def _refuse_changes(changed: list[str]) -> None:
    """409 (rolling the batch back) when existing tasks were re-posted with other content."""
    if not changed:
        return
    named = ", ".join(repr(e) for e in changed[:_NAMED])
    more = f" and {len(changed) - _NAMED} more" if len(changed) > _NAMED else ""
    raise Conflict(
        f"tasks {named}{more} already exist with other data or gold, and a task cannot be "
        "changed once posted; nothing in this batch was stored. Send those tasks exactly "
        "as first posted (or leave them out), or post the new content under new external_ids",
        code="task_changed",
    )
