"""Tasks: posted in batches, idempotent on ``(project, external_id)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json, execute_values

from crowd.store.db import Cursor
from crowd.store.projects import UNLIMITED


@dataclass(frozen=True)
class NewTask:
    external_id: str
    data: dict[str, Any]
    gold: int | None  # index into the project's labels


def insert_batch(cur: Cursor, project_id: int, target: int, batch: Sequence[NewTask]) -> int:
    """Insert the tasks not yet present; return how many were created.

    A task whose ``external_id`` already exists in the project is left as it is, so posting the
    same batch twice (a client retry) creates nothing the second time. Tasks get ``target``
    slots, gold tasks unlimited ones (any number of workers may answer a control task).
    """
    if not batch:
        return 0
    rows = execute_values(
        cur,
        "INSERT INTO tasks (project_id, external_id, data, gold, target) VALUES %s"
        " ON CONFLICT (project_id, external_id) DO NOTHING RETURNING 1",
        [
            (
                project_id,
                t.external_id,
                Json(t.data),
                t.gold,
                UNLIMITED if t.gold is not None else target,
            )
            for t in batch
        ],
        page_size=1000,
        fetch=True,
    )
    return len(rows)
