"""When aggregation runs happen: one queued run per project at a time, and no lost update.

Two Redis keys per project carry the protocol:

* ``stale``: set after accepted answers commit (each API process batches its answered
  projects and marks them every 50 ms: :class:`StaleMarks`).
* ``queued``: held from the moment a run is queued until that run has finished and seen no
  newer ``stale``. Setting it is ``SET NX``, so at most one run per project is queued or
  running.

A mark sets ``stale`` and tries to take ``queued`` in one atomic script; the one that
takes it queues a run. A run clears ``stale`` *before* it reads the answers, so an answer
committed after that read is marked, and so sets ``stale``, again. When the run ends, a second script checks
``stale``: if set, the run keeps ``queued`` and queues exactly one follow-up; if not, it
releases ``queued``. Answers arriving during a run therefore cause one follow-up run, never
zero and never a pile of them.

Runs are recorded in PostgreSQL (:mod:`crowd.store.runs`), not in RQ. :func:`reap` finds
runs whose worker died (the run's PostgreSQL advisory lock is free although it is marked
running) or whose RQ job was lost, records them as failed, and queues a retry; and it queues
a catch-up run for any project with more stored answers than its last run read and no run
pending (a ``stale`` mark lost while Redis was down), taking over a ``queued`` flag that a
run ending while Redis was down could not release. Workers call it every 15 s.
:func:`abandoned`, the test of a dead or lost job, is shared with model versions
(:func:`crowd.background.training.reap`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg2
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from crowd.config import JOB_KEEP, run_queue
from crowd.store import projects, runs
from crowd.store.db import Cursor, Database
from crowd.store.runs import Run

log = logging.getLogger(__name__)

#: The run's RQ job, by name: this module sits below the job in the background package
#: (the job uses the run protocol here), so it names the function rather than importing it.
AGGREGATE_JOB = "crowd.background.aggregation.aggregate"

#: Safety net: a ``queued`` flag nobody releases (Redis kept it but the run vanished in a way
#: :func:`reap` did not see) expires after this long.
QUEUED_TTL = 3600
#: A queued run whose RQ job is gone is requeued once it is this old (the job is queued right
#: after the run row commits, so a few seconds would do); and a ``queued`` flag this old with no
#: run queued or running in PostgreSQL is an orphan (its run ended while Redis was down).
LOST_AFTER = timedelta(seconds=20)
#: Namespace of the per-project advisory locks that mark a run as alive (model trainings have
#: their own: :data:`crowd.background.training.LOCK_NAMESPACE`).
LOCK_NAMESPACE = 0x43524F57  # "CROW"

_MARK = """
redis.call('SET', KEYS[1], '1')
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""


def _keys(project_id: int) -> list[str]:
    return [f"crowd:agg:{project_id}:stale", f"crowd:agg:{project_id}:queued"]


def job_id(run_id: int) -> str:
    return f"crowd-run-{run_id}"


def enqueue(
    db: Database,
    redis: Redis,
    project_id: int,
    trigger: str,
    on_queued: Callable[[Cursor, Run], None] | None = None,
) -> Run:
    """Record a queued run and put its job on its project's size class's queue
    (:func:`crowd.config.run_queue`). The caller holds ``queued``.

    ``on_queued`` runs in the transaction that records the run (the API stores its
    idempotent response there); if it raises, nothing is queued and ``queued`` is released.
    """
    try:
        with db.transaction() as cur:
            run = runs.create(cur, project_id, trigger)
            queue = run_queue(projects.answer_count(cur, project_id))
            if on_queued is not None:
                on_queued(cur, run)
    except BaseException:
        # PostgreSQL is away (or the caller's hook failed): without a run row nothing would
        # ever release ``queued``, and every later mark would find it taken. Give it back; the
        # next mark or reap retries.
        redis_release(redis, project_id)
        raise
    try:
        Queue(queue, connection=redis).enqueue(
            AGGREGATE_JOB,
            run.id,
            project_id,
            job_id=job_id(run.id),
            job_timeout=3600,
            **JOB_KEEP,
            description=f"aggregate project {project_id} (run {run.id})",
        )
    except RedisError as exc:
        with db.transaction() as cur:
            runs.fail(cur, project_id, run.id, f"could not queue the run: {exc}")
        redis_release(redis, project_id)
        raise
    return run


def redis_release(redis: Redis, project_id: int) -> None:
    try:
        redis.delete(_keys(project_id)[1])
    except RedisError:
        log.warning("could not release the queued flag of project %s", project_id)


def mark_stale(
    db: Database,
    redis: Redis,
    project_id: int,
    trigger: str = "answers",
    on_queued: Callable[[Cursor, Run], None] | None = None,
) -> Run | None:
    """New answers (or a request) for ``project_id``: queue a run unless one is queued or
    running, in which case that one is followed by exactly one more. Returns the new run
    (``on_queued``: see :func:`enqueue`)."""
    if redis.eval(_MARK, 2, *_keys(project_id), QUEUED_TTL):
        return enqueue(db, redis, project_id, trigger, on_queued)
    return None


def answers_changed(db: Database, redis: Redis, project_id: int) -> None:
    """:func:`mark_stale` for the answer path: Redis (or PostgreSQL, for the run record) being
    down must not fail an answer that is already stored, so errors are logged, and the next
    answer or :func:`reap` catches up."""
    try:
        mark_stale(db, redis, project_id)
    except Exception as exc:
        log.warning("project %s: could not schedule aggregation: %s", project_id, exc)


class StaleMarks:
    """Marks projects stale from a background thread, batching the answers of ``interval``.

    The API process adds a project after each answer commits; the thread calls
    :func:`answers_changed` once per project per ``interval`` (50 ms), so under load a busy
    project costs one Redis call per interval per process instead of one per answer. Every
    mark still happens after the commits it covers. If the process dies with marks pending,
    :func:`reap` catches the project up (its stored answers outnumber its last run's).
    """

    def __init__(self, db: Database, redis: Redis, interval: float = 0.05) -> None:
        self.db = db
        self.redis = redis
        self.interval = interval
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        _all_marks.add(self)

    def add(self, project_id: int) -> None:
        with self._lock:
            self._pending.add(project_id)
            # gunicorn forks after create_app(): each process needs its own thread
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="crowd-stale-marks", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.interval)  # let the answers of this interval gather
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Mark every pending project now; returns once marks in progress are done too."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, set()
            for project_id in sorted(pending):
                answers_changed(self.db, self.redis, project_id)


_all_marks: weakref.WeakSet[StaleMarks] = weakref.WeakSet()


@atexit.register
def flush_all() -> None:
    """Flush every :class:`StaleMarks` of this process (at exit, and in tests)."""
    for marks in list(_all_marks):
        if marks._pid == os.getpid():
            marks.flush()


def begin(redis: Redis, project_id: int) -> None:
    """A run is about to read the answers: everything committed so far is in it."""
    redis.delete(_keys(project_id)[0])


def finish(db: Database, redis: Redis, project_id: int) -> Run | None:
    """A run has ended: queue the one follow-up if answers came meanwhile, else release."""
    if redis.eval(_FINISH, 2, *_keys(project_id), QUEUED_TTL):
        return enqueue(db, redis, project_id, "follow-up")
    return None


#: This process's connection for run locks, per thread and database URL
#: (:func:`project_lock`); ``pid`` tells a fork's inherited ones apart.
_lock_connections = threading.local()


def _lock_connection(database_url: str) -> psycopg2.extensions.connection:
    """This thread's open autocommit connection to ``database_url`` for advisory locks, made
    on first use in this process (a forked child never uses its parent's)."""
    held: dict[str, psycopg2.extensions.connection] | None = getattr(
        _lock_connections, "by_url", None
    )
    if held is None or getattr(_lock_connections, "pid", None) != os.getpid():
        held = _lock_connections.by_url = {}
        _lock_connections.pid = os.getpid()
    conn = held.get(database_url)
    if conn is None or conn.closed:
        conn = psycopg2.connect(database_url)
        conn.autocommit = True
        held[database_url] = conn
    return conn


def _drop_lock_connection(database_url: str, conn: psycopg2.extensions.connection) -> None:
    """Close ``conn`` (which drops every lock it holds) and forget it."""
    held = getattr(_lock_connections, "by_url", {})
    if held.get(database_url) is conn:
        del held[database_url]
    with contextlib.suppress(psycopg2.Error):
        conn.close()


@contextmanager
def project_lock(
    database_url: str, project_id: int, namespace: int = LOCK_NAMESPACE
) -> Iterator[None]:
    """Hold the project's lock in ``namespace`` (by default its run lock) for the ``with``
    block, on this thread's lock connection (kept open between jobs of a process that runs
    them without a fork: workers/bootstrap.py).

    The lock lives as long as the session: if the process dies, PostgreSQL drops it, which is
    how :func:`abandoned` tells a dead job from a slow one. No transaction stays open. A job
    takes it before it marks itself running and keeps it until it has recorded its end. If
    taking or releasing it fails or is interrupted (a signal, a lost connection), the
    connection is closed, so no lock outlives its block.
    """
    for attempt in (1, 2):
        conn = _lock_connection(database_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s, %s)", (namespace, project_id))
            break
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            _drop_lock_connection(database_url, conn)
            if attempt == 2:  # a kept connection may have died idle (server restart): once more
                raise
        except BaseException:
            _drop_lock_connection(database_url, conn)
            raise
    try:
        yield
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (namespace, project_id))
                row = cur.fetchone()
            if not (row and row[0]):  # not held: something is off with this session
                _drop_lock_connection(database_url, conn)
        except psycopg2.Error as exc:  # the session is gone or unusable, and its locks with it
            log.warning("could not release the lock of project %s: %s", project_id, exc)
            _drop_lock_connection(database_url, conn)
        except BaseException:
            _drop_lock_connection(database_url, conn)
            raise


def _lock_is_free(cur: psycopg2.extensions.cursor, namespace: int, project_id: int) -> bool:
    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (namespace, project_id))
    row = cur.fetchone()
    got = bool(row and row[0])
    if got:
        cur.execute("SELECT pg_advisory_unlock(%s, %s)", (namespace, project_id))
    return got


def _orphaned(redis: Redis, project_id: int) -> bool:
    """``queued`` is held, though the caller found no run queued or running in PostgreSQL,
    and was taken longer than :data:`LOST_AFTER` ago (every taking of it sets a fresh TTL and
    records a run within milliseconds): the run holding it finished while Redis was down
    and could not release it (Redis kept the flag, in its append-only file)."""
    ttl = redis.ttl(_keys(project_id)[1])
    return ttl > 0 and QUEUED_TTL - ttl > LOST_AFTER.total_seconds()


def job_lost(redis: Redis, rq_job_id: str) -> bool:
    """Nothing will run this RQ job (any of crowd's): it is gone, ended without running, was
    started by a worker that is no longer busy with it, or is ``queued`` but in no queue.

    The last two happen when Redis goes away while a worker takes the job, with Redis's
    append-only file keeping what was written: a worker that had popped the job from its
    queue but not yet marked it started leaves it ``queued`` in no queue, and one that had
    marked it started quits and leaves it ``started``, each for the hour of its timeout. (A
    healthy worker's job is out of the queue and still ``queued`` for a moment between the
    two; callers act only on runs queued for over :data:`LOST_AFTER`, and a retry of a run
    that then starts anyway is harmless: :func:`crowd.store.runs.start` lets one of them run.)
    """
    try:
        job = Job.fetch(rq_job_id, connection=redis)
    except NoSuchJobError:
        return True
    status = job.get_status()
    if status == JobStatus.STARTED:
        return not _worker_busy_with(redis, job)
    if status == JobStatus.QUEUED:
        return redis.lpos(Queue(job.origin, connection=redis).key, job.id) is None
    return status not in _WILL_RUN


#: Job states that still lead to a run of the job (SCHEDULED: waiting for a retry).
_WILL_RUN = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _worker_busy_with(redis: Redis, job: Job) -> bool:
    if not job.worker_name:
        return False
    key = Worker.redis_worker_namespace_prefix + job.worker_name
    worker = Worker.find_by_key(key, connection=redis)
    return worker is not None and worker.get_current_job_id() == job.id


def abandoned(
    db: Database,
    redis: Redis,
    candidates: Iterable[tuple[int, int, str, datetime]],
    namespace: int,
    rq_job_id: Callable[[int], str],
) -> Iterator[tuple[int, int, str]]:
    """Which queued or running jobs recorded in PostgreSQL (aggregation runs, model versions)
    nothing will finish: yields ``(id, project_id, status)`` among ``candidates``
    ``(id, project_id, status, created_at)``.

    * ``running`` with the project's lock in ``namespace`` free: the job holds that lock
      (:func:`project_lock`) from before it marks itself running until its end is recorded,
      and PostgreSQL drops it with the session, so the worker died (killed, crashed, out of
      memory, machine lost).
    * ``queued`` for over :data:`LOST_AFTER` whose RQ job (``rq_job_id(id)``) is lost
      (:func:`job_lost`): gone with Redis, or stranded by a worker that quit.

    Each is checked just before it is yielded; the job may still move on meanwhile, so the
    caller acts only if the status is unchanged under a row lock.
    """
    candidates = list(candidates)
    if not candidates:
        return
    conn = psycopg2.connect(db.url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for id_, project_id, status, created_at in candidates:
                if status == "running":
                    dead = _lock_is_free(cur, namespace, project_id)
                else:
                    old = datetime.now(UTC) - created_at > LOST_AFTER
                    dead = old and job_lost(redis, rq_job_id(id_))
                if dead:
                    yield id_, project_id, status
    finally:
        conn.close()


def reap(db: Database, redis: Redis) -> list[int]:
    """Fail and retry abandoned runs, and catch up projects left behind; returns the ids of
    the runs it failed.

    A run :func:`abandoned` finds (its worker died, or it was queued and its RQ job was lost
    with Redis) is recorded as failed, and a retry is queued: nothing of it was published,
    since publishing is one transaction. A project with more stored answers than its last
    run read, and no run pending, lost its ``stale`` mark (Redis was down when the answers
    came): it gets a ``catch-up`` run, taking over a ``queued`` flag left orphaned by a run
    that could not release it.
    """
    with db.transaction() as cur:
        candidates = runs.open_runs(cur)
        lagging = runs.behind(cur)
    for project_id in lagging:
        if mark_stale(db, redis, project_id, trigger="catch-up") is None and _orphaned(
            redis, project_id
        ):
            redis_release(redis, project_id)
            mark_stale(db, redis, project_id, trigger="catch-up")
    reaped = []
    for run_id, project_id, status in abandoned(db, redis, candidates, LOCK_NAMESPACE, job_id):
        if status == runs.RunStatus.RUNNING:
            reason = "the worker running it stopped before it finished"
        else:
            reason = "its queued job was lost"
        with db.transaction() as tx:
            tx.execute(
                "SELECT status FROM aggregation_runs WHERE id = %s AND project_id = %s FOR UPDATE",
                (run_id, project_id),
            )
            row = tx.fetchone()
            if row is None or row[0] != status:
                continue
            runs.fail(tx, project_id, run_id, f"{reason}; run retried")
        reaped.append(run_id)
        redis.set(_keys(project_id)[1], "1", ex=QUEUED_TTL)
        retry = enqueue(db, redis, project_id, "retry")
        log.warning("run %s of project %s: %s; queued run %s", run_id, project_id, reason, retry.id)
    return reaped
