"""Where a warm-started live run's fit spends its time, step by step, at 1M and 10M answers.

    PYTHONPATH=. .venv/bin/python benchmarks/fit_steps.py [--tasks 200000 2000000]
        [--answers-per-task 5 --workers 1000 --labels 4 --new 60 --repeats 3]
        [--method auto] [--profile] [--check OUT.npz | --compare OUT.npz]

No database: the input is what ``crowd.store.snapshot.load`` hands the job, built in memory.
For each size, a synthetic crowd (benchmarks/_synthetic.py: 1,000 workers of varied accuracy,
15% spammers, 5 answers per task, answers in arrival order) gets database-like ids (task ids
from 1,000, worker ids from 50, answer ids in arrival order); a cold run's fit (as the warm-up
run of benchmarks/freshness.py) gives the warm start; then ``--new`` answers arrive on random
tasks (as 2 s of freshness.py's 30 answers/s) and the job's fit
(``crowd.background.aggregation.fit``, warm-started from the cold run) is timed ``--repeats``
times, median reported, in wall-clock and in CPU seconds of this process (on a shared machine
the wall clock also counts other processes' turns; set ``OPENBLAS_NUM_THREADS=1`` so that CPU
seconds are one core's). Each step of the fit is timed in CPU seconds by wrapping the functions
it calls (the wrappers add microseconds): id encoding, the warm start, ``choose_method``, the
answer checks and incidence matrix, E-steps and M-steps, the majority-vote check,
``held_out_correct`` (and inside it ``effective_answers``), recent gold, dynamic overlap's
typical posteriors; "rest" is the fit's time outside them. Also the in-memory part of
publishing (``changed_rows`` against the cold run's results). ``--profile`` adds cProfile's
top functions.

``--check FILE`` saves the warm fit's results (labels, confidences, decisions, worker
estimates) at each size; ``--compare FILE`` loads such a file and prints the largest
differences, so a change to the fit can be shown not to move what a run publishes.

Peak RSS of this process is printed at the end (``ru_maxrss``; it includes the synthetic
generation and the cold fit, so it is an upper bound on the warm fit's).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import loadavg
from _synthetic import generate

from crowd.background import aggregation
from crowd.em import _em, _incidence, live
from crowd.store.projects import Project
from crowd.store.snapshot import Snapshot

# (module or class, attribute, step name): the functions timed inside the fit.
STEPS: list[tuple[Any, str, str]] = [
    (live, "encode_ids", "encode ids"),
    (live, "_warm_params", "warm start"),
    (live, "choose_method", "auto: choose method"),
    (_em, "check_answers", "em: check answers"),
    (_incidence.AnswerMatrix, "__init__", "em: incidence matrix"),
    (_incidence.AnswerMatrix, "task_sums", "em: E-step sums"),
    (_em, "normalize_log_columns", "em: E-step normalise"),
    (_incidence.AnswerMatrix, "cell_sums", "em: M-step sums"),
    (_em, "majority_shares", "em: majority start"),
    (live, "majority_agreement", "relabel check (majority agreement)"),
    (live, "typical_worker_posteriors", "decide: typical posteriors"),
    (live, "held_out_correct", "held_out_correct (all)"),
    (live, "effective_answers", "  of which effective_answers"),
    (live, "recent_gold", "recent gold"),
]


class Clock:
    """CPU seconds per step name (this process's: on a shared machine wall-clock time
    counts other processes' turns too), summed over calls, for the call being measured."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.process_time() - t
                self.calls[name] += 1

        return timed


@contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """Wrap every step of ``STEPS`` (and a model's ``_m_step``) for the duration."""
    saved = []
    for owner, attr, name in STEPS:
        if not hasattr(owner, attr):
            continue
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        saved.append((owner, attr, original))
        setattr(owner, attr, clock.wrap(name, original))
    from crowd.em.dawid_skene import DawidSkene
    from crowd.em.hierarchical_ds import HierarchicalDawidSkene

    for cls in (DawidSkene, HierarchicalDawidSkene):
        original = cls.__dict__["_m_step"]
        saved.append((cls, "_m_step", original))
        cls._m_step = clock.wrap("em: M-step confusion", original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def crowd_input(
    n_tasks: int, per_task: int, n_workers: int, k: int, seed: int, shuffle: bool
) -> dict[str, np.ndarray]:
    """A synthetic crowd's answers with database-like int64 ids: task by task (as
    freshness.py bulk-loads them) or, with ``shuffle``, in a random arrival order."""
    crowd = generate(n_tasks, per_task, n_workers, k, seed=seed, shuffle=shuffle)
    n = crowd.n_answers
    out = {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "task": crowd.tasks.astype(np.int64) + 1000,
        "worker": crowd.workers.astype(np.int64) + 50,
        "label": crowd.labels.astype(np.int64),
        "proposal": np.full(n, -1, dtype=np.int64),
    }
    return out


def add_answers(
    answers: dict[str, np.ndarray], n_new: int, n_tasks: int, n_workers: int, k: int, seed: int
) -> dict[str, np.ndarray]:
    """``n_new`` more answers on random tasks by random workers, ids after the last."""
    rng = np.random.default_rng(seed)
    start = int(answers["id"][-1]) + 1
    new = {
        "id": np.arange(start, start + n_new, dtype=np.int64),
        "task": rng.integers(0, n_tasks, n_new) + 1000,
        "worker": rng.integers(0, n_workers, n_new) + 50,
        "label": rng.integers(0, k, n_new),
        "proposal": np.full(n_new, -1, dtype=np.int64),
    }
    return {name: np.concatenate([answers[name], new[name]]) for name in answers}


def snapshot_of(
    answers: dict[str, np.ndarray], warm: live.RunResult | None, warm_cold: int
) -> Snapshot:
    empty = np.zeros(0, dtype=np.int64)
    return Snapshot(
        answer_ids=answers["id"],
        task_ids=answers["task"],
        worker_ids=answers["worker"],
        labels=answers["label"],
        proposals=answers["proposal"],
        gold_task_ids=empty,
        gold_labels=empty.copy(),
        warm_workers=empty.copy() if warm is None else warm.worker_ids,
        warm_confusion=np.zeros((0, 0, 0)) if warm is None else warm.confusion,
        warm_priors=None if warm is None else warm.priors,
        warm_cold_answers=warm_cold,
        answers_total=int(answers["id"].size),
    )


def project_of(k: int, method: str, dynamic: bool) -> Project:
    return Project(
        id=1,
        owner_id=1,
        name="fit_steps",
        labels=[f"l{i}" for i in range(k)],
        overlap=5,
        lease_seconds=600,
        created_at=datetime.now(UTC),
        method=method,
        confidence_target=0.9 if dynamic else None,
    )


def outputs(result: live.RunResult) -> dict[str, np.ndarray]:
    """What a run publishes, for --check / --compare."""
    return {
        "task_ids": result.task_ids,
        "labels": result.labels,
        "confidence": result.confidence,
        "decision": result.decision,
        "posteriors": result.posteriors,
        "task_answers": result.task_answers,
        "worker_ids": result.worker_ids,
        "accuracy": result.accuracy,
        "accuracy_n": result.accuracy_n,
        "accuracy_right": result.accuracy_right,
        "confusion": result.confusion,
        "priors": result.priors,
        "n_iter": np.array([result.n_iter]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, nargs="+", default=[200_000, 2_000_000])
    p.add_argument("--answers-per-task", type=int, default=5)
    p.add_argument("--workers", type=int, default=1000)
    p.add_argument("--labels", type=int, default=4)
    p.add_argument("--new", type=int, default=60, help="answers arriving before the warm run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--method", default="auto", help="the project's method (freshness: auto)")
    p.add_argument("--dynamic", action="store_true", help="dynamic overlap on (a second fit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--order", choices=("task", "arrival"), default="task",
        help="the kept answers' order: task by task, as freshness.py bulk-loads them, then the"
        " new ones [default]; or shuffled (answers scattered in memory: slower sparse steps)",
    )  # fmt: skip
    p.add_argument("--profile", action="store_true", help="cProfile one warm fit per size")
    p.add_argument("--check", help="save the warm fit's outputs here (.npz)")
    p.add_argument("--compare", help="compare the warm fit's outputs with this file (.npz)")
    args = p.parse_args(argv)

    k = args.labels
    print(
        f"fit_steps: load average {loadavg()}; method {args.method}; dynamic {args.dynamic};"
        f" answers in {args.order} order"
    )
    saved: dict[str, np.ndarray] = {}
    reference = dict(np.load(args.compare)) if args.compare else None
    for n_tasks in args.tasks:
        t = time.perf_counter()
        answers = crowd_input(
            n_tasks, args.answers_per_task, args.workers, k, args.seed, args.order == "arrival"
        )
        made = time.perf_counter() - t
        project = project_of(k, args.method, args.dynamic)
        t = time.perf_counter()
        cold, cold_answers = aggregation.fit(snapshot_of(answers, None, 0), project)
        cold_s = time.perf_counter() - t
        answers = add_answers(answers, args.new, n_tasks, args.workers, k, args.seed + 1)
        n = int(answers["id"].size)
        print(
            f"\n{n:,} answers ({n_tasks:,} tasks): made in {made:.1f} s; cold fit"
            f" {cold_s:.2f} s, {cold.n_iter} iterations, method {cold.method}"
        )
        fits: list[float] = []
        cpus: list[float] = []
        publishes: list[float] = []
        clocks: list[Clock] = []
        result = cold
        for _ in range(args.repeats):
            snap = snapshot_of(answers, cold, cold_answers)
            clock = Clock()
            with instrumented(clock):
                t, c = time.perf_counter(), time.process_time()
                result, _ = aggregation.fit(snap, project)
                fits.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            c = time.process_time()
            live.changed_rows(
                result, cold.task_ids, cold.labels, cold.task_answers, cold.confidence,
                cold.decision,
            )  # fmt: skip
            publishes.append(time.process_time() - c)
            clocks.append(clock)
        fit_s = statistics.median(cpus)
        print(
            f"warm fit: median {statistics.median(fits):.2f} s wall, {fit_s:.2f} s CPU, of"
            f" {args.repeats} (wall {', '.join(f'{x:.2f}' for x in fits)}; CPU"
            f" {', '.join(f'{x:.2f}' for x in cpus)}); {result.n_iter} iterations, warm_start"
            f" {result.warm_start}, method {result.method}; CPU seconds by step:"
        )
        names = list(dict.fromkeys(name for c in clocks for name in c.seconds))
        accounted = 0.0
        for name in names:
            med = statistics.median(c.seconds.get(name, 0.0) for c in clocks)
            calls = clocks[0].calls.get(name, 0)
            if not name.startswith("  "):
                accounted += med
            print(f"  {name:<40} {med:7.3f} s  ({calls} calls)  {med / fit_s:6.1%}")
        print(f"  {'rest of the fit (unwrapped)':<40} {fit_s - accounted:7.3f} s")
        print(f"  {'publish: changed_rows (in memory)':<40} {statistics.median(publishes):7.3f} s")
        if args.profile:
            snap = snapshot_of(answers, cold, cold_answers)
            prof = cProfile.Profile()
            prof.enable()
            aggregation.fit(snap, project)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())
        for name, value in outputs(result).items():
            saved[f"{n_tasks}/{name}"] = value
        if reference is not None:
            worst = {}
            for name, value in outputs(result).items():
                ref = reference[f"{n_tasks}/{name}"]
                if ref.shape != value.shape:
                    worst[name] = f"shape {ref.shape} -> {value.shape}"
                    continue
                ref = np.asarray(ref, dtype=np.float64)
                diff = np.abs(ref - np.asarray(value, dtype=np.float64))
                relative = diff / np.maximum(np.abs(ref), 1.0)  # absolute below 1
                worst[name] = f"{float(relative.max()) if relative.size else 0.0:.2g}"
            print(
                "  largest difference from --compare (relative; absolute below 1): "
                + ", ".join(f"{a} {b}" for a, b in worst.items())
            )
        del answers, cold, result
    if args.check:
        np.savez(args.check, **saved)  # type: ignore[arg-type]
        print(f"\nsaved the warm fits' outputs to {args.check}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak RSS of this process {peak:.2f} GiB; load average {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
