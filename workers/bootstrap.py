"""Start an RQ worker for crowd's queues, with the numeric stack imported once up front.

Importing numpy/scipy, ``crowd.em``, ``crowd.learn`` (scikit-learn) and the job modules before
forking work-horses means each job starts without paying for those imports again. Small
projects' runs (queue ``crowd``) run in the worker's own process, with no work-horse, unless
``CROWD_FORK_SMALL_RUNS=1`` (see :meth:`CrowdWorker.execute_job`). When it starts and
every ``REAP_EVERY`` seconds, the worker also reaps abandoned aggregation runs (see
:func:`crowd.background.scheduling.reap`) and model versions (see :func:`crowd.background.training.reap`), queues
webhook deliveries whose job was lost (see
:func:`crowd.background.webhooks.requeue_lost`) and deletes expired idempotency keys. When it
starts and every ``SWEEP_EVERY`` seconds, it deletes the kept answer copies no run will read
again (see :func:`crowd.store.answer_state.sweep`). It runs RQ's scheduler too, which queues
webhook delivery retries when their backoff is over, and it is started again when it quits
because Redis went away.

It polls its queues in priority order (small projects' runs first), but a queue with jobs
waiting is polled first once the worker has taken ``Settings.fair_skips`` jobs from the
others meanwhile (:class:`workers.fair.FairOrder`; docs/SCALING.md, "Fair scheduling"); a
worker made with ``large_runs=False`` (``crowd worker --no-large-runs``) never takes a large
project's run.
"""

from __future__ import annotations

import importlib
import logging
import signal
import time
from collections.abc import Collection
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.worker import WorkerStatus

from crowd.background import connections, scheduling, training, webhooks
from crowd.config import LARGE_RUN_QUEUE, QUEUES, RUN_QUEUE, WEBHOOK_QUEUE, Settings
from crowd.store import answer_state, idempotency
from crowd.store.db import Database
from workers.fair import FairOrder

log = logging.getLogger(__name__)

#: Seconds between two checks for runs whose worker died. An idle worker wakes every
#: worker_ttl - 15 = 15 s (RQ's dequeue timeout) and checks when this much has passed.
REAP_EVERY = 15
#: Seconds between two sweeps of the kept answer copies (deleted projects', replaced
#: databases'); checked at each maintenance round, so at most REAP_EVERY late.
SWEEP_EVERY = 600
#: Seconds between a worker quitting on an error (Redis gone) and the next one starting.
RESTART_AFTER = 2.0
#: Seconds the worker's command (pub/sub) thread waits for a message before it checks whether
#: it should stop. RQ uses 60, and redis-py >= 8.2 joins that thread with no time limit when it
#: stops, so a stopping worker hung for up to a minute; 1 s bounds the stop on any version.
PUBSUB_WAKE = 1.0


class QuietMaintenance(logging.Filter):
    """Demote RQ's per-round maintenance lines ("cleaning registries for queue ...", four every
    :data:`REAP_EVERY` seconds) to DEBUG, so an idle worker's log stays quiet while job
    starts, results and failures stay at INFO and above. They show again at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and "cleaning" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_maintenance() -> None:
    """Install :class:`QuietMaintenance` on RQ's worker logger (once)."""
    logger = logging.getLogger("rq.worker")
    if not any(isinstance(f, QuietMaintenance) for f in logger.filters):
        logger.addFilter(QuietMaintenance())


def preload() -> None:
    """Import what jobs use, once, before any work-horse is forked: the numerics, and the job
    modules themselves (a module first imported in a work-horse is imported again in every
    one: crowd.background.aggregation and what it imports took 65 ms a job)."""
    modules = ("numpy", "scipy.special", "scipy.sparse", "pyarrow.csv", "crowd.em")
    jobs = ("crowd.background.aggregation", "crowd.background.training")
    for name in (*modules, "crowd.learn", *jobs):  # crowd.learn: scikit-learn, for trainings
        importlib.import_module(name)


class CrowdWorker(Worker):
    """An RQ worker that also requeues aggregation runs and model versions other workers
    abandoned, and webhook deliveries whose job was lost, and polls its queues in a fair
    order (:class:`workers.fair.FairOrder`, when ``fair_skips`` is 1 or more)."""

    #: A stop signal (SIGTERM, SIGINT) came: :func:`run` must not start another worker.
    stop_asked = False
    #: ``time.monotonic()`` of this worker's last sweep of kept copies (None: none yet).
    last_swept: float | None = None

    def __init__(
        self,
        queues: list[Queue],
        *args: Any,
        fair_skips: int = 0,
        in_process: Collection[str] = (),
        **kwargs: Any,
    ):
        super().__init__(queues, *args, **kwargs)
        #: The queue order policy; None: RQ's (fixed priority order).
        self.fair = FairOrder(self.queue_names(), fair_skips) if fair_skips > 0 else None
        #: Queues whose jobs run in this process, without a work-horse (see execute_job).
        self.in_process = frozenset(in_process)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run a job of a queue in :attr:`in_process` here, as RQ's ``SimpleWorker`` does;
        any other in a forked work-horse (RQ's default).

        A small project's run costs less than RQ's fork and the work-horse's fresh
        connections (benchmarks/job_cost.py, RESULTS.md "Per-job cost"); in this process it
        reuses the connections, the imports and the pages of earlier jobs. Nothing the run
        protocol relies on comes from the fork: a worker killed during such a run drops the
        run's lock with its session, and the workers' reap retries the run as it does when a
        work-horse is killed; a run that fails or times out (RQ's SIGALRM) is recorded failed
        by the job itself, and the worker goes on; a warm shutdown waits for the run.

        No work-horse monitor renews RQ's heartbeats meanwhile: they last RQ's 90 s (its
        monitoring interval + 60), far beyond a small run, and kept short on purpose: a
        worker that dies before its run is marked running shows as gone within them, so the
        reap's :func:`crowd.background.scheduling.job_lost` retries the queued run. A run
        that outlasts them only shows in RQ's registries as abandoned; crowd judges running
        runs by their lock, never by RQ's registries.
        """
        if queue.name not in self.in_process:
            super().execute_job(job, queue)
            return
        execution = self.prepare_execution(job)
        self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill the work-horse; with none (no job, or a job running in this process) do
        nothing. RQ's own would signal ``getpgid(0)``, this worker's process group, when
        RQ's stop-job or kill-horse command comes during an in-process run: such a run
        cannot be stopped short of stopping the worker (``crowd worker`` gets SIGTERM)."""
        if not self.horse_pid:
            log.warning("worker: no work-horse to stop (a run in this process goes on)")
            self._stopped_job_id = None
            return
        super().kill_horse(sig)

    def reorder_queues(self, reference_queue: Queue) -> None:
        """After a job was taken from ``reference_queue``: poll next in :attr:`fair`'s order,
        told which queues still hold jobs (one pipelined LLEN per queue). If Redis fails
        here, the order stays as it was (the job taken is not given up for it)."""
        if self.fair is None:
            super().reorder_queues(reference_queue)
            return
        try:
            pipe = self.connection.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue.key)
            lengths = pipe.execute()
        except RedisError as exc:
            log.warning("worker: could not read the queue lengths: %s", exc)
            return
        waiting = {q.name for q, n in zip(self.queues, lengths, strict=True) if n}
        self.fair.served(reference_queue.name, waiting)
        by_name = {q.name: q for q in self.queues}
        self._ordered_queues = [by_name[name] for name in self.fair.order()]

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        """RQ's subscription to this worker's command channel, with a thread that wakes every
        :data:`PUBSUB_WAKE` seconds, so that stopping it (in RQ's teardown) is bounded."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ: None
            sleep_time=PUBSUB_WAKE, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        db, redis = connections.services()

        def purge_keys() -> None:
            with db.transaction() as cur:
                idempotency.purge_expired(cur)

        for what, task in (
            ("reaping abandoned aggregation runs", lambda: scheduling.reap(db, redis)),
            ("reaping abandoned model versions", lambda: training.reap(db, redis)),
            ("requeueing lost webhook deliveries", lambda: webhooks.requeue_lost(db, redis)),
            ("deleting expired idempotency keys", purge_keys),
            ("deleting kept answer copies no run will read", lambda: self.sweep_copies(db)),
        ):
            try:
                task()
            except Exception:  # maintenance must not stop the worker; the next round retries
                log.exception("%s failed", what)

    def sweep_copies(self, db: Database) -> None:
        """:func:`crowd.store.answer_state.sweep` of this worker's state directory, at the
        first maintenance round and then every :data:`SWEEP_EVERY` seconds."""
        if self.last_swept is not None and time.monotonic() - self.last_swept < SWEEP_EVERY:
            return
        self.last_swept = time.monotonic()
        config = connections.settings()
        if config.state_dir is None:
            return
        with db.transaction() as cur:
            deleted = answer_state.sweep(
                cur, config.state_dir, full_reload_seconds=config.full_reload_seconds
            )
        if deleted:
            log.info("deleted %d kept answer copies no run will read", len(deleted))


def make_worker(settings: Settings, *, large_runs: bool = True, **kwargs: Any) -> CrowdWorker:
    """A worker on crowd's queues in priority order, fair by ``settings.fair_skips``, running
    small projects' runs (:data:`RUN_QUEUE`) in its own process unless
    ``settings.fork_small_runs``; without ``large_runs``, one that never takes a large
    project's run (:data:`LARGE_RUN_QUEUE`), so small projects keep a worker while large runs
    occupy the others."""
    if not settings.redis_url:
        raise SystemExit("crowd: error: set CROWD_REDIS_URL (or run `crowd serve` first)")
    connections.configure(settings)
    connection = Redis.from_url(settings.redis_url)
    names = [n for n in (*QUEUES, WEBHOOK_QUEUE) if large_runs or n != LARGE_RUN_QUEUE]
    queues = [Queue(name, connection=connection) for name in names]
    return CrowdWorker(
        queues,
        connection=connection,
        maintenance_interval=REAP_EVERY,
        worker_ttl=30,
        fair_skips=settings.fair_skips,
        in_process=() if settings.fork_small_runs else (RUN_QUEUE,),
        **kwargs,
    )


def run(settings: Settings, *, burst: bool = False, large_runs: bool = True) -> None:
    """Work until asked to stop (or, with ``burst``, until the queues are empty).

    RQ's worker quits when Redis goes away at the wrong moment (while it watches a job, or
    when it starts); this process then waits for Redis and starts a new one, so a Redis
    restart does not leave the machine without a worker.
    """
    preload()
    quiet_maintenance()
    while True:
        worker = None
        try:
            worker = make_worker(settings, large_runs=large_runs)
            worker.work(burst=burst, with_scheduler=True)
        except RedisError as exc:  # from RQ's constructor, or its teardown with Redis away
            log.warning("worker: Redis unreachable: %s", exc)
        if burst or (worker is not None and worker.stop_asked):
            return
        # RQ's signal handlers belong to the worker that quit: stop on a signal while waiting.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("worker: stopped without being asked to; starting again in %s s", RESTART_AFTER)
        time.sleep(RESTART_AFTER)
