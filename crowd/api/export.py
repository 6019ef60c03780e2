"""Export: every task with its aggregated label and the model's prediction, streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.store import export
from crowd.store.db import Database

bp = Blueprint("export", __name__, url_prefix="/api/v1/projects")

_LABEL_COLUMNS = {"gold", "label", "model_label"}


def _named(row: tuple[Any, ...], labels: list[str]) -> dict[str, Any]:
    out = dict(zip(export.COLUMNS, row, strict=True))
    for key in _LABEL_COLUMNS:
        if out[key] is not None:
            out[key] = labels[out[key]]
    for key in ("confidence", "model_confidence"):
        if out[key] is not None:
            out[key] = round(float(out[key]), 6)
    return out


def _stream(db: Database, project_id: int, labels: list[str], fmt: str) -> Iterator[str]:
    """The export's text, a batch at a time, from one REPEATABLE READ snapshot."""
    with db.transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if fmt == "csv":
            yield ",".join(export.COLUMNS) + "\r\n"
        for chunk in export.rows(cur, project_id):
            items = [_named(row, labels) for row in chunk]
            if fmt == "csv":
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=export.COLUMNS)
                writer.writerows(items)
                yield buffer.getvalue()
            else:
                yield "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


@bp.get("/<int:project_id>/export")
@auth.require(*MANAGERS)
def export_tasks(project_id: int) -> ResponseReturnValue:
    """Every task of the project (gold ones too), by id: ``?format=jsonl`` (the default) or
    ``csv``. Streamed from a server-side cursor, so memory stays flat at any size."""
    project = auth.project_for_requester(project_id)
    fmt = body.choice_arg("format", ("jsonl", "csv")) or "jsonl"
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(
        _stream(deps.db(), project.id, list(project.labels), fmt),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="project-{project.id}.{fmt}"',
        },
    )
