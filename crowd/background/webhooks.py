"""Sending webhook deliveries: signing, the HTTP request, the RQ job and its retries.

The outbox rows live in PostgreSQL (:mod:`crowd.store.webhooks`). After the transaction that
recorded them commits, :func:`enqueue` puts one RQ job per delivery on the queue; the job,
:func:`deliver`, POSTs the signed body once and records the attempt. A failed attempt raises,
so RQ retries it after the next interval of ``CROWD_WEBHOOK_RETRY_INTERVALS`` (RQ's scheduler,
which every crowd worker runs, moves it back onto the queue when due); after the last one the
delivery is ``failed`` for good. :func:`requeue_lost` (worker maintenance) queues pending
deliveries whose job is gone, e.g. because Redis was down when they were recorded.

Receivers verify ``X-Crowd-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body under
the webhook's secret (see docs/WEBHOOKS.md). Deliveries reach public addresses only, unless
``CROWD_WEBHOOK_ALLOW_PRIVATE`` allows private ones (:mod:`crowd.egress`); a refused address
fails the delivery for good at once, with the reason as its ``last_error``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import requests
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from crowd import __version__, egress
from crowd.background import scheduling
from crowd.background.connections import services, settings
from crowd.config import JOB_KEEP, WEBHOOK_QUEUE, Networks
from crowd.store import predictions, runs, typed
from crowd.store import webhooks as store
from crowd.store.db import Cursor, Database
from crowd.store.projects import Project
from crowd.store.webhooks import Delivery, Event

log = logging.getLogger(__name__)

#: Seconds to connect, and to wait for the response, per attempt. Short: a worker busy with a
#: delivery is not running aggregation (see :data:`crowd.config.WEBHOOK_QUEUE`).
TIMEOUT = (3.0, 5.0)
#: A pending delivery untouched this long (seconds) whose job is gone is queued again.
LOST_AFTER = 60.0


def retry_intervals() -> tuple[int, ...]:
    """Seconds before each retry of a failed attempt; a delivery gets ``len + 1`` attempts."""
    return settings().webhook_retry_intervals


def job_id(delivery_id: int) -> str:
    return f"crowd-hook-{delivery_id}"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Crowd-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(delivery: Delivery, secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt. ``timestamp`` (unix seconds) is in the body too,
    so it is covered by the signature and a receiver can refuse old replays."""
    body = json.dumps(
        {
            "delivery_id": delivery.id,
            "event": delivery.event,
            "project_id": delivery.project_id,
            "created_at": delivery.created_at.isoformat(),
            "timestamp": now,
            "data": delivery.payload,
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"crowd-webhooks/{__version__}",
        "X-Crowd-Event": delivery.event,
        "X-Crowd-Delivery": str(delivery.id),
        "X-Crowd-Timestamp": str(now),
        "X-Crowd-Signature": sign(secret, body),
    }
    return body, headers


class Attempt(NamedTuple):
    """What one POST came to: ``error`` is None on a 2xx; ``refused`` when the address was
    not allowed, so nothing was sent (and retrying is pointless)."""

    status_code: int | None
    error: str | None
    refused: bool = False


def post(url: str, body: bytes, headers: dict[str, str], allowed: Networks = ()) -> Attempt:
    """POST once to a public address (or an ``allowed`` private one), following no redirects."""
    try:
        with (
            egress.session(allowed) as http,
            http.post(
                url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True
            ) as response,
        ):
            code, location = response.status_code, response.headers.get("Location")
    except egress.AddressRefused as exc:
        return Attempt(None, f"not sent: {exc}", refused=True)
    except requests.RequestException as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}")
    if 200 <= code < 300:
        return Attempt(code, None)
    if 300 <= code < 400:
        return Attempt(
            code,
            f"the receiver answered HTTP {code}, a redirect to {location or 'nowhere'}; crowd "
            "follows no redirects: register the URL it redirects to",
        )
    return Attempt(code, f"the receiver answered HTTP {code}; crowd expects a 2xx")


class DeliveryFailed(Exception):
    """An attempt failed and will be retried (RQ retries the job)."""


def deliver(delivery_id: int, project_id: int) -> None:
    """RQ job: send delivery ``delivery_id`` (of project ``project_id``) once and record the
    attempt.

    Raises :class:`DeliveryFailed` when the attempt failed and attempts remain, so RQ
    schedules the retry; returns when the delivery succeeded, failed for good, or has
    nothing left to send (already done, or its webhook deleted).
    """
    db, _redis = services()
    with db.transaction() as cur:
        target = store.pending_target(cur, project_id, delivery_id)
    if target is None:
        return
    delivery, url, secret = target
    body, headers = request_for(delivery, secret, int(time.time()))
    attempt = post(url, body, headers, settings().webhook_allow_private)
    with db.transaction() as cur:
        recorded = store.record_attempt(
            cur,
            project_id,
            delivery_id,
            ok=attempt.error is None,
            status_code=attempt.status_code,
            error=attempt.error,
            # A refused address is not retried: the settings said no, not the receiver.
            max_attempts=1 if attempt.refused else len(retry_intervals()) + 1,
        )
    if recorded is None:
        return
    status, attempts = recorded
    if status == store.DeliveryStatus.FAILED:
        log.warning(
            "webhook delivery %s failed for good after %s attempts: %s",
            delivery_id,
            attempts,
            attempt.error,
        )
    elif status == store.DeliveryStatus.PENDING:
        raise DeliveryFailed(f"webhook delivery {delivery_id}, attempt {attempts}: {attempt.error}")


def enqueue(redis: Redis, project_id: int, delivery_ids: Iterable[int]) -> None:
    """Queue a job per delivery of the project (call after the recording transaction
    commits).

    Redis being down loses nothing: the rows stay ``pending`` and :func:`requeue_lost`
    queues them later; the error is logged, not raised, so the caller's work goes on.
    """
    intervals = list(retry_intervals())
    queue = Queue(WEBHOOK_QUEUE, connection=redis)
    for delivery_id in delivery_ids:
        try:
            queue.enqueue(
                deliver,
                delivery_id,
                project_id,
                job_id=job_id(delivery_id),
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                job_timeout=60,
                **JOB_KEEP,
                description=f"webhook delivery {delivery_id}",
            )
        except RedisError as exc:
            log.warning("could not queue webhook delivery %s (sent later): %s", delivery_id, exc)
            return


def requeue_lost(db: Database, redis: Redis, idle_seconds: float = LOST_AFTER) -> list[int]:
    """Queue again the pending deliveries idle for ``idle_seconds`` whose job is gone (lost
    with Redis, never queued, or its worker died); returns their ids."""
    with db.transaction() as cur:
        candidates = store.stalled(cur, idle_seconds)
    lost = [(d, p) for d, p in candidates if scheduling.job_lost(redis, job_id(d))]
    if lost:
        log.warning("queueing %s webhook deliveries whose job was lost", len(lost))
        for delivery_id, project_id in lost:
            enqueue(redis, project_id, [delivery_id])
    return [d for d, _ in lost]


def emit_run_events(
    cur: Cursor, run_id: int, project: Project, written_task_ids: Sequence[int], changed: int
) -> list[int]:
    """Record the events of a published run, in its publish transaction: ``task.completed``
    for the tasks it completed (one delivery per :data:`~crowd.store.webhooks.TASKS_PER_DELIVERY`
    tasks; looked for only when a webhook listens), then ``aggregation.completed``, then
    ``review.corrections`` when the run brought the corrections counted since the previous one
    to ``corrections_every`` (see :func:`crowd.store.predictions.count_corrections`).
    ``written_task_ids`` are the tasks whose result the run wrote, ``changed`` how many of
    them changed. Returns the delivery ids to queue after commit."""
    completed = (
        store.mark_completed_tasks(cur, run_id, project, written_task_ids)
        if store.listens(cur, project.id, Event.TASK_COMPLETED)
        else []
    )
    ids: list[int] = []
    chunk = store.TASKS_PER_DELIVERY
    parts = -(-len(completed) // chunk)
    typed_rows = (
        typed.results_of(cur, project.id, [row[0] for row in completed])
        if project.type != "categorical" and completed
        else {}
    )
    for part in range(parts):
        if project.type != "categorical":  # the type's result fields (docs/TYPES.md)
            payload = {
                "run_id": run_id,
                "part": part + 1,
                "parts": parts,
                "tasks": [
                    {
                        "task_id": task_id,
                        "external_id": external_id,
                        **typed.result_json(project, typed_rows.get(task_id)),
                    }
                    for task_id, external_id, *_ in completed[part * chunk : (part + 1) * chunk]
                ],
            }
            ids += store.emit(cur, project.id, Event.TASK_COMPLETED, payload)
            continue
        tasks: list[dict[str, Any]] = [
            {
                "task_id": task_id,
                "external_id": external_id,
                "label": project.labels[label],
                "confidence": confidence,
                "prediction": predictions.to_json(
                    project.labels, model, model_label, model_confidence
                ),
            }
            for task_id, external_id, label, confidence, model, model_label, model_confidence in (
                completed[part * chunk : (part + 1) * chunk]
            )
        ]
        payload = {"run_id": run_id, "part": part + 1, "parts": parts, "tasks": tasks}
        ids += store.emit(cur, project.id, Event.TASK_COMPLETED, payload)
    run = runs.get(cur, project.id, run_id)
    assert run is not None
    summary = {**run.to_json(), "results_changed": changed}
    ids += store.emit(cur, project.id, Event.AGGREGATION_COMPLETED, summary)
    due = predictions.count_corrections(cur, run_id, project.id, written_task_ids)
    if due is not None:
        ids += store.emit(cur, project.id, Event.REVIEW_CORRECTIONS, due.to_json(run_id))
    return ids
