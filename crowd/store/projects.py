"""Projects: a label set, an overlap (answers per task) and a reservation lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crowd.store.db import Cursor, one

_COLUMNS = "id, owner_id, name, labels, overlap, lease_seconds, created_at"


@dataclass(frozen=True)
class Project:
    id: int
    owner_id: int
    name: str
    labels: list[str]
    overlap: int
    lease_seconds: int
    created_at: datetime

    def label_index(self, label: str) -> int | None:
        try:
            return self.labels.index(label)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "labels": list(self.labels),
            "overlap": self.overlap,
            "lease_seconds": self.lease_seconds,
            "owner_id": self.owner_id,
            "created_at": self.created_at.isoformat(),
        }


def _row(row: tuple[Any, ...]) -> Project:
    return Project(row[0], row[1], row[2], list(row[3]), row[4], row[5], row[6])


def create(
    cur: Cursor, owner_id: int, name: str, labels: list[str], overlap: int, lease_seconds: int
) -> Project:
    cur.execute(
        "INSERT INTO projects (owner_id, name, labels, overlap, lease_seconds)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (owner_id, name, labels, overlap, lease_seconds),
    )
    return _row(one(cur))


def get(cur: Cursor, project_id: int) -> Project | None:
    cur.execute(f"SELECT {_COLUMNS} FROM projects WHERE id = %s", (project_id,))
    row = cur.fetchone()
    return _row(row) if row else None


def list_for(cur: Cursor, owner_id: int | None, after_id: int, limit: int) -> list[Project]:
    """Projects owned by ``owner_id`` (every project when None), by id."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM projects"
        " WHERE (%s::bigint IS NULL OR owner_id = %s) AND id > %s ORDER BY id LIMIT %s",
        (owner_id, owner_id, after_id, limit),
    )
    return [_row(r) for r in cur.fetchall()]


def counts(cur: Cursor, project_id: int) -> dict[str, int]:
    """Progress figures: tasks, stored answers, tasks with all their answers, live reservations."""
    cur.execute(
        "SELECT count(*), coalesce(sum(answers), 0), count(*) FILTER (WHERE answers >= target),"
        " coalesce(sum(taken - answers), 0)"
        " FROM tasks WHERE project_id = %s",
        (project_id,),
    )
    tasks, answers, complete, reserved = one(cur)
    return {
        "tasks": int(tasks),
        "answers": int(answers),
        "tasks_complete": int(complete),
        "reservations": int(reserved),
    }
