"""The open-loop answer submitter of benchmarks/freshness.py and benchmarks/many_projects.py,
and the bulk load of answers both start from (benchmarks/typed_runs.py loads its answers
with it too, drawn by :func:`draw_answers`).

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
from typing import Any

import numpy as np
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
    choose: Callable[[], dict[str, Any]],
    tally: Tally,
    acked: Callable[[int, int, float], None],
    stop: threading.Event | None = None,
) -> None:
    """For each ``(due, project_id)`` of ``plan``: wait until ``due``, fetch a task of the
    project and answer it with ``choose()`` (the answer's field, e.g. ``{"label": "cat"}``,
    ``{"value": 3.0}``: crowd.client.WorkerClient.answer's keywords); on a 201, ``acked(project_id, task_id, time of
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
            answered = client.answer(got.id, **choose())
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
    values: Sequence[str] | None = None,
    label_sets: Sequence[str] | None = None,
) -> None:
    """Load answers in bulk before a measured window: COPY one answered assignment per
    ``(task_ids[i], worker_ids[i], labels[i])``, then set every task of the project to
    ``per_task`` answers. A typed project's answers also give ``values`` (numeric) or
    ``label_sets`` (multilabel), in COPY text form (:func:`draw_answers`); a pairwise
    answer's winner is its label (0 left, 1 right). ``expires_at`` has no default and COPY
    cannot compute one per row: one fixed time (now, so a lease long over by the window)
    serves it, ``created_at`` and ``answered_at``."""
    cut = datetime.now(UTC).isoformat()
    head = f"{project_id}\t"
    tail = f"\t{cut}\t{cut}\t{cut}\n"
    none = ["\\N"] * len(labels)
    buf = io.StringIO()
    for task, worker, label, value, chosen in zip(
        task_ids, worker_ids, labels, values or none, label_sets or none, strict=True
    ):
        buf.write(f"{head}{task}\t{worker}\tanswered\t{label}\t{value}\t{chosen}{tail}")
    buf.seek(0)
    cur.copy_expert(
        "COPY assignments (project_id, task_id, worker_id, status, label, value, label_set,"
        " created_at, expires_at, answered_at) FROM STDIN",
        buf,
    )
    cur.execute(
        "UPDATE tasks SET answers = %s, taken = %s WHERE project_id = %s",
        (per_task, per_task, project_id),
    )


#: Numeric answers' scale in the synthetic crowds.
SCALE = {"min": 0, "max": 100, "step": None}


@dataclass(frozen=True)
class Drawn:
    """Synthetic answers of one project type, one entry per answer, ready for
    :func:`copy_answers`: ``labels`` (categorical label; pairwise winner, 0 left 1 right;
    else 0), ``values`` (numeric, else None) and ``label_sets`` (multilabel, else None)."""

    labels: list[int]
    values: list[str] | None
    label_sets: list[str] | None


def draw_answers(
    kind: str,
    rng: np.random.Generator,
    t_index: np.ndarray,
    accuracy: np.ndarray,
    n_labels: int,
    better_left: np.ndarray | None = None,
) -> Drawn:
    """Answers of a crowd whose answer ``i`` is on task ``t_index[i]`` by a worker of
    ``accuracy[i]``: categorical, a wrong label uniform over the others with probability
    1 - accuracy; multilabel (``n_labels`` labels, each true with probability 0.3), each label
    missed or falsely ticked with probability 1 - accuracy; numeric (:data:`SCALE`), the true
    value U(0, 100) plus noise of sd 40 (1 - accuracy), clipped to the scale; pairwise, the
    better item (``better_left[task]``: whether it is the left one) with probability accuracy.
    """
    n_t, n = int(t_index.max()) + 1 if t_index.size else 0, t_index.size
    if kind == "categorical":
        truth = rng.integers(0, n_labels, n_t)[t_index]
        wrong = (truth + rng.integers(1, n_labels, n)) % n_labels
        return Drawn(np.where(rng.random(n) < accuracy, truth, wrong).tolist(), None, None)
    if kind == "multilabel":
        truth_sets = rng.random((n_t, n_labels)) < 0.3
        ticked = truth_sets[t_index] ^ (rng.random((n, n_labels)) > accuracy[:, None])
        sets = ["{" + ",".join(map(str, np.flatnonzero(row))) + "}" for row in ticked]
        return Drawn([0] * n, None, sets)
    if kind == "numeric":
        truth = rng.uniform(SCALE["min"], SCALE["max"], n_t)[t_index]
        x = np.clip(truth + rng.normal(0, 40 * (1 - accuracy)), SCALE["min"], SCALE["max"])
        return Drawn([0] * n, [repr(float(v)) for v in x], None)
    if kind == "pairwise":
        assert better_left is not None
        faithful = rng.random(n) < accuracy
        return Drawn(np.where(better_left[t_index] == faithful, 0, 1).tolist(), None, None)
    raise ValueError(f"unknown project type {kind!r}")


def distinct_workers(
    rng: np.random.Generator, n_tasks: int, n_workers: int, per_task: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(accuracy per worker, task index, worker index)`` of ``per_task`` answers per task
    from distinct workers: worker ``start + j * stride (mod n_workers)`` for the task's
    ``j``-th answer, with ``j * stride < n_workers``. Draws from ``rng`` in that order."""
    accuracy = rng.uniform(0.55, 0.95, n_workers)
    start = rng.integers(0, n_workers, n_tasks)
    stride = rng.integers(1, max(2, n_workers // per_task + 1), n_tasks)
    w_index = (start[:, None] + np.arange(per_task)[None, :] * stride[:, None]) % n_workers
    return accuracy, np.repeat(np.arange(n_tasks), per_task), w_index.ravel()


def load_drawn(
    conn: Any,
    project_id: int,
    kind: str,
    rng: np.random.Generator,
    task_ids: np.ndarray,
    worker_ids: np.ndarray,
    drawn_for: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    n_labels: int,
    per_task: int,
    better_left: np.ndarray | None,
) -> None:
    """Draw ``kind`` answers for ``drawn_for`` (:func:`distinct_workers`) with
    :func:`draw_answers`, COPY them (:func:`copy_answers`), commit, and VACUUM ANALYZE the
    tables the service reads them from. ``conn`` is left in autocommit."""
    accuracy, t_index, w_index = drawn_for
    drawn = draw_answers(kind, rng, t_index, accuracy[w_index], n_labels, better_left)
    with conn.cursor() as cur:
        copy_answers(
            cur,
            project_id,
            task_ids[t_index].tolist(),
            worker_ids[w_index].tolist(),
            drawn.labels,
            per_task,
            drawn.values,
            drawn.label_sets,
        )
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE tasks")
        cur.execute("VACUUM ANALYZE assignments")
