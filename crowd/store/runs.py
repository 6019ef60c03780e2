"""Aggregation runs: their records, and publishing a finished run's output atomically.

A run row goes ``queued`` -> ``running`` -> ``succeeded`` | ``failed``. Everything a run
produces (task results, worker estimates, dynamic-overlap decisions, bans, the run's own
figures and the project's ``last_run_id``) is written by :func:`publish` in one transaction:
readers see the previous run's output or this one's, never a mix, and a run that dies before
committing leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg2.extras import Json, execute_values

from crowd.em.live import CONFIDENCE_TOL, RunResult
from crowd.em.quality import (
    RuleEvidence,
    Verdict,
    WorkerFigures,
    describe,
    judge,
    project_rules,
    reversed_evidence,
)
from crowd.em.stamping import stamp_rule
from crowd.store import job_rows
from crowd.store.assignments import release_held_by
from crowd.store.columns import copy_nullable, copy_rows, pg_array
from crowd.store.db import Cursor, one
from crowd.store.job_rows import JobStatus, Table
from crowd.store.projects import Project

RunStatus = JobStatus


_TABLE: Table = "aggregation_runs"
_COLUMNS = (
    "id, project_id, status, trigger, method, created_at, started_at, finished_at, answers,"
    " tasks, workers, iterations, converged, objective, warm_start, error, chosen_method,"
    " choice_reason, voters, load"
)


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    status: str
    trigger: str
    method: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    answers: int | None
    tasks: int | None
    workers: int | None
    iterations: int | None
    converged: bool | None
    objective: float | None
    warm_start: bool | None
    error: str | None
    chosen_method: str | None = None
    choice_reason: str | None = None
    voters: list[dict[str, Any]] | None = None
    #: How the run read the answers: "incremental" (the worker's kept copy and the new
    #: answers) or "full: <why>" (crowd/store/answer_state.py); None until it read them.
    load: str | None = None

    @property
    def seconds(self) -> float | None:
        """How long the run took, from its start to its publication (or failure), to the
        millisecond; None until it ends."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "project_id": self.project_id,
            "status": self.status,
            "trigger": self.trigger,
            "method": self.method,
            "created_at": at(self.created_at),
            "started_at": at(self.started_at),
            "finished_at": at(self.finished_at),
            "seconds": self.seconds,
            "answers": self.answers,
            "tasks": self.tasks,
            "workers": self.workers,
            "iterations": self.iterations,
            "converged": self.converged,
            "objective": self.objective,
            "warm_start": self.warm_start,
            "error": self.error,
            "chosen_method": self.chosen_method,
            "choice_reason": self.choice_reason,
            "voters": self.voters,
            "load": self.load,
        }


def create(cur: Cursor, project_id: int, trigger: str) -> Run:
    cur.execute(
        "INSERT INTO aggregation_runs (project_id, status, trigger, method)"
        " SELECT id, 'queued', %s, method FROM projects WHERE id = %s"
        f" RETURNING {_COLUMNS}",
        (trigger, project_id),
    )
    return Run(*one(cur))


def get(cur: Cursor, project_id: int, run_id: int) -> Run | None:
    row = job_rows.get(cur, _TABLE, _COLUMNS, project_id, run_id)
    return Run(*row) if row else None


def page(cur: Cursor, project_id: int, before_id: int, limit: int) -> list[Run]:
    """The project's runs, newest first, with ids below ``before_id``."""
    return [Run(*r) for r in job_rows.page(cur, _TABLE, _COLUMNS, project_id, before_id, limit)]


def last_published(cur: Cursor, project_id: int) -> tuple[int | None, str | None, str | None]:
    """``(last_run_id, chosen_method, choice_reason)`` of the project's newest published run
    (all null before one)."""
    cur.execute(
        "SELECT p.last_run_id, r.chosen_method, r.choice_reason FROM projects p"
        " LEFT JOIN aggregation_runs r ON r.id = p.last_run_id AND r.project_id = p.id"
        " WHERE p.id = %s",
        (project_id,),
    )
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else (None, None, None)


def start(cur: Cursor, project_id: int, run_id: int) -> bool:
    """Mark a queued run running; False if it is not queued (already done, or reaped)."""
    return job_rows.start(cur, _TABLE, project_id, run_id)


def fail(cur: Cursor, project_id: int, run_id: int, error: str) -> None:
    job_rows.fail(cur, _TABLE, project_id, run_id, error)


def open_runs(cur: Cursor) -> list[tuple[int, int, str, datetime]]:
    """``(run_id, project_id, status, created_at)`` of every queued or running run."""
    return job_rows.open_rows(cur, _TABLE)


def behind(cur: Cursor) -> list[int]:
    """Projects with answers newer than their last published run and no run queued or
    running: a stale mark was lost (Redis down or restarted when the answer came). Reads
    the maintained counters (migration 0009), not every task: workers call it every 15 s."""
    cur.execute(
        """
        SELECT p.id FROM projects p
        JOIN (SELECT project_id, sum(answers) AS n FROM project_counts GROUP BY project_id) t
          ON t.project_id = p.id
        LEFT JOIN aggregation_runs r ON r.id = p.last_run_id AND r.project_id = p.id
        WHERE t.n > coalesce(r.answers_total, 0)
          AND NOT EXISTS (SELECT 1 FROM aggregation_runs o WHERE o.project_id = p.id
                          AND o.status IN ('queued', 'running'))
        ORDER BY p.id
        """
    )
    return [row[0] for row in cur.fetchall()]


def record_load(
    cur: Cursor, project_id: int, run_id: int, load: str, load_seconds: float, fit_seconds: float
) -> None:
    """Record how a run read its answers and how long reading and fitting took (call in its
    publish transaction)."""
    cur.execute(
        "UPDATE aggregation_runs SET load = %s, load_seconds = %s, fit_seconds = %s"
        " WHERE id = %s AND project_id = %s",
        (load, load_seconds, fit_seconds, run_id, project_id),
    )


def publish(
    cur: Cursor,
    run_id: int,
    project: Project,
    result: RunResult,
    rows: np.ndarray,
    answers_total: int,
    cold_answers: int,
) -> int:
    """Write a run's output; returns how many task results changed.

    Only the task results at indices ``rows`` are written: the caller leaves out gold tasks
    (they get no result row) and rows equal to the published ones (see
    :func:`crowd.em.live.changed_rows`), and the upsert checks again, so ``run_id`` on a row
    is the run that last changed it and ``since_run`` polling returns just the changes.
    Then dynamic overlap and the quality rules are applied (see :func:`apply_overlap`,
    :func:`apply_bans`).
    """
    cur.execute(
        "CREATE TEMP TABLE new_results (task_id bigint, label smallint, confidence double"
        " precision, decision double precision, answers integer, posteriors real[])"
        " ON COMMIT DROP"
    )
    lines = [
        f"{int(result.task_ids[i])}\t{int(result.labels[i])}\t{float(result.confidence[i])!r}\t"
        f"{float(result.decision[i])!r}\t"
        f"{int(result.task_answers[i])}\t{pg_array(result.posteriors[i])}\n"
        for i in rows.tolist()
    ]
    copy_rows(
        cur, "new_results", "task_id, label, confidence, decision, answers, posteriors", lines
    )
    cur.execute(
        """
        INSERT INTO task_results AS r (task_id, project_id, run_id, label, confidence, decision,
                                       answers, posteriors)
        SELECT n.task_id, %s, %s, n.label, n.confidence, n.decision, n.answers, n.posteriors
        FROM new_results n
        ON CONFLICT (task_id, project_id) DO UPDATE SET
            run_id = excluded.run_id, label = excluded.label, confidence = excluded.confidence,
            decision = excluded.decision,
            answers = excluded.answers, posteriors = excluded.posteriors
        WHERE r.label <> excluded.label OR r.answers <> excluded.answers
           OR abs(r.confidence - excluded.confidence) > %s
           OR abs(r.decision - excluded.decision) > %s
        """,
        (project.id, run_id, CONFIDENCE_TOL, CONFIDENCE_TOL),
    )
    changed = int(cur.rowcount)

    cur.execute(
        "CREATE TEMP TABLE new_workers (worker_id bigint, answers integer, accuracy double"
        " precision, accuracy_n double precision, accuracy_right double precision,"
        " confusion double precision[],"
        " gold_answers integer, gold_correct integer, stamp_rate double precision,"
        " review_answers integer, stamp_n double precision, stamp_looked double precision)"
        " ON COMMIT DROP"
    )
    stamp = result.stamp_rate
    reviews = result.review_answers
    workers = [
        f"{w}\t{int(result.worker_answers[i])}\t{float(result.accuracy[i])!r}\t"
        f"{float(result.accuracy_n[i])!r}\t{float(result.accuracy_right[i])!r}\t"
        f"{pg_array(result.confusion[i])}\t{int(result.gold_answers[i])}\t"
        f"{int(result.gold_correct[i])}\t{copy_nullable(stamp, i)}\t"
        f"{copy_nullable(reviews, i, integer=True)}\t{copy_nullable(result.stamp_n, i)}\t"
        f"{copy_nullable(result.stamp_looked, i)}\n"
        for i, w in enumerate(result.worker_ids.tolist())
    ]
    copy_rows(
        cur,
        "new_workers",
        "worker_id, answers, accuracy, accuracy_n, accuracy_right, confusion, gold_answers,"
        " gold_correct, stamp_rate, review_answers, stamp_n, stamp_looked",
        workers,
    )
    cur.execute(
        """
        INSERT INTO project_workers AS pw (project_id, worker_id, run_id, answers, accuracy,
                                           accuracy_n, accuracy_right, confusion, gold_answers,
                                           gold_correct, stamp_rate, review_answers, stamp_n,
                                           stamp_looked)
        SELECT %s, n.worker_id, %s, n.answers, n.accuracy, n.accuracy_n, n.accuracy_right,
               n.confusion, n.gold_answers, n.gold_correct, n.stamp_rate, n.review_answers,
               n.stamp_n, n.stamp_looked
        FROM new_workers n
        ON CONFLICT (project_id, worker_id) DO UPDATE SET
            run_id = excluded.run_id, answers = excluded.answers, accuracy = excluded.accuracy,
            accuracy_n = excluded.accuracy_n, accuracy_right = excluded.accuracy_right,
            confusion = excluded.confusion,
            gold_answers = excluded.gold_answers, gold_correct = excluded.gold_correct,
            stamp_rate = excluded.stamp_rate, review_answers = excluded.review_answers,
            stamp_n = excluded.stamp_n, stamp_looked = excluded.stamp_looked
        """,
        (project.id, run_id),
    )
    if project.dynamic:
        apply_overlap(cur, project)
    apply_bans(cur, project)
    cur.execute(
        """
        UPDATE aggregation_runs SET status = 'succeeded', finished_at = clock_timestamp(), answers = %s,
            answers_total = %s, cold_answers = %s, tasks = %s, workers = %s, iterations = %s, converged = %s, objective = %s,
            warm_start = %s, priors = %s, chosen_method = %s, choice_reason = %s, voters = %s
        WHERE id = %s AND project_id = %s
        """,
        (
            int(result.task_answers.sum()),
            answers_total,
            cold_answers,
            int(result.task_ids.size),
            int(result.worker_ids.size),
            result.n_iter,
            result.converged,
            result.objective,
            result.warm_start,
            [float(p) for p in result.priors],
            result.method,
            result.reason,
            Json([v.to_json() for v in result.voters]) if result.voters else None,
            run_id,
            project.id,
        ),
    )
    cur.execute("UPDATE projects SET last_run_id = %s WHERE id = %s", (run_id, project.id))
    return changed


def apply_overlap(cur: Cursor, project: Project) -> None:
    """Dynamic overlap, from the results just written.

    A task with at least ``overlap`` answers whose decision confidence (``task_results.decision``:
    the label's probability for this rule, see :func:`crowd.em.live.fit_run`) reaches the
    target is closed (``done``): it gets no more assignments. A task whose slots are all
    answered and whose decision confidence is below the target gets one more slot, up to
    ``max_overlap``. A closed task whose decision confidence later falls below the target is
    open again. Decisions use the answers the run saw (``task_results.answers``), not answers
    that arrived while it ran: those wait for the next run. Only rows that change are written.
    A review-lane task (crowd/store/review.py) has the review setting's ``overlap`` and
    ``max_overlap`` instead of the project's.

    Answers of banned workers left out of the run (``exclude_banned``) still fill their slots,
    so they count as answered slots here: a task that still needs answers (too few counted,
    or not confident) gets one more slot, instead of waiting for answers no one can give.
    """
    cur.execute(
        """
        WITH excluded AS (
            SELECT a.task_id, count(*) AS n
            FROM project_workers pw JOIN assignments a
              ON a.worker_id = pw.worker_id AND a.project_id = pw.project_id
            WHERE pw.project_id = %(project)s AND pw.status = 'banned' AND %(exclude)s
              AND a.status = 'answered'
            GROUP BY a.task_id
        ), decided AS (
            SELECT t.id,
                   (r.answers >= l.overlap AND r.decision >= %(target)s)
                   -- A review-lane task answered up to its cap is closed too: the progress
                   -- counters know only the project's cap (migration 0009).
                   OR (t.proposal IS NOT NULL AND %(review)s AND t.target >= l.cap
                       AND r.answers + coalesce(x.n, 0) >= t.target) AS done,
                   CASE WHEN r.answers + coalesce(x.n, 0) >= t.target
                             AND NOT (r.answers >= l.overlap AND r.decision >= %(target)s)
                             AND t.target < l.cap
                        THEN t.target + 1 ELSE t.target END AS target
            FROM tasks t JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
            LEFT JOIN excluded x ON x.task_id = t.id
            -- A review-lane task's minimum and cap are the review setting's.
            CROSS JOIN LATERAL (
                SELECT CASE WHEN t.proposal IS NULL OR NOT %(review)s THEN %(overlap)s
                            ELSE %(review_overlap)s END AS overlap,
                       CASE WHEN t.proposal IS NULL OR NOT %(review)s THEN %(cap)s
                            ELSE %(review_cap)s END AS cap
            ) l
            WHERE t.project_id = %(project)s AND t.gold IS NULL
        )
        UPDATE tasks t SET done = d.done, target = d.target
        FROM decided d
        WHERE t.id = d.id AND t.project_id = %(project)s
          AND (t.done <> d.done OR t.target <> d.target)
        """,
        {
            "overlap": project.overlap,
            "target": project.confidence_target,
            "cap": project.overlap_cap,
            "review": project.review is not None,
            "review_overlap": (project.review or {}).get("overlap", project.overlap),
            "review_cap": (project.review or {}).get("max_overlap", project.overlap_cap),
            "project": project.id,
            "exclude": project.exclude_banned,
        },
    )


def verdict(
    project: Project,
    workers: WorkerFigures,
    stamping: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Verdict:
    """The quality rules' decision on workers, as the project's settings say (the function
    :func:`apply_bans` calls, and benchmarks/quality_rules.py with it). ``stamping``: each
    worker's review answers and stamp evidence ``(n, looked)`` (the last run's, see
    :func:`crowd.em.stamping.stamp_evidence`), for ``qc_min_trap_catch``."""
    rules = project_rules(
        workers,
        min_accuracy=project.qc_min_accuracy,
        min_gold_accuracy=project.qc_min_gold_accuracy,
        min_answers=project.qc_min_answers,
        min_gold_answers=project.qc_min_gold_answers,
        gold_window=project.gold_window,
    )
    if project.qc_min_trap_catch is not None and stamping is not None:
        rules["trap"] = stamp_rule(
            project.qc_min_trap_catch,
            workers.answers,
            workers.judge_after,
            project.qc_min_answers,
            *stamping,
        )
    return judge(rules, project.qc_confidence)


def _reason(rule: str, found: RuleEvidence, i: int, answers: int, gold: int) -> str:
    p, low, high = found.p_below[i], found.low[i], found.high[i]
    evidence = (
        f"(95% interval {low:.3f}-{high:.3f}) is below the project minimum {found.threshold:g}"
        f" with probability {p:.3f}"
    )
    if rule == "gold":
        return f"accuracy on the last {gold} gold tasks {found.estimate[i]:.3f} {evidence}"
    if rule == "accuracy":
        return f"estimated accuracy {found.estimate[i]:.3f} {evidence} after {answers} answers"
    if rule == "trap":
        return (
            f"share of proposals checked rather than accepted unseen {found.estimate[i]:.3f}"
            f" {evidence} (stamp rate {1.0 - found.estimate[i]:.3f}) after {answers} answers"
        )
    return f"{rule} {found.estimate[i]:.3f} {evidence}"


def apply_bans(cur: Cursor, project: Project) -> list[int]:
    """Judge the project's workers by the quality rules (:func:`verdict`), write each one's
    evidence, ban those the rules reject and release their live reservations; flag banned
    workers whose banning rule's evidence has reversed (the ban stays: the requester
    decides). Returns the ids of workers banned now. A worker unbanned by the requester is
    judged again only after ``qc_min_answers`` more answers (``judge_after``)."""
    if (
        project.qc_min_accuracy is None
        and project.qc_min_gold_accuracy is None
        and project.qc_min_trap_catch is None
    ):
        cur.execute(
            "UPDATE project_workers SET evidence = NULL, evidence_reversed = false"
            " WHERE project_id = %s AND (evidence IS NOT NULL OR evidence_reversed)",
            (project.id,),
        )
        return []
    cur.execute(
        "SELECT worker_id, status, ban_rule, answers, judge_after, accuracy,"
        " coalesce(accuracy_n, 0), coalesce(accuracy_right, 0), gold_answers, gold_correct,"
        " coalesce(review_answers, 0), coalesce(stamp_n, 0), coalesce(stamp_looked, 0)"
        # Locked: a requester's unban or ban waits until the decisions are written.
        " FROM project_workers WHERE project_id = %s ORDER BY worker_id FOR UPDATE",
        (project.id,),
    )
    rows = cur.fetchall()
    if not rows:
        return []
    columns = np.array([r[3:] for r in rows], dtype=np.float64).T  # None -> NaN
    figures = WorkerFigures(*columns[:7])
    stamping = (columns[7], columns[8], columns[9])
    found = verdict(project, figures, stamping)
    banned: list[int] = []
    updates = []
    for i, (wid, status, ban_rule, answers, *_rest) in enumerate(rows):
        evidence = {name: describe(e, i) for name, e in found.evidence.items()}
        rule, reason = ban_rule, None
        if status == "active" and found.ban[i]:
            rule = found.rule[i]
            assert rule is not None
            reason = _reason(rule, found.evidence[rule], i, answers, int(figures.gold_answers[i]))
            banned.append(wid)
        # Only a rule's ban can be reversed by that rule's evidence; a new ban is not.
        reverse = (
            status == "banned"
            and rule in found.evidence
            and bool(reversed_evidence(found.evidence[rule])[i])
        )
        updates.append((wid, Json(evidence), reason, rule if reason else None, reverse))
    execute_values(
        cur,
        f"""
        UPDATE project_workers pw SET
            evidence = u.evidence,
            evidence_reversed = u.reverse,
            status = CASE WHEN u.reason IS NULL THEN pw.status ELSE 'banned' END,
            banned_at = CASE WHEN u.reason IS NULL THEN pw.banned_at ELSE now() END,
            reason = coalesce(u.reason, pw.reason),
            ban_rule = coalesce(u.rule, pw.ban_rule)
        FROM (VALUES %s) AS u (worker_id, evidence, reason, rule, reverse)
        WHERE pw.project_id = {int(project.id)} AND pw.worker_id = u.worker_id
        """,
        updates,
        template="(%s::bigint, %s::jsonb, %s::text, %s::text, %s::boolean)",
    )
    if banned:
        release_held_by(cur, project.id, banned)
    return banned
