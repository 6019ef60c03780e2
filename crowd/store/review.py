"""The review lane: which tasks are shown to workers with a model's proposal, which are
accepted with no human answer (auto-accept), and which are audited (docs/REVIEW.md).

Guarantees, and how each is kept:

* A task's lane is stored on its row (``tasks.proposal``: the proposed label, NULL for a blind
  task), so a fetch reads it off the row it locks and copies it to the assignment
  (``assignments.proposal``) in the same statement: what a worker was shown is recorded with
  the reservation, and a blind task has no proposal to leak.
* Routing (:func:`route`) decides only tasks nobody has answered or holds (``answers = 0 AND
  taken = 0``, re-checked by the UPDATE under the row lock), so a task's answers all come from
  one lane. It sets the task's ``target`` to its lane's overlap at the same time, so the
  ``taken <= target`` invariant of :mod:`crowd.store.assignments` caps both lanes alike.
  Only rows whose lane changes are locked; rows another transaction holds (a fetch taking
  the task, a sweep) are skipped, and the next routing (the next prediction, or the project's
  next run) decides them.
* An auto-accepted task is closed in the same UPDATE that decides it (``done``, and the
  prediction as its ``model_label``, as the built-in model's auto-labels), so no fetch can
  hand it out after it is accepted.
* Projects without a review setting are never routed: their tasks keep ``proposal`` NULL and
  the project's overlap, and a fetch costs what it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crowd.store.db import Cursor, id_array
from crowd.store.projects import COMPLETE, Project

#: SQL for a task's audit draw: a uniform number in [0, 1) fixed by its id, so routing the
#: task again (a newer prediction, a changed setting) draws the same.
_DRAW = "(('x' || substr(md5('audit:' || t.id), 1, 8))::bit(32)::bigint / 4294967296.0)"


def route(cur: Cursor, project: Project, task_ids: Sequence[int] | None = None) -> int:
    """Put the project's undecided tasks (those among ``task_ids``, or all) in their lanes
    from their newest prediction; returns how many tasks changed.

    * Review lane: the newest prediction's confidence is at least ``review.blind_below``; the
      task needs ``review.overlap`` answers and shows the predicted label.
    * Auto-accepted: with ``review.accept_at`` set, a confidence at least ``accept_at`` and
      at least its model's calibrated threshold (:func:`thresholds`) closes the task with the
      prediction as its label (``label_source: "model"``), no human answer.
    * Audited: a would-be-accepted task (confidence at least ``accept_at``) drawn at
      ``review.audit_rate`` is labelled blind instead, and its crowd label audits the model.
    * Blind: no prediction, or a less confident one; the project's ``overlap``, no proposal.

    With the review setting off, every undecided task is blind.
    """
    review: dict[str, Any] = project.review or {}
    accept_at = review.get("accept_at")
    calibrated = thresholds(cur, project) if accept_at is not None else {}
    params = {
        "project": project.id,
        "ids": id_array(task_ids) if task_ids is not None else None,
        "on": project.review is not None,
        "blind_below": review.get("blind_below", 1.0),
        "review_overlap": review.get("overlap", project.overlap),
        "overlap": project.overlap,
        "accept_at": accept_at,
        "audit_rate": review.get("audit_rate", 0.0),
        "models": list(calibrated),
        "thresholds": list(calibrated.values()),
    }
    cur.execute(
        f"""
        WITH predicted AS (
            SELECT t.id, t.proposal AS was_proposal, t.audit AS was_audit,
                   t.target AS was_target, pr.label, pr.confidence,
                   %(on)s AND pr.confidence >= %(blind_below)s::real AS reviewed,
                   %(on)s AND %(accept_at)s::real IS NOT NULL
                       AND pr.confidence >= %(accept_at)s::real AS acceptable,
                   {_DRAW} < %(audit_rate)s AS drawn,
                   th.threshold
            FROM tasks t
            LEFT JOIN LATERAL (
                SELECT p.model, p.label, p.confidence FROM predictions p
                WHERE p.task_id = t.id AND p.project_id = t.project_id ORDER BY p.id DESC LIMIT 1
            ) pr ON true
            LEFT JOIN unnest(%(models)s::text[], %(thresholds)s::real[]) AS th (model, threshold)
              ON th.model = pr.model
            WHERE t.project_id = %(project)s AND t.gold IS NULL AND NOT t.done
              AND t.answers = 0 AND t.taken = 0
              AND (%(ids)s::bigint[] IS NULL OR t.id = ANY (%(ids)s::bigint[]))
        ), decided AS (
            SELECT *, CASE WHEN proposal IS NULL THEN %(overlap)s
                           ELSE %(review_overlap)s END AS new_target
            FROM (
                SELECT id, label, confidence, was_proposal, was_audit, was_target,
                       coalesce(acceptable AND drawn, false) AS audit,
                       coalesce(acceptable AND NOT drawn AND confidence >= threshold, false)
                           AS accept,
                       CASE WHEN reviewed AND NOT coalesce(acceptable AND drawn, false)
                            THEN label END AS proposal
                FROM predicted
            ) x
        ), changed AS (
            -- Only rows whose lane changes are locked: routing a settled project writes
            -- nothing (it runs after every run of a project with the review lane on).
            SELECT * FROM decided
            WHERE accept OR audit <> was_audit OR proposal IS DISTINCT FROM was_proposal
               OR new_target <> was_target
        ), locked AS (
            SELECT t.id FROM tasks t JOIN changed c ON c.id = t.id
            WHERE t.project_id = %(project)s
            ORDER BY t.id
            FOR UPDATE OF t SKIP LOCKED
        )
        UPDATE tasks t SET proposal = d.proposal, audit = d.audit, target = d.new_target,
               done = d.accept, auto_labelled = d.accept,
               model_label = CASE WHEN d.accept THEN d.label ELSE t.model_label END,
               model_confidence = CASE WHEN d.accept THEN d.confidence
                                       ELSE t.model_confidence END,
               auto_after_run = CASE WHEN d.accept
                   THEN (SELECT coalesce(last_run_id, 0) FROM projects WHERE id = %(project)s)
                   ELSE t.auto_after_run END
        FROM changed d JOIN locked l ON l.id = d.id
        -- Re-checked on the locked row: a fetch may have taken the task meanwhile.
        WHERE t.id = d.id AND t.project_id = %(project)s
          AND t.answers = 0 AND t.taken = 0 AND NOT t.done
        """,
        params,
    )
    return int(cur.rowcount)


def evidence(cur: Cursor, project: Project, floor: float) -> list[tuple[str, float, bool]]:
    """``(model, confidence, correct)`` of every prediction with a known right answer and a
    confidence of at least ``floor``: on gold tasks (the gold label) and on audited tasks with
    a complete crowd result (the published label)."""
    cur.execute(
        f"""
        SELECT q.model, q.confidence, q.label = coalesce(t.gold, r.label)
        FROM predictions q JOIN tasks t ON t.id = q.task_id AND t.project_id = q.project_id
        JOIN projects p ON p.id = t.project_id
        LEFT JOIN task_results r
          ON r.task_id = t.id AND r.project_id = t.project_id AND t.gold IS NULL
        WHERE q.project_id = %s AND q.confidence >= %s::real
          AND (t.gold IS NOT NULL OR (t.audit AND r.label IS NOT NULL AND {COMPLETE}))
        """,
        (project.id, floor),
    )
    return [(m, float(c), bool(ok)) for m, c, ok in cur.fetchall()]


def thresholds(cur: Cursor, project: Project) -> dict[str, float]:
    """Each model's auto-accept threshold: the lowest confidence, at least ``accept_at``, above
    which its predictions on gold and audited tasks are right at a rate whose one-sided 95%
    lower bound (Wilson) is at least ``accept_at``, on at least 20 such tasks. Models without
    enough evidence have none: nothing of theirs is accepted yet."""
    accept_at = (project.review or {}).get("accept_at")
    if accept_at is None:
        return {}
    from crowd.learn.calibrate import calibrate_threshold  # scikit-learn: only when used

    by_model: dict[str, list[tuple[float, bool]]] = {}
    for model, confidence, correct in evidence(cur, project, accept_at):
        by_model.setdefault(model, []).append((confidence, correct))
    out = {}
    for model, rows in by_model.items():
        conf = np.array([c for c, _ in rows])
        ok = np.array([k for _, k in rows])
        found = calibrate_threshold(conf, ok, accept_at)
        if found is not None:
            out[model] = max(found, float(np.float32(accept_at)))
    return out


def leave_lane(cur: Cursor, project: Project) -> None:
    """The review setting was turned off: open tasks still in the review lane become blind
    tasks with the project's overlap (keeping any answers they have)."""
    cur.execute(
        "UPDATE tasks SET proposal = NULL, target = greatest(%s, taken)"
        " WHERE project_id = %s AND proposal IS NOT NULL AND NOT done",
        (project.overlap, project.id),
    )


def report(cur: Cursor, project: Project) -> dict[str, dict[str, int]]:
    """Per model name: ``predictions``, ``auto_accepted`` (tasks closed with its prediction),
    ``audited`` (would-be-accepted tasks sent to blind labelling), ``audits_labelled`` (those
    with a complete crowd label) and ``audits_agree`` (whose crowd label is the prediction's).

    Each count reads an index: predictions by ``predictions_model``, accepted tasks by
    ``tasks_auto_after_run``, audited ones by ``tasks_audit``."""
    out: dict[str, dict[str, int]] = {}

    def row(model: str) -> dict[str, int]:
        return out.setdefault(
            model,
            dict.fromkeys(
                ("predictions", "auto_accepted", "audited", "audits_labelled", "audits_agree"), 0
            ),
        )

    cur.execute(
        "SELECT model, count(*) FROM predictions WHERE project_id = %s GROUP BY model",
        (project.id,),
    )
    for model, n in cur.fetchall():
        row(model)["predictions"] = int(n)
    newest = """JOIN LATERAL (
            SELECT q.model, q.label FROM predictions q
            WHERE q.task_id = t.id AND q.project_id = t.project_id
            ORDER BY q.id DESC LIMIT 1) pr ON true"""
    cur.execute(
        f"SELECT pr.model, count(*) FROM tasks t {newest}"
        " WHERE t.project_id = %s AND t.auto_labelled AND t.model_label = pr.label"
        " GROUP BY pr.model",
        (project.id,),
    )
    for model, n in cur.fetchall():
        row(model)["auto_accepted"] = int(n)
    cur.execute(
        f"""
        SELECT pr.model, count(*),
               count(*) FILTER (WHERE r.label IS NOT NULL AND {COMPLETE}),
               count(*) FILTER (WHERE r.label = pr.label AND {COMPLETE})
        FROM tasks t JOIN projects p ON p.id = t.project_id {newest}
        LEFT JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
        WHERE t.project_id = %s AND t.audit GROUP BY pr.model
        """,
        (project.id,),
    )
    for model, n, labelled, agree in cur.fetchall():
        counts = row(model)
        counts.update(audited=int(n), audits_labelled=int(labelled), audits_agree=int(agree))
    return out


#: Buckets of the reliability diagram: confidence [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0].
BUCKETS = 10


def model_figures(cur: Cursor, project_id: int) -> dict[str, dict[str, Any]]:
    """Per model name, what people made of its predictions (the dashboard's review panel):

    * ``predictions``;
    * ``reviewed``: predictions people answered with this label proposed (review-lane answers
      on a non-gold task whose shown proposal is the prediction's label);
      ``review_answers``, and of those ``confirmed`` (the answer is the proposal; the rest
      corrected it);
    * ``gold`` / ``gold_correct``: predictions on gold tasks, and those that are the gold label;
    * ``reviewed_labelled`` / ``reviewed_correct``: reviewed predictions whose task has a
      complete crowd label, and those that are that label;
    * ``buckets``: per confidence tenth (index 0 to 9), over the predictions whose right
      answer people gave (the gold label, or a complete crowd label from answers, blind or
      reviewed; auto-accepted tasks have none): ``[tasks, sum of confidences, correct]``.

    One statement, one pass over the project's predictions: ``GROUPING SETS`` gives the
    per-model and the per-(model, bucket) sums from the same join. It still reads every
    prediction of the project (1.5-2 s per 200k, benchmarks/review_panel.py), so the API
    keeps it in Redis for a while (crowd/api/review.py).
    """
    cur.execute(
        f"""
        WITH shown AS (
            SELECT a.task_id, a.proposal, count(*) AS answers,
                   count(*) FILTER (WHERE a.label = a.proposal) AS confirmed
            FROM assignments a
            WHERE a.project_id = %(project)s AND a.status = 'answered'
              AND a.proposal IS NOT NULL
            GROUP BY a.task_id, a.proposal
        ), pred AS (
            SELECT q.model, q.label, q.confidence, t.gold,
                   least(floor(q.confidence * {BUCKETS})::int, {BUCKETS - 1}) AS bucket,
                   s.task_id IS NOT NULL AND t.gold IS NULL AS reviewed,
                   coalesce(s.answers, 0) AS answers, coalesce(s.confirmed, 0) AS confirmed,
                   CASE WHEN t.gold IS NULL AND NOT t.auto_labelled AND t.answers > 0
                        AND {COMPLETE} THEN r.label END AS crowd
            FROM predictions q
            JOIN tasks t ON t.id = q.task_id AND t.project_id = q.project_id
            JOIN projects p ON p.id = q.project_id
            LEFT JOIN task_results r ON r.task_id = q.task_id AND r.project_id = q.project_id
            LEFT JOIN shown s ON s.task_id = q.task_id AND s.proposal = q.label
            WHERE q.project_id = %(project)s
        )
        SELECT model, bucket, count(*),
               count(*) FILTER (WHERE reviewed),
               coalesce(sum(answers) FILTER (WHERE reviewed), 0),
               coalesce(sum(confirmed) FILTER (WHERE reviewed), 0),
               count(*) FILTER (WHERE gold IS NOT NULL),
               count(*) FILTER (WHERE label = gold),
               count(*) FILTER (WHERE reviewed AND crowd IS NOT NULL),
               count(*) FILTER (WHERE reviewed AND crowd = label),
               count(*) FILTER (WHERE coalesce(gold, crowd) IS NOT NULL),
               coalesce(sum(confidence) FILTER (WHERE coalesce(gold, crowd) IS NOT NULL), 0),
               count(*) FILTER (WHERE label = coalesce(gold, crowd))
        FROM pred
        GROUP BY GROUPING SETS ((model), (model, bucket))
        """,
        {"project": project_id},
    )
    out: dict[str, dict[str, Any]] = {}
    for (
        model,
        bucket,
        n,
        reviewed,
        answers,
        confirmed,
        gold,
        gold_ok,
        lab,
        lab_ok,
        known,
        conf,
        ok,
    ) in cur.fetchall():
        row = out.setdefault(model, {"buckets": [[0, 0.0, 0] for _ in range(BUCKETS)]})
        if bucket is None:
            row.update(
                predictions=int(n),
                reviewed=int(reviewed),
                review_answers=int(answers),
                confirmed=int(confirmed),
                gold=int(gold),
                gold_correct=int(gold_ok),
                reviewed_labelled=int(lab),
                reviewed_correct=int(lab_ok),
            )
        else:
            row["buckets"][bucket] = [int(known), float(conf), int(ok)]
    return out
