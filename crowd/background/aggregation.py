"""The aggregation run: the RQ job :func:`aggregate`, a plain function that takes a run id and
its project's id.

RQ stores the job as ``crowd.background.aggregation.aggregate`` plus those ids; the worker
process imports this module and calls the function, which finds its servers in
:mod:`crowd.background.connections`. This is the top of the background package: it uses
scheduling (the run protocol), webhooks (the run's events) and training (a retrain after the
run), and none of them imports it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg2.errors
from redis.exceptions import RedisError

from crowd.background import scheduling, training, webhooks
from crowd.background.connections import services, settings
from crowd.em.live import RunResult, changed_rows, fit_run
from crowd.em.typed import Answers, PairwiseWarm, TypedResult, changed_typed, fit_typed
from crowd.store import active, answer_state, projects, review, runs, snapshot, typed
from crowd.store.db import Cursor, Database
from crowd.store.projects import Project

log = logging.getLogger(__name__)

#: A run warm-starts from the previous one only while the answers are fewer than this many
#: times those of the newest cold-started fit behind it. EM warm-started from a fit on far
#: fewer answers can stay in that fit's basin (a first run on one answer has one class left)
#: and stop after an iteration; a cold fit at every doubling costs O(total answers) overall.
REFIT_GROWTH = 2.0

#: Projects with at most this many answers fit every run twice: warm-started from the previous
#: run and cold, publishing the warm fit only when its objective is better (see
#: :func:`crowd.em.live.fit_run`'s ``cold_check``). A warm start alone can stay in a worse fit
#: than a cold fit of the same answers finds (benchmarks/RESULTS.md, label efficiency:
#: zheng_face published 0.6370 where a cold refit gave 0.6473), and dynamic overlap closes
#: tasks on those fits; below this size a cold fit of the default method costs well under a
#: second, so a run's results are never worse than those of a cold fit of its answers.
COLD_FIT_ANSWERS = 100_000


def outgrown(n_answers: int, cold_answers: int) -> bool:
    """Whether a run on ``n_answers`` should fit cold rather than warm-start from a previous
    run whose newest cold fit saw ``cold_answers`` (see :data:`REFIT_GROWTH`)."""
    return n_answers > REFIT_GROWTH * cold_answers


def _warm_start(snap: snapshot.Snapshot) -> dict[str, Any]:
    """The previous run's estimates as ``fit_run`` arguments (with ``cold_check`` for a
    project of at most ``COLD_FIT_ANSWERS``), or none (a cold start)."""
    if snap.warm_priors is None:
        return {}
    small = snap.n_answers <= COLD_FIT_ANSWERS
    if not small and outgrown(snap.n_answers, snap.warm_cold_answers):
        return {}
    return {
        "warm_workers": snap.warm_workers,
        "warm_confusion": snap.warm_confusion,
        "warm_priors": snap.warm_priors,
        "cold_check": small,
    }


def fit(snap: snapshot.Snapshot, project: Project) -> tuple[RunResult, int]:
    """Fit a run's snapshot as the project says (method, gold window, dynamic overlap's
    decision, warm start); also the answers of the newest cold fit behind the result, which
    the run records for ``REFIT_GROWTH``."""
    warm = _warm_start(snap)
    result = fit_run(
        snap.answer_ids,
        snap.task_ids,
        snap.worker_ids,
        snap.labels,
        n_classes=len(project.labels),
        gold_task_ids=snap.gold_task_ids,
        gold_labels=snap.gold_labels,
        method=project.method,
        gold_window=project.gold_window,
        decide=project.dynamic,
        proposals=snap.proposals,
        votes=snap.votes,
        **warm,
    )
    cold_fitted = not result.warm_start or bool(warm.get("cold_check"))
    return result, snap.n_answers if cold_fitted else snap.warm_cold_answers


def load(db: Database, project: Project) -> snapshot.Snapshot:
    """Read a run's input in one short transaction, the answers from the copy this worker
    keeps between runs plus the ones it lacks (see :mod:`crowd.store.answer_state`)."""
    config = settings()
    with db.transaction() as cur:
        return snapshot.load(
            cur,
            project.id,
            len(project.labels),
            exclude_banned=project.exclude_banned,
            state_dir=config.state_dir,
            full_reload_seconds=config.full_reload_seconds,
        )


def publish(
    db: Database,
    run_id: int,
    project: Project,
    result: RunResult,
    snap: snapshot.Snapshot,
    cold_answers: int,
    phases: tuple[float, float] = (float("nan"), float("nan")),
) -> None:
    """The job's publish step, public for benchmarks/freshness.py's timing: publish in one
    transaction (:func:`_in_one_transaction`), then keep the published
    rows beside this worker's copy of the answers."""
    published = snap.published
    changed = changed_rows(
        result,
        published["task"],
        published["label"],
        published["answers"],
        published["confidence"],
        published["decision"],
    )
    changed &= ~np.isin(result.task_ids, snap.gold_task_ids)
    rows = np.flatnonzero(changed)

    def write(cur: Cursor) -> list[int]:
        n = runs.publish(cur, run_id, project, result, rows, snap.answers_total, cold_answers)
        runs.record_load(cur, project.id, run_id, snap.load, *phases)
        return webhooks.emit_run_events(cur, run_id, project, result.task_ids[rows].tolist(), n)

    deliveries = _in_one_transaction(db, run_id, write)
    if snap.kept is not None:
        answer_state.keep_published(
            snap.kept,
            run_id,
            published,
            {
                "task": result.task_ids[rows],
                "label": result.labels[rows],
                "answers": result.task_answers[rows],
                "confidence": result.confidence[rows],
                "decision": result.decision[rows],
            },
        )
    webhooks.enqueue(services()[1], project.id, deliveries)


def _in_one_transaction(
    db: Database, run_id: int, write: Callable[[Cursor], list[int]]
) -> list[int]:
    """Run ``write`` (a run's output and its webhook events, an outbox: they go out after
    the commit) in one transaction; retried when PostgreSQL picks it as a deadlock victim
    (its task updates can meet a reservation sweep locking the same rows in another order).
    Returns the deliveries ``write`` recorded."""
    for attempt in range(3):
        try:
            with db.transaction() as cur:
                return write(cur)
        except psycopg2.errors.DeadlockDetected:
            if attempt == 2:
                raise
            log.warning("run %s: publish was a deadlock victim; retrying", run_id)
    raise AssertionError("unreachable")


def fit_typed_run(
    project: Project, answers: Answers, previous: typed.Previous
) -> tuple[TypedResult, int]:
    """Fit a typed run's answers, warm-started from the previous run where the type takes
    one (pairwise), by the categorical runs' rules: not once the answers have
    outgrown the newest cold fit (:func:`outgrown`), and for a project of at most
    :data:`COLD_FIT_ANSWERS` answers also cold, keeping the warm fit only when its objective
    is the higher (a warm start from a fit on far fewer answers can stop in a worse place).
    Also returns the answers of the newest cold fit behind the result."""
    n_answers = int(answers.answer_ids.size)
    small = n_answers <= COLD_FIT_ANSWERS
    warm = previous.pairwise
    if warm is not None and not small and outgrown(n_answers, previous.cold_answers):
        warm = None

    def fit(start: PairwiseWarm | None) -> TypedResult:
        return fit_typed(
            project.type,
            answers,
            n_labels=len(project.labels),
            scale=project.scale,
            gold_window=project.gold_window,
            warm=start,
        )

    result = fit(warm)
    if not result.warm_start:
        return result, n_answers
    if small:
        cold = fit(None)
        if not (cold.objective is None or (result.objective or -np.inf) > cold.objective):
            result = cold
        return result, n_answers
    return result, previous.cold_answers


def publish_typed(
    db: Database,
    run_id: int,
    project: Project,
    result: TypedResult,
    published: dict[str, np.ndarray],
    answers_total: int,
    cold_answers: int,
    phases: tuple[float, float] = (float("nan"), float("nan")),
) -> None:
    """A typed run's publish step, public for benchmarks/freshness.py's timing as
    :func:`publish` is: the rows that moved from ``published``
    (:func:`crowd.em.typed.changed_typed`), written with the run's webhook events, its load
    and fit seconds (``phases``) and an active pairwise project's next comparisons
    (:mod:`crowd.store.active`) in one transaction (:func:`_in_one_transaction`)."""
    rows = np.flatnonzero(
        changed_typed(result, published, value_tol=typed.value_tolerance(project))
    )

    def write(cur: Cursor) -> list[int]:
        changed = typed.publish(cur, run_id, project, result, answers_total, rows, cold_answers)
        runs.record_load(cur, project.id, run_id, "full", *phases)
        deliveries = webhooks.emit_run_events(cur, run_id, project, changed, len(changed))
        active.extend(cur, run_id, project, result)  # the next comparisons, when active
        return deliveries

    webhooks.enqueue(services()[1], project.id, _in_one_transaction(db, run_id, write))


def _typed_run(db: Database, run_id: int, project: Project) -> None:
    """A typed project's run (docs/TYPES.md): read in one transaction, fit with no
    transaction open (:func:`fit_typed_run`), publish (:func:`publish_typed`)."""
    began = time.perf_counter()
    with db.transaction() as cur:
        answers, total, published, previous = typed.load(cur, project)
    loaded = time.perf_counter()
    result, cold_answers = fit_typed_run(project, answers, previous)
    phases = (loaded - began, time.perf_counter() - loaded)
    publish_typed(db, run_id, project, result, published, total, cold_answers, phases)


def aggregate(run_id: int, project_id: int) -> None:
    """Run aggregation run ``run_id`` (queued by :mod:`crowd.background.scheduling`).

    Reads the project's answers in one short transaction (:func:`load`: only those newer
    than this worker's kept copy), fits with no transaction open, then publishes everything
    in one transaction (:func:`crowd.store.runs.publish`), with the run's webhook events
    (:func:`crowd.background.webhooks.emit_run_events`). A failure is recorded on the run,
    with its error, and re-raised so RQ records it too.
    """
    db, redis = services()
    with db.transaction() as cur:
        run = runs.get(cur, project_id, run_id)
    if run is None:
        log.warning("run %s does not exist (project deleted?)", run_id)
        return
    with scheduling.project_lock(db.url, project_id):
        with db.transaction() as cur:
            started = runs.start(cur, project_id, run_id)
            project = projects.get(cur, project_id)
        if not started or project is None:
            return  # reaped and retried already, or a stale duplicate of the job
        try:
            try:
                scheduling.begin(redis, project_id)
            except RedisError as exc:
                # ``stale`` stays set: the run's end queues one follow-up, or, Redis still
                # away, the workers' catch-up does (see scheduling.reap). Nothing is lost.
                log.warning("run %s: could not clear the stale mark: %s", run_id, exc)
            if project.type != "categorical":
                _typed_run(db, run_id, project)
                return
            began = time.perf_counter()
            snap = load(db, project)
            loaded = time.perf_counter()
            result, cold_answers = fit(snap, project)
            phases = (loaded - began, time.perf_counter() - loaded)
            publish(db, run_id, project, result, snap, cold_answers, phases)
            if project.review is not None:
                # Audits just labelled may calibrate a model's auto-accept threshold, and a
                # routing may have skipped a row a fetch held: route the tasks nobody has
                # taken again (crowd/store/review.py; it writes only rows that change).
                with db.transaction() as cur:
                    review.route(cur, project)
            if project.model is not None:
                training.after_run(db, redis, project_id, run_id)  # never raises
        except Exception as exc:
            log.error(
                "run %s of project %s failed:\n%s", run_id, project_id, traceback.format_exc()
            )
            with db.transaction() as cur:
                runs.fail(cur, project_id, run_id, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            try:
                scheduling.finish(db, redis, project_id)
            except RedisError as exc:
                # The run is recorded in PostgreSQL either way; a ``queued`` flag it could not
                # release is taken over by the catch-up (see scheduling.reap).
                log.warning("run %s: could not release the project's queued flag: %s", run_id, exc)
