"""Tasks: posted in batches, idempotent on ``(project, external_id)``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json

from crowd.store.db import Cursor, one
from crowd.store.projects import UNLIMITED


@dataclass(frozen=True)
class NewTask:
    external_id: str
    data: dict[str, Any]
    gold: int | None  # index into the project's labels (a typed project: migration 0016)
    gold_value: float | None = None  # numeric gold
    gold_set: list[int] | None = None  # multilabel gold


def insert_batch(
    cur: Cursor,
    project_id: int,
    target: int,
    batch: Sequence[NewTask],
    *,
    active_run: int | None = None,
) -> int:
    """Insert the tasks not yet present; return how many were created.

    A task whose ``external_id`` already exists in the project is left as it is, so posting the
    same batch twice (a client retry) creates nothing the second time; the caller checks with
    :func:`differing` that those existing tasks are the ones it sent. Tasks get ``target``
    slots, gold tasks unlimited ones (any number of workers may answer a control task).
    ``active_run``: the run whose active selection created them (crowd/store/active.py;
    None: posted by the requester).
    """
    if not batch:
        return 0
    # One statement for the whole batch, its columns as three arrays zipped by ROWS FROM
    # (in the batch's order, so ids follow it): a tenth of the time of multi-row VALUES
    # lists, which PostgreSQL parses value by value.
    cur.execute(
        """
        WITH created AS (
            INSERT INTO tasks (project_id, external_id, data, gold, target, gold_value,
                               gold_set, active_run)
            SELECT %(project)s, u.external_id, u.data, u.gold,
                   CASE WHEN u.gold IS NULL THEN %(target)s ELSE %(unlimited)s END,
                   u.gold_value,
                   CASE WHEN jsonb_typeof(u.gold_set) = 'array' THEN
                       ARRAY(SELECT jsonb_array_elements_text(u.gold_set))::smallint[] END,
                   %(active_run)s
            FROM ROWS FROM (unnest(%(ids)s::text[]), jsonb_array_elements(%(data)s::jsonb),
                            unnest(%(gold)s::smallint[]), unnest(%(values)s::float8[]),
                            jsonb_array_elements(%(sets)s::jsonb))
                 AS u(external_id, data, gold, gold_value, gold_set)
            ON CONFLICT (project_id, external_id) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM created
        """,
        {
            "project": project_id,
            "target": target,
            "unlimited": UNLIMITED,
            "ids": [t.external_id for t in batch],
            "data": json.dumps([t.data for t in batch]),
            "gold": [t.gold for t in batch],
            "values": [t.gold_value for t in batch],
            "sets": json.dumps([t.gold_set for t in batch]),
            "active_run": active_run,
        },
    )
    return int(one(cur)[0])


def differing(cur: Cursor, project_id: int, batch: Sequence[NewTask]) -> list[str]:
    """The external_ids in ``batch`` that exist in the project with other data or gold.

    Run after :func:`insert_batch` in the same transaction: a concurrent post of the same
    external_id has committed by then (the insert waited for it), so its row is compared too.
    Data compare as JSON values (key order and ``1`` vs ``1.0`` do not matter).
    """
    if not batch:
        return []
    cur.execute(
        "SELECT t.external_id"
        " FROM unnest(%s::text[], %s::jsonb[], %s::smallint[], %s::float8[], %s::jsonb[])"
        " AS b (external_id, data, gold, gold_value, gold_set)"
        " JOIN tasks t ON t.project_id = %s AND t.external_id = b.external_id"
        " WHERE t.data <> b.data OR t.gold IS DISTINCT FROM b.gold"
        " OR t.gold_value IS DISTINCT FROM b.gold_value"
        " OR to_jsonb(t.gold_set) IS DISTINCT FROM b.gold_set"
        " ORDER BY t.id",
        (
            [t.external_id for t in batch],
            [Json(t.data) for t in batch],
            [t.gold for t in batch],
            [t.gold_value for t in batch],
            [None if t.gold_set is None else Json(t.gold_set) for t in batch],
            project_id,
        ),
    )
    return [r[0] for r in cur.fetchall()]
