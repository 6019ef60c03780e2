"""The order in which a worker polls its queues: priority with a bounded wait.

RQ's worker polls its queues in one fixed order and takes the first job of the first queue
that has one. crowd's queues are listed by priority (small projects' runs, then large
projects' runs, then model training, then webhook deliveries: :data:`crowd.config.QUEUES`),
so while small projects keep their queue busy, the queues after it are never served.

:class:`FairOrder` keeps the priority order but counts, for each queue, the jobs this worker
took from other queues in a row while that queue had jobs waiting (its *skips*). A queue
skipped ``max_skips`` times is *due*: it is polled before every queue that is not due, until
a job is taken from it; that, or finding it empty after a turn, sets its count back to 0.
Several due queues are polled longest-waiting first (most skips; ties in priority order).

The bound: a queue with a job waiting is passed over at most ``max_skips`` times by a
worker, plus at most once for each other queue (``max_skips + len(queues) - 1`` in all).
Once it is due, only a queue that has waited at least as long is served before it, and that
one starts counting from 0, so each other queue goes ahead of it once at most. With two
busy queues (small projects' runs and a large project's), the large one's run waits exactly
``max_skips`` turns. Every one of a worker's turns counts, so with several workers the wait
is bounded by each worker's turns. When one queue alone has jobs, nothing is ever skipped and
the order is RQ's default; ``max_skips=0`` switches the policy off (RQ's fixed order).

``max_skips`` is :attr:`crowd.config.Settings.fair_skips` (``CROWD_FAIR_SKIPS``, default 4).
This module is pure policy (names in, names out, no Redis): :class:`workers.bootstrap.CrowdWorker`
feeds it which queue a job came from and which queues still hold jobs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


class FairOrder:
    """Priority order over ``names`` (highest first), with each waiting queue served after at
    most ``max_skips`` jobs taken from the others (see the module's docstring)."""

    def __init__(self, names: Sequence[str], max_skips: int) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"queue names must be distinct, got {list(names)}")
        if max_skips < 0:
            raise ValueError(f"max_skips must be 0 (off) or more, got {max_skips}")
        self.names = tuple(names)
        self.max_skips = max_skips
        self.skips = dict.fromkeys(self.names, 0)

    def due(self) -> list[str]:
        """The queues skipped ``max_skips`` times or more, most skips first (ties: priority)."""
        if self.max_skips == 0:
            return []
        due = [name for name in self.names if self.skips[name] >= self.max_skips]
        return sorted(due, key=lambda name: -self.skips[name])  # stable: priority breaks ties

    def order(self) -> list[str]:
        """The order to poll the queues in now: the due ones (:meth:`due`), then the others
        in priority order."""
        due = self.due()
        return [*due, *(name for name in self.names if name not in due)]

    def served(self, name: str, waiting: Collection[str]) -> None:
        """A job was taken from ``name`` while the queues in ``waiting`` still held jobs: each
        of those (other than ``name``) was skipped once more. The count of ``name`` and of
        every queue found empty starts again from 0 (their wait is over: served here, or
        emptied by another worker)."""
        if name not in self.skips:
            raise ValueError(f"unknown queue {name!r}; this order has {list(self.names)}")
        for other in self.names:
            if other != name and other in waiting:
                self.skips[other] += 1
            else:
                self.skips[other] = 0
