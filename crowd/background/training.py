"""Model versions: when a retrain is queued, and the RQ job that trains one.

After each published aggregation run, :func:`after_run` queues a version once the project
has ``retrain_every`` more crowd-completed tasks than when its newest version was queued;
``POST /projects/{id}/models`` queues one at once (:func:`request`). The job :func:`train`
fits the project's model on the aggregated labels (soft: weighted by their posteriors), scores
it on gold (held out), calibrates the auto-labelling threshold, writes a prediction on every
task in batches, and records the version (:func:`crowd.store.models.record_trained`) with its
``model.trained`` webhook event. A failure is recorded on the version with its error; it never
touches aggregation.

Like an aggregation run, a training holds a per-project advisory lock while it runs, and the
workers' sweep (:func:`reap`, every 15 s) uses the same test as for runs
(:func:`crowd.background.scheduling.abandoned`): a ``running`` version whose lock is free lost its worker
and is failed (and retried once); a ``queued`` version whose RQ job was lost is queued again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import psycopg2.errors
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from crowd.background import scheduling, webhooks
from crowd.background.connections import services
from crowd.config import JOB_KEEP, MODEL_QUEUE
from crowd.store import models, projects, review
from crowd.store import webhooks as hooks_store
from crowd.store.db import Cursor, Database
from crowd.store.models import ModelVersion
from crowd.store.projects import Project

if TYPE_CHECKING:  # scikit-learn is imported by the job only, not by the API processes
    from sklearn.pipeline import Pipeline

    from crowd import learn

log = logging.getLogger(__name__)

#: Tasks read, predicted and written per transaction when predicting.
PREDICT_BATCH = 5000
#: Fewest gold tasks above a threshold for it to count (see crowd.learn.calibrate).
MIN_GOLD_SUPPORT = 20
#: Namespace of the per-project advisory locks that mark a training as alive (aggregation
#: runs have their own, :data:`crowd.background.scheduling.LOCK_NAMESPACE`).
LOCK_NAMESPACE = 0x43524F4D  # "CROM"
#: The trigger of a version queued because the one before it lost its worker. A retry whose
#: worker dies too is not retried again: the training itself may be what kills it (memory).
RETRY = "retry"


def job_id(version_id: int) -> str:
    return f"crowd-model-{version_id}"


def request(
    db: Database,
    redis: Redis,
    project: Project,
    trigger: str,
    run_id: int | None = None,
    on_queued: Callable[[Cursor, ModelVersion], None] | None = None,
    complete: int | None = None,
) -> ModelVersion | None:
    """Queue a version of the project's model; None when one is already queued or running.

    ``on_queued`` runs in the transaction that records the version (the API stores its
    idempotent response there). ``complete``: the project's crowd-complete tasks, when the
    caller has just counted them.
    """
    with db.transaction() as cur:
        if complete is None:
            complete = models.complete_tasks(cur, project.id)
        version = models.create(cur, project.id, trigger, run_id, complete)
        if version is not None and on_queued is not None:
            on_queued(cur, version)
    if version is None:
        return None
    try:
        _enqueue(redis, version)
    except RedisError as exc:
        with db.transaction() as cur:
            models.fail(cur, version.project_id, version.id, f"could not queue the training: {exc}")
        raise
    return version


def _enqueue(redis: Redis, version: ModelVersion) -> None:
    # The models queue comes after the aggregation queue: a training starts only when no run
    # is queued (though it then holds its worker until it ends).
    Queue(MODEL_QUEUE, connection=redis).enqueue(
        train,
        version.id,
        version.project_id,
        job_id=job_id(version.id),
        job_timeout=3600,
        **JOB_KEEP,
        description=f"train the model of project {version.project_id} (version {version.id})",
    )


def reap(db: Database, redis: Redis) -> list[int]:
    """Recover versions that nothing will finish (the workers run it every 15 s, beside
    :func:`crowd.background.scheduling.reap`); returns the ids of the versions it failed.

    :func:`crowd.background.scheduling.abandoned` finds them, as it does runs. A ``queued`` version
    whose RQ job was lost (Redis flushed or restarted without its data) never started: its
    job is queued again, and it trains as itself. A ``running`` version whose worker died
    (killed, crashed, out of memory) is recorded as failed, with that error, and a new
    version (trigger ``retry``) is queued, unless it was itself a retry (its training may be
    what kills the worker) or the project has no model any more.
    """
    with db.transaction() as cur:
        candidates = models.open_versions(cur)
    failed = []
    for version_id, project_id, status in scheduling.abandoned(
        db, redis, candidates, LOCK_NAMESPACE, job_id
    ):
        with db.transaction() as cur:
            version = models.lock_if(cur, project_id, version_id, status)
            if version is None:
                continue  # it moved on meanwhile
            if status == models.ModelStatus.QUEUED:
                # Checked again under the row lock: another worker's sweep may have requeued it.
                if scheduling.job_lost(redis, job_id(version_id)):
                    _enqueue(redis, version)
                    log.warning(
                        "model version %s of project %s: its queued job was lost; queued again",
                        version_id, project_id,
                    )  # fmt: skip
                continue
            project = projects.get(cur, project_id)
            retry = version.trigger != RETRY and project is not None and project.model is not None
            error = (
                "the worker training it stopped before it finished"
                " (killed, crashed or out of memory)"
            )
            if retry:
                error += "; a new version retries it"
            elif version.trigger == RETRY:
                error += (
                    "; not retried, as it was itself a retry: "
                    f"POST /api/v1/projects/{project_id}/models to train again"
                )
            models.fail(cur, project_id, version_id, error)
        failed.append(version_id)
        log.warning("model version %s of project %s: %s", version_id, project_id, error)
        if retry and project is not None:
            request(db, redis, project, RETRY)
    return failed


def after_run(db: Database, redis: Redis, project_id: int, run_id: int) -> ModelVersion | None:
    """Called after aggregation run ``run_id`` published: queue a retrain when due. Never
    raises: a model problem must not fail the aggregation."""
    try:
        with db.transaction() as cur:
            project = projects.get(cur, project_id)
            if project is None or project.model is None:
                return None
            complete = models.complete_tasks(cur, project_id)
            due = complete - models.last_complete_tasks(cur, project_id)
        if due < project.retrain_every:
            return None
        return request(db, redis, project, "tasks", run_id, complete=complete)
    except Exception:
        log.exception("project %s: could not queue a retrain after run %s", project_id, run_id)
        return None


def _predict_all(
    db: Database,
    project: Project,
    spec: learn.ModelSpec,
    version_id: int,
    model: Pipeline,
    dim: int | None,
    threshold: float | None,
) -> tuple[int, int, int]:
    """Predict every task (gold ones too), :data:`PREDICT_BATCH` at a time, each batch written in a
    transaction of its own (short row locks). Returns ``(predicted, auto_labelled, stamped)``
    (see :func:`crowd.store.models.write_predictions`)."""
    from crowd import learn

    k = len(project.labels)
    after, predicted, closed, stamped = 0, 0, 0, 0
    while True:
        with db.transaction() as cur:
            batch = models.prediction_batch(
                cur, project.id, spec.field, spec.input, after, PREDICT_BATCH
            )
        if not batch:
            return predicted, closed, stamped
        after = batch[-1][0]
        usable, X, _ = learn.extract(spec, [value for _, value in batch], dim)
        label, confidence, margin = learn.summarize(learn.predict(model, X, k))
        rows: list[tuple[int, int | None, float | None, float | None]] = []
        j = 0
        for (task_id, _), ok in zip(batch, usable.tolist(), strict=True):
            if ok:
                rows.append((task_id, int(label[j]), float(confidence[j]), float(margin[j])))
                j += 1
            else:
                rows.append((task_id, None, None, None))
        for attempt in range(3):
            try:
                with db.transaction() as cur:
                    now_closed, now_stamped = models.write_predictions(
                        cur, project.id, version_id, rows, threshold
                    )
                    if project.review is not None:  # the review lane follows the model
                        review.route(cur, project, [row[0] for row in rows])
                closed, stamped = closed + now_closed, stamped + now_stamped
                break
            except psycopg2.errors.DeadlockDetected:
                # An aggregation run's publish or a reservation sweep met these task rows in
                # another order; the batch is retried whole.
                if attempt == 2:
                    raise
        predicted += j


def train(version_id: int, project_id: int) -> None:
    """Train model version ``version_id`` (queued by :func:`request`).

    Reads the training and gold rows in one short transaction, fits with no transaction
    open, predicts in batches, then records the version. A failure is recorded on the
    version, with its error, and re-raised so RQ records it too.
    """
    db, redis = services()
    with db.transaction() as cur:
        version = models.get(cur, project_id, version_id)
    if version is None:
        return  # gone with its project
    # Held until the end is recorded: a free lock on a running version means its worker died.
    with scheduling.project_lock(db.url, version.project_id, LOCK_NAMESPACE):
        with db.transaction() as cur:
            started = models.start(cur, project_id, version_id)
            project = projects.get(cur, version.project_id)
        if not started or project is None:
            return  # a duplicate of a job already run, or reaped meanwhile
        _train(db, redis, project, version_id)


def _move_results_cursor(db: Database, redis: Redis, project_id: int) -> None:
    """Ask for an aggregation run (trigger ``model``) after auto labels were set or changed.

    ``since_run`` polling returns such a task while the project's ``last_run_id`` is still the
    run it was stamped with (:func:`crowd.store.models.write_predictions`); the next run to
    publish moves past it, so a poller gets the task in one pass, or two, not in every pass.
    If a run is already queued or running, this is the one follow-up after it. Never raises:
    the version is recorded already.
    """
    try:
        scheduling.mark_stale(db, redis, project_id, trigger="model")
    except Exception as exc:
        log.warning("project %s: could not queue a run after auto-labelling: %s", project_id, exc)


def _train(db: Database, redis: Redis, project: Project, version_id: int) -> None:
    try:
        from crowd import learn  # scikit-learn: inside, so a broken install fails the version

        spec = learn.ModelSpec.from_json(project.model)
        if spec is None:
            raise ValueError("the project has no model settings; PATCH the project's model")
        with db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _, values, posteriors, run_id = models.training_rows(
                cur, project.id, spec.field, spec.input
            )
            gold_values, gold_labels = models.gold_rows(cur, project.id, spec.field, spec.input)
        usable, X, dim = learn.extract(spec, values)
        if not usable.any():
            raise ValueError(
                f"no complete task has a usable data field {spec.field!r} "
                f"({len(values)} complete tasks; the model reads {spec.input})"
            )
        k = len(project.labels)
        model = learn.fit(spec, X, np.array(posteriors, dtype=np.float64)[usable].reshape(-1, k))
        gold_ok, gold_X, _ = learn.extract(spec, gold_values, dim)
        proba = learn.predict(model, gold_X, k)
        gold = gold_labels[gold_ok]
        metrics = learn.gold_metrics(proba, gold)
        threshold = None
        if project.auto_label_accuracy is not None and gold.size:
            _, confidence, _ = learn.summarize(proba)
            threshold = learn.calibrate_threshold(
                confidence,
                proba.argmax(axis=1) == gold,
                project.auto_label_accuracy,
                min_support=MIN_GOLD_SUPPORT,
            )
        predicted, closed, stamped = _predict_all(
            db, project, spec, version_id, model, dim, threshold
        )
        with db.transaction() as cur:
            trained = models.record_trained(
                cur,
                project.id,
                version_id,
                blob=learn.dump(model),
                kind=spec.kind,
                run_id=run_id,
                trained_tasks=int(usable.sum()),
                skipped_tasks=int((~usable).sum()),
                predicted_tasks=predicted,
                metrics=metrics,
                threshold=threshold,
                auto_labelled=closed,
            )
            # The event is recorded with the version (an outbox) and queued after the commit.
            deliveries = (
                hooks_store.emit(cur, project.id, "model.trained", trained.to_json())
                if trained is not None
                else []
            )
        webhooks.enqueue(redis, project.id, deliveries)
        if stamped:
            _move_results_cursor(db, redis, project.id)
    except Exception as exc:
        log.error("model version %s of project %s failed:\n%s", version_id, project.id,
                  traceback.format_exc())  # fmt: skip
        with db.transaction() as cur:
            models.fail(cur, project.id, version_id, f"{type(exc).__name__}: {exc}")
        raise
