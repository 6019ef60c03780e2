"""What the two tables of background jobs share: ``aggregation_runs`` (:mod:`crowd.store.runs`)
and ``model_versions`` (:mod:`crowd.store.models`).

A row of either goes ``queued`` -> ``running`` -> ``succeeded`` | ``failed``. Starting is a
compare-and-set on ``queued``, so of two workers handed the same job (a retry of one thought
lost) one runs it; failing leaves a row that already ended as it is.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from crowd.store.db import Cursor

Table = Literal["aggregation_runs", "model_versions"]

#: The longest error text kept on a failed row.
ERROR_CHARS = 4000


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def get(
    cur: Cursor, table: Table, columns: str, project_id: int, row_id: int
) -> tuple[Any, ...] | None:
    """The project's row ``row_id``; None if it has none of that id."""
    cur.execute(
        f"SELECT {columns} FROM {table} WHERE id = %s AND project_id = %s", (row_id, project_id)
    )
    row: tuple[Any, ...] | None = cur.fetchone()
    return row


def page(
    cur: Cursor, table: Table, columns: str, project_id: int, before_id: int, limit: int
) -> list[tuple[Any, ...]]:
    """The project's rows, newest first, with ids below ``before_id``."""
    cur.execute(
        f"SELECT {columns} FROM {table} WHERE project_id = %s AND id < %s"
        " ORDER BY id DESC LIMIT %s",
        (project_id, before_id, limit),
    )
    return list(cur.fetchall())


def start(cur: Cursor, table: Table, project_id: int, row_id: int) -> bool:
    """Mark a queued row running; False if it is not queued (already done, or reaped)."""
    cur.execute(
        f"UPDATE {table} SET status = 'running', started_at = now()"
        " WHERE id = %s AND project_id = %s AND status = 'queued'",
        (row_id, project_id),
    )
    return bool(cur.rowcount == 1)


def fail(cur: Cursor, table: Table, project_id: int, row_id: int, error: str) -> None:
    """Mark a queued or running row failed with ``error`` (cut to :data:`ERROR_CHARS`)."""
    cur.execute(
        f"UPDATE {table} SET status = 'failed', finished_at = clock_timestamp(), error = %s"
        " WHERE id = %s AND project_id = %s AND status IN ('queued', 'running')",
        (error[:ERROR_CHARS], row_id, project_id),
    )


def open_rows(cur: Cursor, table: Table) -> list[tuple[int, int, str, datetime]]:
    """``(id, project_id, status, created_at)`` of every queued or running row."""
    cur.execute(
        f"SELECT id, project_id, status, created_at FROM {table}"
        " WHERE status IN ('queued', 'running') ORDER BY id"
    )
    return list(cur.fetchall())
