"""Play a :class:`~crowd.demo.scenarios.Scenario` against a running service, over HTTP.

The requester (a :class:`~crowd.client.RequesterClient`) creates the project, posts the
tasks and creates one worker account per simulated worker; each worker then runs in a thread
of its own with a :class:`~crowd.client.WorkerClient`: fetch, answer (reserving the next task
in the same request) or skip, until it is banned or the demo ends. The demo ends when every
regular task is complete, or when answers stop coming although a run has looked at the
latest ones (a replayed crowd may have no answer left for a pending task), or at the timeout.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crowd.client import ApiError, RequesterClient, WorkerClient
from crowd.demo.scenarios import Scenario, SimWorker

#: How long a worker that found nothing to do waits before asking again.
IDLE_WAIT = 0.5


@dataclass(frozen=True)
class Progress:
    seconds: float
    answers: int
    tasks: int
    tasks_complete: int
    runs: int
    banned: int


@dataclass
class Outcome:
    """What the service ended with: final results, every stored answer, the bans."""

    project: dict[str, Any]
    results: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    banned: dict[int, str]  # worker id -> reason
    workers: dict[int, SimWorker]  # worker id -> who it was
    runs: int
    seconds: float
    ended: str  # why the answering stopped


@dataclass
class _Crowd:
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)


def play(
    base_url: str,
    requester_token: str,
    scenario: Scenario,
    *,
    progress: Callable[[Progress], None] | None = None,
    every: float = 1.0,
    stall: float = 6.0,
    timeout: float = 900.0,
) -> Outcome:
    """Run ``scenario`` to its end; ``progress`` is called about every ``every`` seconds."""
    began = time.monotonic()
    with RequesterClient(base_url, requester_token) as req:
        return _play(req, base_url, scenario, began, progress, every, stall, timeout)


def _play(
    req: RequesterClient,
    base_url: str,
    scenario: Scenario,
    began: float,
    progress: Callable[[Progress], None] | None,
    every: float,
    stall: float,
    timeout: float,
) -> Outcome:
    project = req.create_project(
        f"demo: {scenario.title}"[:200], scenario.labels, **scenario.settings
    )
    pid = int(project["id"])
    req.post_tasks(
        pid,
        (
            {"external_id": t.external_id, "data": t.data, **({"gold": t.truth} if t.gold else {})}
            for t in scenario.tasks
        ),
    )
    accounts = {sim.name: req.create_worker(sim.name) for sim in scenario.workers}
    crowd = _Crowd()
    finished = _FinishedRuns()
    threads = [
        threading.Thread(
            target=_work,
            args=(base_url, accounts[sim.name].token, pid, sim, crowd),
            name=f"demo-{sim.name}",
            daemon=True,
        )
        for sim in scenario.workers
    ]
    for thread in threads:
        thread.start()
    try:
        ended = _watch(req, pid, crowd, began, progress, every, stall, timeout, finished)
    finally:
        crowd.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    if crowd.errors:
        raise crowd.errors[0]
    _settle(req, pid)
    if progress is not None:
        progress(_progress(req, pid, began, finished))
    return Outcome(
        project=req.project(pid),
        results=list(req.results(pid)),
        answers=list(req.answers(pid)),
        banned={int(w["id"]): str(w["reason"]) for w in req.project_workers(pid, status="banned")},
        workers={accounts[sim.name].id: sim for sim in scenario.workers},
        runs=sum(1 for _ in req.runs(pid)),
        seconds=time.monotonic() - began,
        ended=ended,
    )


def _work(base_url: str, token: str, pid: int, sim: SimWorker, crowd: _Crowd) -> None:
    """One worker's loop, until banned or told to stop."""
    try:
        with WorkerClient(base_url, token) as client:
            got = None
            while not crowd.stop.is_set():
                if got is None:
                    try:
                        got = client.fetch(pid)
                    except ApiError as exc:
                        if exc.code == "banned":
                            return
                        raise
                    if got is None:
                        crowd.stop.wait(IDLE_WAIT)
                        continue
                label = sim.choose(got.external_id)
                if label is not None and sim.think:
                    crowd.stop.wait(sim.think)
                try:
                    if label is None:
                        client.skip(got.id)
                        got = None
                    else:
                        got = client.answer(got.id, label, fetch_next=True).next
                except ApiError as exc:
                    if exc.status != 409:  # 409: the lease ran out, or a ban released it
                        raise
                    got = None
    except BaseException as exc:
        crowd.errors.append(exc)
        crowd.stop.set()


def _watch(
    req: RequesterClient,
    pid: int,
    crowd: _Crowd,
    began: float,
    progress: Callable[[Progress], None] | None,
    every: float,
    stall: float,
    timeout: float,
    finished: _FinishedRuns,
) -> str:
    """Wait for the end of the answering; returns why it ended."""
    last_answers, last_change = -1, time.monotonic()
    while not crowd.stop.wait(every):
        now = _progress(req, pid, began, finished)
        if progress is not None:
            progress(now)
        if now.answers != last_answers:
            last_answers, last_change = now.answers, time.monotonic()
        if now.tasks and now.tasks_complete == now.tasks:
            # A run over the last answers can still reopen a task whose confidence fell:
            # settle while the crowd is still here to answer it.
            _settle(req, pid)
            counts = req.project(pid)["counts"]
            if int(counts["tasks_complete"]) == int(counts["tasks"]):
                return "every task is complete"
        idle = time.monotonic() - last_change
        if idle > stall and not any(_pending(r) for r in _newest_runs(req, pid)):
            # Runs are what open slots; with none pending and no answer for a while, the
            # workers (who ask every IDLE_WAIT seconds) have nothing left to answer.
            return f"no answer for {stall:g} s and no run pending: the crowd has no more to give"
        if time.monotonic() - began > timeout:
            return f"stopped at the {timeout:g} s timeout"
    return "a worker failed"


def _progress(req: RequesterClient, pid: int, began: float, finished: _FinishedRuns) -> Progress:
    counts = req.project(pid)["counts"]
    return Progress(
        seconds=time.monotonic() - began,
        answers=int(counts["answers"]),
        tasks=int(counts["tasks"]),
        tasks_complete=int(counts["tasks_complete"]),
        runs=finished.count(req, pid),
        banned=sum(1 for _ in req.project_workers(pid, status="banned")),
    )


@dataclass
class _FinishedRuns:
    """Counts a project's finished runs, reading on each look only the runs newer than those
    it has counted already (the API lists runs newest first), not every run every second."""

    counted: int = 0
    upto: int = 0  # every run with an id up to this one is finished and counted

    def count(self, req: RequesterClient, pid: int) -> int:
        newer = list(
            itertools.takewhile(lambda r: int(r["id"]) > self.upto, req.runs(pid, page_size=20))
        )
        newer.reverse()  # oldest first
        settled = list(itertools.takewhile(lambda r: not _pending(r), newer))
        if settled:
            self.counted += len(settled)
            self.upto = int(settled[-1]["id"])
        return self.counted + sum(1 for r in newer[len(settled) :] if not _pending(r))


def _pending(run: dict[str, Any]) -> bool:
    return run["status"] in ("queued", "running")


def _newest_runs(req: RequesterClient, pid: int) -> list[dict[str, Any]]:
    return list(itertools.islice(req.runs(pid, page_size=5), 5))


def _settle(req: RequesterClient, pid: int, timeout: float = 120.0) -> None:
    """Ask for one more run and wait until the runs are done, so the results read next cover
    every answer. Idle must hold on two looks a second apart: a run that found new answers
    marked stale queues its follow-up a moment after it finishes."""
    req.request_run(pid)
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(0.5)
        quiet = quiet + 1 if not any(_pending(r) for r in _newest_runs(req, pid)) else 0
