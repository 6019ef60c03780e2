"""The open-loop answer submitter of benchmarks/freshness.py and benchmarks/many_projects.py,
and the bulk load of answers both start from.

Each submission is due at a fixed time (``time.monotonic()``), whatever the service does, so
a slow service shows as latency and lateness rather than as a lower arrival rate. One
submission is a fetch and an answer by one worker, one attempt per request: a failure is
counted, never retried.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg2.extensions import cursor as Cursor

from crowd.client import ApiError, ConnectionFailed, RetryPolicy, WorkerClient

#: The measured clients make one attempt per request: a retry would hide what is measured.
ONE_ATTEMPT = RetryPolicy(attempts=1)


@dataclass
class Tally:
    """What every submission adds to: errors by step and status, fetches that found no task,
    and how late each submission started (seconds). Guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: dict[str, int] = field(default_factory=dict)
    empty: int = 0
    late: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def submit(
    base: str,
    token: str,
    plan: Iterable[tuple[float, int]],
    choose: Callable[[], str],
    tally: Tally,
    acked: Callable[[int, int, float], None],
    stop: threading.Event | None = None,
) -> None:
    """For each ``(due, project_id)`` of ``plan``: wait until ``due``, fetch a task of the
    project and answer it with ``choose()``; on a 201, ``acked(project_id, task_id, time of
    the 201)`` under ``tally.lock``. Stops early when ``stop`` is set."""
    client = WorkerClient(base, token, timeout=30, retry=ONE_ATTEMPT)
    for due, project_id in plan:
        if stop is not None and stop.is_set():
            return
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        with tally.lock:
            tally.late.append(max(0.0, time.monotonic() - due))
        step = "fetch"
        try:
            got = client.fetch(project_id)
            if got is None:
                with tally.lock:
                    tally.empty += 1
                continue
            step = "answer"
            answered = client.answer(got.id, choose())
            at = time.time()
            if not answered.created:
                tally.error("answer 200")
                continue
        except ApiError as exc:
            tally.error(f"{step} {exc.status}")
            continue
        except ConnectionFailed as exc:
            tally.error(f"client {type(exc.__cause__).__name__}")
            continue
        with tally.lock:
            acked(project_id, got.task_id, at)


def copy_answers(
    cur: Cursor,
    project_id: int,
    task_ids: Sequence[int],
    worker_ids: Sequence[int],
    labels: Sequence[int],
    per_task: int,
) -> None:
    """Load answers in bulk before a measured window: COPY one answered assignment per
    ``(task_ids[i], worker_ids[i], labels[i])``, then set every task of the project to
    ``per_task`` answers. ``expires_at`` has no default and COPY cannot compute one per row:
    one fixed time (now, so a lease long over by the window) serves it, ``created_at`` and
    ``answered_at``."""
    cut = datetime.now(UTC).isoformat()
    head = f"{project_id}\t"
    tail = f"\t{cut}\t{cut}\t{cut}\n"
    buf = io.StringIO()
    for task, worker, label in zip(task_ids, worker_ids, labels, strict=True):
        buf.write(f"{head}{task}\t{worker}\tanswered\t{label}{tail}")
    buf.seek(0)
    cur.copy_expert(
        "COPY assignments (project_id, task_id, worker_id, status, label, created_at,"
        " expires_at, answered_at) FROM STDIN",
        buf,
    )
    cur.execute(
        "UPDATE tasks SET answers = %s, taken = %s WHERE project_id = %s",
        (per_task, per_task, project_id),
    )
