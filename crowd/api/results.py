"""Reading out: aggregated results and raw answers, paginated."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps, typed
from crowd.api.projects import MANAGERS
from crowd.errors import Invalid
from crowd.store import predictions, results, runs
from crowd.store import typed as typed_store
from crowd.store.projects import Project

bp = Blueprint("results", __name__, url_prefix="/api/v1/projects")


@bp.get("/<int:project_id>/results")
@auth.require(*MANAGERS)
def list_results(project_id: int) -> ResponseReturnValue:
    """Aggregated label per task, by task id.

    ``run_id`` is the aggregation run that last changed the row; until a run covers a task its
    row has ``run_id: null`` and the majority vote, with the winner's vote share as
    ``confidence``. ``?since_run=N`` returns only tasks whose result changed after run N, and
    tasks the model auto-labelled (or relabelled) since then (see
    :func:`crowd.store.results.page`): page through with the cursor, then poll again with the
    ``last_run_id`` of the first page of that pass. ``?status=complete|pending`` filters,
    ``?posteriors=true`` adds each label's probability. In a project with a model,
    ``model_label`` and ``model_confidence`` are the latest version's prediction (null before
    one), and ``label_source`` is ``model`` for a task closed by auto-labelling, else ``crowd``;
    a project with a review setting has ``label_source`` too, ``model`` for an auto-accepted
    task (see :mod:`crowd.store.review`).
    Gold tasks are left out unless ``?include_gold=true``, which adds them with their known
    label as ``label`` and ``gold`` (null on regular tasks), ``confidence`` null and status
    ``complete``.
    ``prediction`` is the newest prediction of the task by any model (``{model, label,
    confidence}``, null without one; see :mod:`crowd.api.predictions`).
    ``chosen_method`` and ``choice_reason`` are those of run ``last_run_id`` (see the runs).
    """
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    since_run = body.int_arg("since_run")
    status = body.choice_arg("status", ("complete", "pending"))
    with_posteriors = body.flag_arg("posteriors")
    include_gold = body.flag_arg("include_gold")
    if project.type != typed.CATEGORICAL:
        return _typed_results(project, after, limit, since_run, status, include_gold)
    with deps.db().transaction() as cur:
        # One snapshot for the page and last_run_id: a run committing between the two reads
        # would otherwise be skipped for good by a client polling with since_run.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        last_run_id, chosen_method, choice_reason = runs.last_published(cur, project.id)
        rows = results.page(
            cur,
            project.id,
            after,
            limit,
            since_run=since_run,
            status=status,
            include_gold=include_gold,
        )
    out = []
    labels = project.labels
    for (task_id, external_id, answers, complete, run_id, label, confidence, used, posteriors,
         mv_label, mv_votes, model_label, model_confidence, auto, gold,
         *prediction) in rows:  # fmt: skip
        item: dict[str, Any] = {"task_id": task_id, "external_id": external_id}
        by_model = auto and run_id is None and model_label is not None
        if gold is not None:  # a control task: its known label, not an estimate
            item.update(label=labels[gold], confidence=None, run_id=None)
        elif by_model:  # auto-labelled: no crowd answer, the model's label stands
            item.update(label=labels[model_label], confidence=round(model_confidence, 6),
                        run_id=None)  # fmt: skip
        elif run_id is not None:
            item.update(label=labels[label], confidence=round(confidence, 6), run_id=run_id)
        else:
            item.update(
                label=labels[mv_label] if mv_label is not None else None,
                confidence=round(mv_votes / answers, 6) if answers else None,
                run_id=None,
            )
        item.update(
            answers=answers,
            aggregated_answers=used if run_id is not None else 0,
            status="complete" if complete else "pending",
        )
        if include_gold:
            item["gold"] = labels[gold] if gold is not None else None
        if project.model is not None or project.review is not None:
            item.update(
                label_source="gold" if gold is not None else "model" if by_model else "crowd",
                model_label=labels[model_label] if model_label is not None else None,
                model_confidence=(
                    round(model_confidence, 6) if model_confidence is not None else None
                ),
            )
        item["prediction"] = predictions.to_json(labels, *prediction)
        if with_posteriors:
            item["posteriors"] = (
                {labels[k]: round(float(p), 6) for k, p in enumerate(posteriors)}
                if posteriors is not None
                else None
            )
        out.append(item)
    return jsonify(
        {
            "results": out,
            "last_run_id": last_run_id,
            "chosen_method": chosen_method,
            "choice_reason": choice_reason,
            "next_cursor": body.next_cursor([r[0] for r in rows], limit),
        }
    )


def _typed_results(
    project: Project,
    after: int,
    limit: int,
    since_run: int | None,
    status: str | None,
    include_gold: bool,
) -> ResponseReturnValue:
    """A typed project's results (docs/TYPES.md): per task the type's result fields
    (``labels`` and ``probabilities``; ``value`` and ``interval``; ``winner``,
    ``probabilities`` and the ``left``/``right`` item ids), ``confidence``, ``run_id`` (null
    until a run covers the task), answers and status; gold tasks (``?include_gold=true``)
    carry their known answer as ``gold``. ``since_run`` and ``status`` as for categorical."""
    with deps.db().transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        last_run_id, chosen_method, choice_reason = runs.last_published(cur, project.id)
        rows = typed_store.page(
            cur,
            project,
            after,
            limit,
            since_run=since_run,
            status=status,
            include_gold=include_gold,
        )
    out = []
    for (task_id, external_id, answers, complete, run_id, used, gold, gold_value, gold_set,
         data, *result) in rows:  # fmt: skip
        item: dict[str, Any] = {"task_id": task_id, "external_id": external_id}
        if project.type == "pairwise":
            item.update(left=data["left"]["id"], right=data["right"]["id"])
        item.update(typed_store.result_json(project, None if gold is not None else result))
        item.update(
            run_id=run_id if gold is None else None,
            answers=answers,
            aggregated_answers=used if run_id is not None and gold is None else 0,
            status="complete" if complete else "pending",
        )
        if include_gold:
            item["gold"] = (
                typed_store.gold_json(project, gold, gold_value, gold_set)
                if gold is not None
                else None
            )
        out.append(item)
    return jsonify(
        {
            "type": project.type,
            "results": out,
            "last_run_id": last_run_id,
            "chosen_method": chosen_method,
            "choice_reason": choice_reason,
            "next_cursor": body.next_cursor([r[0] for r in rows], limit),
        }
    )


@bp.get("/<int:project_id>/ranking")
@auth.require(*MANAGERS)
def ranking(project_id: int) -> ResponseReturnValue:
    """A pairwise project's items in ranking order, from its newest run: per item its
    ``score`` (log-odds scale), 90% ``interval``, ``rank`` within its ``component`` (0 is the
    largest group of items connected by comparisons; scores of different components are on
    no common scale) and ``comparisons``. Also ``components`` and the run's
    ``position_bias`` (the left side's advantage, a log-odds). Paged with ``cursor``."""
    project = auth.project_for_requester(project_id)
    if project.type != "pairwise":
        raise Invalid(
            f"ranking: project {project.id} is {project.type}; only pairwise projects have"
            " a ranking (read its results instead)",
            code="not_pairwise",
        )
    after, limit = body.page_params()
    with deps.db().transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows = typed_store.ranking_page(cur, project.id, after, limit)
        items, components, bias = typed_store.ranking_summary(cur, project.id)
        last_run_id = runs.last_published(cur, project.id)[0]
    return jsonify(
        {
            "items": [
                {
                    "item": item,
                    "score": round(score, 6),
                    "interval": [round(low, 6), round(high, 6)],
                    "rank": rank,
                    "component": component,
                    "comparisons": comparisons,
                }
                for _, item, score, low, high, rank, component, comparisons, _ in rows
            ],
            "total_items": items,
            "components": components,
            "position_bias": round(bias, 6) if bias is not None else None,
            "last_run_id": last_run_id,
            "next_cursor": body.next_cursor([r[0] for r in rows], limit),
        }
    )


@bp.get("/<int:project_id>/answers")
@auth.require(*MANAGERS)
def list_answers(project_id: int) -> ResponseReturnValue:
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    if project.type != typed.CATEGORICAL:
        with deps.db().transaction() as cur:
            rows = typed_store.answers_page(cur, project.id, after, limit)
        return jsonify(
            {
                "answers": [
                    {
                        "id": answer_id,
                        "task_id": task_id,
                        "external_id": external_id,
                        "worker_id": worker_id,
                        **typed.answer_json(project, label, value, label_set),
                        "created_at": at.isoformat(),
                    }
                    for answer_id, task_id, external_id, worker_id, label, value, label_set, at in rows
                ],
                "next_cursor": body.next_cursor([r[0] for r in rows], limit),
            }
        )
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
