"""Start an RQ worker for crowd's queues, with the numeric stack imported once up front.

Importing numpy/scipy and ``crowd.em`` before forking work-horses means each job starts
without paying for those imports again. The worker also reaps abandoned aggregation runs
(see :func:`crowd.scheduling.reap`) when it starts and every ``REAP_EVERY`` seconds, and then
also deletes expired idempotency keys.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from redis import Redis
from rq import Queue, Worker

from crowd import jobs, scheduling
from crowd.config import QUEUES, Settings
from crowd.store import idempotency

log = logging.getLogger(__name__)

#: Seconds between two checks for runs whose worker died. An idle worker wakes every
#: worker_ttl - 15 = 15 s (RQ's dequeue timeout) and checks when this much has passed.
REAP_EVERY = 15


def preload() -> None:
    for name in ("numpy", "scipy.special", "scipy.sparse", "pyarrow.csv", "crowd.em"):
        importlib.import_module(name)


class CrowdWorker(Worker):
    """An RQ worker that also requeues aggregation runs other workers abandoned."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        try:
            db, redis = jobs.services()
            scheduling.reap(db, redis)
        except Exception:  # maintenance must not stop the worker; the next round retries
            log.exception("reaping abandoned aggregation runs failed")
        try:
            db, _redis = jobs.services()
            with db.transaction() as cur:
                idempotency.purge_expired(cur)
        except Exception:
            log.exception("deleting expired idempotency keys failed")


def make_worker(settings: Settings, **kwargs: Any) -> CrowdWorker:
    if not settings.redis_url:
        raise SystemExit("crowd: error: set CROWD_REDIS_URL (or run `crowd serve` first)")
    jobs.configure(settings)
    connection = Redis.from_url(settings.redis_url)
    queues = [Queue(name, connection=connection) for name in QUEUES]
    return CrowdWorker(
        queues, connection=connection, maintenance_interval=REAP_EVERY, worker_ttl=30, **kwargs
    )


def run(settings: Settings, *, burst: bool = False) -> None:
    preload()
    make_worker(settings).work(burst=burst, with_scheduler=True)
