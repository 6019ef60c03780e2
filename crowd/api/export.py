"""Export: every task with its aggregated label and the model's prediction, streamed.

An export reads one REPEATABLE READ snapshot through a server-side cursor, so while its client
downloads it holds a pooled database connection and a snapshot (which keeps PostgreSQL from
vacuuming rows changed meanwhile). Two bounds keep a slow or stalled client from pinning them:
each API process streams at most ``CROWD_EXPORT_CONCURRENCY`` exports at once (more get 429
with ``Retry-After``), and PostgreSQL ends the export's transaction once it has waited
``CROWD_EXPORT_IDLE_TIMEOUT`` seconds on a client that reads nothing
(``idle_in_transaction_session_timeout``), and, under gunicorn, a write that the client
does not take within that time fails, which frees the thread, its pooled connection and the
slot: the download then stops short, without the final chunk of its chunked response, and the
client should start again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from crowd.api import auth, body, deps
from crowd.api.projects import MANAGERS
from crowd.errors import CrowdError, Unavailable
from crowd.store import export, typed
from crowd.store.db import Database
from crowd.store.projects import Project

log = logging.getLogger(__name__)

bp = Blueprint("export", __name__, url_prefix="/api/v1/projects")

_LABEL_COLUMNS = {"gold", "label", "model_label", "prediction_label"}
#: Seconds a client turned away because every export slot is taken is told to wait.
RETRY_AFTER = 10


class ExportsBusy(CrowdError):
    status, code = 429, "too_many_exports"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@bp.record_once
def _make_slots(state: BlueprintSetupState) -> None:
    """One counter of running exports per app (gunicorn forks it into each process)."""
    settings = state.app.extensions["crowd.settings"]
    for name, value in (
        ("CROWD_EXPORT_CONCURRENCY", settings.export_concurrency),
        ("CROWD_EXPORT_IDLE_TIMEOUT", settings.export_idle_timeout),
    ):
        if value < 1:
            raise RuntimeError(f"{name} must be 1 or more, got {value}")
    state.app.extensions["crowd.export_slots"] = threading.BoundedSemaphore(
        settings.export_concurrency
    )


def _take_slot(project_id: int) -> Callable[[], None]:
    """Take an export slot of this process, or raise :class:`ExportsBusy`; returns the
    release, which may be called more than once."""
    slots = cast(threading.BoundedSemaphore, current_app.extensions["crowd.export_slots"])
    if not slots.acquire(blocking=False):
        limit = deps.settings().export_concurrency
        raise ExportsBusy(
            f"this server process is already streaming {limit} exports, its limit "
            f"(CROWD_EXPORT_CONCURRENCY); retry after {RETRY_AFTER} s, or read the labels "
            f"page by page with GET /api/v1/projects/{project_id}/results",
            retry_after=RETRY_AFTER,
        )
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            slots.release()

    return release


def _named(row: tuple[Any, ...], labels: list[str]) -> dict[str, Any]:
    out = dict(zip(export.COLUMNS, row, strict=True))
    for key in _LABEL_COLUMNS:
        if out[key] is not None:
            out[key] = labels[out[key]]
    for key in ("confidence", "model_confidence", "prediction_confidence"):
        if out[key] is not None:
            out[key] = round(float(out[key]), 6)
    return out


def _csv_cell(value: Any) -> Any:
    """A typed export's value in a CSV cell: a label set joined by ``|``, a mapping as JSON."""
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _stream_typed(db: Database, project: Project, fmt: str, idle_timeout: int) -> Iterator[str]:
    """A typed project's export (see :func:`crowd.store.typed.export_rows`)."""
    columns = typed.EXPORT_COLUMNS[project.type] + typed.EXPORT_TAIL
    with db.transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SET LOCAL idle_in_transaction_session_timeout = %s", (f"{idle_timeout}s",))
        if fmt == "csv":
            yield ",".join(columns) + "\r\n"
        for items in typed.export_rows(cur, project):
            if fmt == "csv":
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=columns)
                writer.writerows({k: _csv_cell(v) for k, v in item.items()} for item in items)
                yield buffer.getvalue()
            else:
                yield "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def _stream(
    db: Database, project_id: int, labels: list[str], fmt: str, idle_timeout: int
) -> Iterator[str]:
    """The export's text, a batch at a time, from one REPEATABLE READ snapshot."""
    try:
        with db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET LOCAL idle_in_transaction_session_timeout = %s", (f"{idle_timeout}s",))
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
    except Unavailable as exc:
        # The response has begun: the client sees it end short of its last chunk.
        log.warning(
            "export of project %s stopped (a client that read nothing for %s s ends it): %s",
            project_id, idle_timeout, exc,
        )  # fmt: skip
        raise


@bp.get("/<int:project_id>/export")
@auth.require(*MANAGERS)
def export_tasks(project_id: int) -> ResponseReturnValue:
    """Every task of the project (gold ones too), by id: ``?format=jsonl`` (the default) or
    ``csv``. Streamed from a server-side cursor, so memory stays flat at any size; at most
    ``CROWD_EXPORT_CONCURRENCY`` at once per process (429 beyond)."""
    project = auth.project_for_requester(project_id)
    fmt = body.choice_arg("format", ("jsonl", "csv")) or "jsonl"
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    settings = deps.settings()
    release = _take_slot(project.id)
    try:
        stream = (
            _stream(deps.db(), project.id, list(project.labels), fmt, settings.export_idle_timeout)
            if project.type == "categorical"
            else _stream_typed(deps.db(), project, fmt, settings.export_idle_timeout)
        )
        response = Response(
            stream,
            mimetype=mimetype,
            headers={
                "Content-Disposition": f'attachment; filename="project-{project.id}.{fmt}"',
            },
        )
    except BaseException:
        release()
        raise
    # The WSGI server closes the response when the download ends, however it ends.
    response.call_on_close(release)
    # Under gunicorn, a write to a client that reads nothing for as long fails too, so the
    # thread, its pooled connection and the slot are let go, not only the server session.
    # (gunicorn puts the socket back in non-blocking mode, without a timeout, after this
    # response.)
    client_socket = request.environ.get("gunicorn.socket")
    if client_socket is not None:
        client_socket.settimeout(settings.export_idle_timeout)
    return response
