"""Typed projects' runs and read-outs (migration 0016, docs/TYPES.md): reading a run's
answers, publishing its output, and the results, ranking and export pages.

Guarantees, as for categorical runs (:mod:`crowd.store.runs`): :func:`publish` writes a
run's task results, worker estimates, item scores, overlap decisions and bans in the one
transaction it is given, so readers see one run's output or the next one's; a task result's
``run_id`` is the run that last changed it (the upsert skips unchanged rows), which is what
``since_run`` polling reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from psycopg2.extras import Json, execute_values

from crowd.em.live import CONFIDENCE_TOL
from crowd.em.typed import Answers, PairwiseWarm, TypedResult
from crowd.store import results
from crowd.store.columns import copy_columns, copy_nullable, copy_rows, pg_array
from crowd.store.db import Cursor
from crowd.store.projects import COMPLETE, Project
from crowd.store.runs import apply_bans, apply_overlap

#: Most labels whose answer sets are read as a bigint bit mask.
MASK_LABELS = 62


def load(cur: Cursor, project: Project) -> tuple[Answers, int, dict[str, np.ndarray], Previous]:
    """A typed run's input, the answers stored (banned workers' included), the published
    results (see :func:`crowd.em.typed.changed_typed`), so a run writes only the rows it
    changes, and the previous run (:func:`previous`). Call first thing in a fresh
    transaction: it makes it REPEATABLE READ, so all of it is one snapshot."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    banned = (
        " AND NOT EXISTS (SELECT 1 FROM project_workers pw WHERE pw.project_id = a.project_id"
        " AND pw.worker_id = a.worker_id AND pw.status = 'banned')"
        if project.exclude_banned
        else ""
    )
    where = f"a.project_id = %s AND a.status = 'answered'{banned}"
    n_labels = len(project.labels)
    # A multilabel answer's set comes as a bit mask (one pass over the answers) while the
    # labels fit in a bigint; beyond, as one (answer, label) row per ticked label.
    masked = project.type == "multilabel" and n_labels <= MASK_LABELS
    mask = "(SELECT coalesce(sum(1::bigint << l), 0) FROM unnest(a.label_set) l)" if masked else "0"
    ints = dict.fromkeys(["id", "task", "worker", "label", "mask"], pa.int64())
    query = cur.mogrify(
        f"SELECT a.id, a.task_id, a.worker_id, a.label, {mask}, coalesce(a.value, 0)"
        f" FROM assignments a WHERE {where}",
        (project.id,),
    ).decode()
    rows = copy_columns(cur, query, {**ints, "value": pa.float64()})
    labels: np.ndarray = rows["label"]
    if masked:
        bits = rows["mask"][:, None] >> np.arange(n_labels, dtype=np.int64)[None, :]
        labels = (bits & 1).astype(np.int8)
    elif project.type == "multilabel":
        ticks = copy_columns(
            cur,
            cur.mogrify(
                f"SELECT a.id, unnest(a.label_set) FROM assignments a WHERE {where}",
                (project.id,),
            ).decode(),
            {"id": pa.int64(), "label": pa.int64()},
        )
        order = np.argsort(rows["id"])
        labels = np.zeros((rows["id"].size, n_labels), dtype=np.int8)
        labels[order[np.searchsorted(rows["id"][order], ticks["id"])], ticks["label"]] = 1
    cur.execute(
        "SELECT id, gold, coalesce(gold_value, 0), gold_set FROM tasks"
        " WHERE project_id = %s AND gold IS NOT NULL ORDER BY id",
        (project.id,),
    )
    gold = cur.fetchall()
    gold_sets = np.zeros((len(gold), n_labels), dtype=np.int8)
    for i, (_, _, _, chosen) in enumerate(gold):
        gold_sets[i, list(chosen or [])] = 1
    pairs = None
    if project.type == "pairwise":
        found = copy_columns(
            cur,
            cur.mogrify(
                "SELECT id, data -> 'left' ->> 'id', data -> 'right' ->> 'id' FROM tasks"
                " WHERE project_id = %s AND (answers > 0 OR gold IS NOT NULL)",
                (project.id,),
            ).decode(),
            {"task": pa.int64(), "left": pa.string(), "right": pa.string()},
        )
        pairs = (found["task"], found["left"], found["right"])
    cur.execute("SELECT coalesce(sum(answers), 0) FROM tasks WHERE project_id = %s", (project.id,))
    total = int(cur.fetchone()[0])  # type: ignore[index]
    answers = Answers(
        answer_ids=rows["id"],
        task_ids=rows["task"],
        worker_ids=rows["worker"],
        labels=labels,
        values=rows["value"],
        gold_task_ids=np.array([g[0] for g in gold], dtype=np.int64),
        gold_labels=np.array([g[1] for g in gold], dtype=np.int64),
        gold_values=np.array([g[2] for g in gold], dtype=np.float64),
        gold_sets=gold_sets,
        pairs=pairs,
    )
    published = copy_columns(
        cur,
        cur.mogrify(
            "SELECT task_id, label, answers, confidence, decision, coalesce(value, 'NaN'),"
            " coalesce(low, 'NaN'), coalesce(high, 'NaN'),"
            " coalesce(array_to_string(label_set, ' '), '') FROM task_results"
            " WHERE project_id = %s ORDER BY task_id",
            (project.id,),
        ).decode(),
        {
            **dict.fromkeys(["task", "label", "answers"], pa.int64()),
            **dict.fromkeys(["confidence", "decision", "value", "low", "high"], pa.float64()),
            "label_set": pa.string(),
        },
    )
    return answers, total, published, previous(cur, project)


@dataclass(frozen=True)
class Previous:
    """What a typed run starts from: ``cold_answers``, the answers of the newest cold fit
    behind the previous run (0 before any run), and ``pairwise``, that run's estimates of a
    pairwise project (None for other types, or before its first run)."""

    cold_answers: int
    pairwise: PairwiseWarm | None


def previous(cur: Cursor, project: Project) -> Previous:
    """The previous run's estimates, read as a categorical run reads its warm start
    (:func:`crowd.store.snapshot.load`): the workers' from ``project_workers``, the run's from
    ``projects.last_run_id``; a pairwise project's item scores from ``item_results``."""
    cur.execute(
        "SELECT r.cold_answers, r.position_bias FROM projects p"
        " JOIN aggregation_runs r ON r.id = p.last_run_id AND r.project_id = p.id WHERE p.id = %s",
        (project.id,),
    )
    last = cur.fetchone()
    if last is None:
        return Previous(0, None)
    cold_answers, position_bias = int(last[0] or 0), last[1]
    if project.type != "pairwise" or position_bias is None:
        return Previous(cold_answers, None)
    items = copy_columns(
        cur,
        cur.mogrify(
            "SELECT item, score FROM item_results WHERE project_id = %s", (project.id,)
        ).decode(),
        {"item": pa.string(), "score": pa.float64()},
    )
    workers = copy_columns(
        cur,
        cur.mogrify(
            "SELECT worker_id, (estimates ->> 'reliability')::float8 FROM project_workers"
            " WHERE project_id = %s AND estimates ? 'reliability'",
            (project.id,),
        ).decode(),
        {"worker": pa.int64(), "reliability": pa.float64()},
    )
    return Previous(
        cold_answers,
        PairwiseWarm(
            items=items["item"],
            scores=items["score"],
            workers=workers["worker"],
            reliability=workers["reliability"],
            position_bias=float(position_bias),
        ),
    )


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def value_tolerance(project: Project) -> float:
    """How far a numeric value or interval end moves before its result is rewritten: the
    confidence tolerance's share of the scale (elsewhere no value is compared)."""
    if project.scale is None:
        return 0.0
    return CONFIDENCE_TOL * (project.scale["max"] - project.scale["min"])


def publish(
    cur: Cursor,
    run_id: int,
    project: Project,
    result: TypedResult,
    answers_total: int,
    rows: np.ndarray | None = None,
    cold_answers: int | None = None,
) -> list[int]:
    """Write a typed run's output (see the module docstring); returns the ids of the tasks
    whose result changed. ``rows``: the indices of the task results to write (the caller
    leaves out rows equal to the published ones, see
    :func:`crowd.em.typed.changed_typed`); every row when None. ``cold_answers``: the
    answers of the newest cold fit behind the result (``answers_total`` when None)."""
    n = result.task_ids.size
    todo = np.arange(n) if rows is None else rows
    # COPY into a temporary table, then one upsert (as crowd.store.runs.publish does): at
    # 100,000s of tasks a tenth of the time of VALUES lists.
    cur.execute(
        "CREATE TEMP TABLE new_typed (task_id bigint, label smallint, confidence double"
        " precision, decision double precision, answers integer, posteriors real[],"
        " value double precision, low double precision, high double precision,"
        " label_set smallint[]) ON COMMIT DROP"
    )
    sets = result.label_sets
    lines = [
        f"{int(result.task_ids[i])}\t{int(result.labels[i])}\t{float(result.confidence[i])!r}\t"
        f"{float(result.decision[i])!r}\t{int(result.task_answers[i])}\t"
        f"{pg_array(result.posteriors[i])}\t{copy_nullable(result.values, i)}\t"
        f"{copy_nullable(result.low, i)}\t{copy_nullable(result.high, i)}\t"
        + ("{" + ",".join(map(str, sets[i])) + "}" if sets else "\\N")
        + "\n"
        for i in todo.tolist()
    ]
    copy_rows(
        cur,
        "new_typed",
        "task_id, label, confidence, decision, answers, posteriors, value, low, high, label_set",
        lines,
    )
    cur.execute(
        f"""
        INSERT INTO task_results AS r (task_id, project_id, run_id, label, confidence,
            decision, answers, posteriors, value, low, high, label_set)
        SELECT n.task_id, {int(project.id)}, {int(run_id)}, n.label, n.confidence,
               n.decision, n.answers, n.posteriors, n.value, n.low, n.high, n.label_set
        FROM new_typed n
        ON CONFLICT (task_id, project_id) DO UPDATE SET
            run_id = excluded.run_id, label = excluded.label,
            confidence = excluded.confidence, decision = excluded.decision,
            answers = excluded.answers, posteriors = excluded.posteriors,
            value = excluded.value, low = excluded.low, high = excluded.high,
            label_set = excluded.label_set
        WHERE r.label <> excluded.label OR r.answers <> excluded.answers
           OR abs(r.confidence - excluded.confidence) > {CONFIDENCE_TOL!r}
           OR abs(r.decision - excluded.decision) > {CONFIDENCE_TOL!r}
           OR r.label_set IS DISTINCT FROM excluded.label_set
           OR (r.value IS NULL) <> (excluded.value IS NULL)
           OR abs(coalesce(r.value - excluded.value, 0)) > {value_tolerance(project)!r}
           OR abs(coalesce(r.low - excluded.low, 0)) > {value_tolerance(project)!r}
           OR abs(coalesce(r.high - excluded.high, 0)) > {value_tolerance(project)!r}
        RETURNING r.task_id
        """
    )
    changed = [row[0] for row in cur.fetchall()]
    workers = [
        (
            int(w),
            int(result.worker_answers[i]),
            _num(result.accuracy[i]),
            _num(result.accuracy_n[i]),
            _num(result.accuracy_right[i]),
            int(result.gold_answers[i]),
            int(result.gold_correct[i]),
            Json(result.estimates[i]),
        )
        for i, w in enumerate(result.worker_ids.tolist())
    ]
    if workers:
        execute_values(
            cur,
            f"""
            INSERT INTO project_workers AS pw (project_id, worker_id, run_id, answers, accuracy,
                accuracy_n, accuracy_right, gold_answers, gold_correct, estimates)
            SELECT {int(project.id)}, n.worker_id, {int(run_id)}, n.answers, n.accuracy,
                   n.accuracy_n, n.accuracy_right, n.gold_answers, n.gold_correct, n.estimates
            FROM (VALUES %s) AS n (worker_id, answers, accuracy, accuracy_n, accuracy_right,
                                   gold_answers, gold_correct, estimates)
            ON CONFLICT (project_id, worker_id) DO UPDATE SET
                run_id = excluded.run_id, answers = excluded.answers,
                accuracy = excluded.accuracy, accuracy_n = excluded.accuracy_n,
                accuracy_right = excluded.accuracy_right, gold_answers = excluded.gold_answers,
                gold_correct = excluded.gold_correct, estimates = excluded.estimates
            """,
            workers,
            template="(%s::bigint, %s::int, %s::float8, %s::float8, %s::float8, %s::int,"
            " %s::int, %s::jsonb)",
            page_size=10_000,
        )
    if result.items is not None:
        _publish_items(cur, run_id, project.id, result)
    if project.dynamic:
        apply_overlap(cur, project)
    apply_bans(cur, project)
    cur.execute(
        """
        UPDATE aggregation_runs SET status = 'succeeded', finished_at = clock_timestamp(),
            answers = %s, answers_total = %s, cold_answers = %s, tasks = %s, workers = %s,
            iterations = %s, converged = %s, objective = %s, warm_start = %s,
            chosen_method = %s, choice_reason = %s, position_bias = %s
        WHERE id = %s AND project_id = %s
        """,
        (
            int(result.worker_answers.sum()),
            answers_total,
            answers_total if cold_answers is None else cold_answers,
            n,
            int(result.worker_ids.size),
            result.n_iter,
            result.converged,
            result.objective,
            result.warm_start,
            result.method,
            f"the {project.type} project's method",
            result.position_bias,
            run_id,
            project.id,
        ),
    )
    cur.execute("UPDATE projects SET last_run_id = %s WHERE id = %s", (run_id, project.id))
    return changed


def _publish_items(cur: Cursor, run_id: int, project_id: int, result: TypedResult) -> None:
    """Replace the project's item scores with the run's (a ranking is read whole or not)."""
    items = result.items
    assert items is not None
    cur.execute("DELETE FROM item_results WHERE project_id = %s", (project_id,))
    execute_values(
        cur,
        "INSERT INTO item_results (project_id, item, run_id, score, low, high, rank, component,"
        " comparisons, position) VALUES %s",
        [
            (
                project_id,
                str(items.names[i]),
                run_id,
                float(items.scores[i]),
                float(items.low[i]),
                float(items.high[i]),
                int(items.ranks[i]),
                int(items.components[i]),
                int(items.comparisons[i]),
                i + 1,
            )
            for i in range(items.names.size)
        ],
        page_size=10_000,
    )


def result_json(project: Project, row: Sequence[Any] | None) -> dict[str, Any]:
    """A typed task's published result, ``row`` being ``(label, confidence, posteriors,
    value, low, high, label_set)`` (None: no run has covered the task)."""
    if row is None or row[1] is None:
        keys = {
            "multilabel": {"labels": None, "probabilities": None},
            "numeric": {"value": None, "interval": None},
            "pairwise": {"winner": None, "probabilities": None},
        }
        return {**keys[project.type], "confidence": None}
    label, confidence, posteriors, value, low, high, label_set = row
    out: dict[str, Any]
    if project.type == "multilabel":
        out = {
            "labels": [project.labels[i] for i in label_set or []],
            "probabilities": {
                name: round(float(p), 6) for name, p in zip(project.labels, posteriors, strict=True)
            },
        }
    elif project.type == "numeric":
        out = {"value": round(value, 6), "interval": [round(low, 6), round(high, 6)]}
    else:
        out = {
            "winner": project.labels[label],
            "probabilities": {"left": round(posteriors[0], 6), "right": round(posteriors[1], 6)},
        }
    return {**out, "confidence": round(float(confidence), 6)}


def gold_json(project: Project, gold: int, gold_value: float | None, gold_set: Any) -> Any:
    """A gold task's known answer as the API shows it."""
    if project.type == "multilabel":
        return [project.labels[i] for i in gold_set or []]
    if project.type == "numeric":
        return gold_value
    return project.labels[gold]


_RESULT_COLUMNS = "r.label, r.confidence, r.posteriors, r.value, r.low, r.high, r.label_set"


def page(
    cur: Cursor,
    project: Project,
    after_id: int,
    limit: int,
    *,
    since_run: int | None = None,
    status: str | None = None,
    include_gold: bool = False,
) -> list[tuple[Any, ...]]:
    """A typed project's results by task id: ``(task_id, external_id, answers, complete,
    run_id, aggregated_answers, gold, gold_value, gold_set, data, label, confidence,
    posteriors, value, low, high, label_set)``. Filters as :func:`crowd.store.results.page`."""
    complete = f"(t.gold IS NOT NULL OR {COMPLETE})"
    source, where = results.page_tasks(since_run)
    cur.execute(
        f"""
        SELECT t.id, t.external_id, t.answers, {complete}, r.run_id, r.answers, t.gold,
               t.gold_value, t.gold_set, t.data, {_RESULT_COLUMNS}
        FROM {source}
        LEFT JOIN LATERAL (
            SELECT * FROM task_results r
            WHERE r.task_id = t.id AND r.project_id = t.project_id LIMIT 1
        ) r ON true
        WHERE {where}
        ORDER BY t.project_id, t.id LIMIT %(limit)s
        """,
        results.page_args(project.id, after_id, limit, since_run, status, include_gold),
    )
    return list(cur.fetchall())


def ranking_page(
    cur: Cursor, project_id: int, after_position: int, limit: int
) -> list[tuple[Any, ...]]:
    """Pairwise items in ranking order from ``after_position`` on: ``(position, item, score,
    low, high, rank, component, comparisons, run_id)``."""
    cur.execute(
        "SELECT position, item, score, low, high, rank, component, comparisons, run_id"
        " FROM item_results WHERE project_id = %s AND position > %s ORDER BY position LIMIT %s",
        (project_id, after_position, limit),
    )
    return list(cur.fetchall())


def ranking_summary(cur: Cursor, project_id: int) -> tuple[int, int, float | None]:
    """``(items, components, position_bias)`` of the project's newest ranking."""
    cur.execute(
        "SELECT count(*), coalesce(max(component) + 1, 0) FROM item_results WHERE project_id = %s",
        (project_id,),
    )
    items, components = cur.fetchone()  # type: ignore[misc]
    cur.execute(
        "SELECT r.position_bias FROM projects p"
        " JOIN aggregation_runs r ON r.id = p.last_run_id AND r.project_id = p.id"
        " WHERE p.id = %s",
        (project_id,),
    )
    row = cur.fetchone()
    return int(items), int(components), row[0] if row else None


def answers_page(cur: Cursor, project_id: int, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    """Raw answers by id: ``(id, task_id, external_id, worker_id, label, value, label_set,
    at)``."""
    cur.execute(
        """
        SELECT a.id, a.task_id, t.external_id, a.worker_id, a.label, a.value, a.label_set,
               a.answered_at
        FROM assignments a JOIN tasks t ON t.id = a.task_id AND t.project_id = a.project_id
        WHERE a.project_id = %s AND a.status = 'answered' AND a.id > %s
        ORDER BY a.id LIMIT %s
        """,
        (project_id, after_id, limit),
    )
    return list(cur.fetchall())


def results_of(cur: Cursor, project_id: int, task_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """The published result rows of the project's ``task_ids`` (see :func:`result_json`)."""
    cur.execute(
        f"SELECT r.task_id, {_RESULT_COLUMNS} FROM task_results r"
        " WHERE r.project_id = %s AND r.task_id = ANY(%s::bigint[])",
        (project_id, task_ids),
    )
    return {row[0]: row[1:] for row in cur.fetchall()}


def worker_estimates(cur: Cursor, project_id: int, worker_ids: list[int]) -> dict[int, Any]:
    cur.execute(
        "SELECT worker_id, estimates FROM project_workers WHERE project_id = %s"
        " AND worker_id = ANY(%s::bigint[])",
        (project_id, worker_ids),
    )
    return dict(cur.fetchall())


#: A typed export's columns, by type: the task, its gold, its published result, progress.
EXPORT_COLUMNS = {
    "multilabel": ("task_id", "external_id", "gold", "labels", "probabilities", "confidence"),
    "numeric": ("task_id", "external_id", "gold", "value", "low", "high", "confidence"),
    "pairwise": (
        "task_id",
        "external_id",
        "left",
        "right",
        "gold",
        "winner",
        "p_left",
        "confidence",
    ),
}
EXPORT_TAIL = ("answers", "status", "run_id")


def export_rows(cur: Cursor, project: Project, batch: int = 2000) -> Iterator[list[dict[str, Any]]]:
    """A typed project's tasks by id, ``batch`` at a time, as dicts of
    ``EXPORT_COLUMNS[type] + EXPORT_TAIL`` (values as JSON would have them; gold tasks carry
    their known answer as ``gold`` and no result). Read through a server-side cursor on the
    caller's transaction, as :func:`crowd.store.export.rows` is."""
    named = cur.connection.cursor(name=f"crowd_typed_export_{project.id}")
    named.itersize = batch
    try:
        named.execute(
            f"""
            SELECT t.id, t.external_id, t.gold, t.gold_value, t.gold_set, t.data, t.answers,
                   {COMPLETE}, r.run_id, {_RESULT_COLUMNS}
            FROM tasks t JOIN projects p ON p.id = t.project_id
            LEFT JOIN task_results r ON r.task_id = t.id AND r.project_id = t.project_id
            WHERE t.project_id = %s ORDER BY t.id
            """,
            (project.id,),
        )
        while True:
            chunk = named.fetchmany(batch)
            if not chunk:
                return
            yield [_export_row(project, row) for row in chunk]
    finally:
        named.close()


def _export_row(project: Project, row: tuple[Any, ...]) -> dict[str, Any]:
    task_id, external_id, gold, gold_value, gold_set, data, answers, complete, run_id = row[:9]
    is_gold = gold is not None
    result = result_json(project, None if is_gold else row[9:])
    out: dict[str, Any] = {"task_id": task_id, "external_id": external_id}
    if project.type == "pairwise":
        out.update(left=data["left"]["id"], right=data["right"]["id"])
    out["gold"] = gold_json(project, gold, gold_value, gold_set) if is_gold else None
    if project.type == "multilabel":
        out.update(labels=result["labels"], probabilities=result["probabilities"])
    elif project.type == "numeric":
        interval = result["interval"] or [None, None]
        out.update(value=result["value"], low=interval[0], high=interval[1])
    else:
        p = result["probabilities"]
        out.update(winner=result["winner"], p_left=p["left"] if p else None)
    out.update(
        confidence=result["confidence"],
        answers=answers,
        status="complete" if is_gold or (complete and run_id is not None) else "pending",
        run_id=None if is_gold else run_id,
    )
    return out
