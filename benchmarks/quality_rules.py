"""Quality rules: today's point-estimate rules beside the evidence rules (issue 13).

    .venv/bin/python benchmarks/quality_rules.py --projects 200 --data ../shared/datasets

Path covered: no HTTP. Each simulated project is a crowd answering tasks one answer at a
time; every ``--every`` answers an aggregation run does what the RQ job
(:func:`crowd.background.aggregation.aggregate`) does, on the same kind of snapshot :func:`crowd.store.snapshot.load`
returns (:class:`crowd.store.snapshot.Snapshot`: the answers of workers not banned, gold,
the previous run's estimates as the warm start): :func:`crowd.background.aggregation.fit`, then the rules on
the figures the run publishes per worker (banned workers keep their last figures, as rows of
``project_workers`` do). The evidence rules are :func:`crowd.store.runs.verdict`, the
function ``apply_bans`` calls inside the run's publishing transaction; today's rules are
the SQL comparison ``apply_bans`` made before, written out below (:func:`point_rules`). A
banned worker gets no more tasks. Each project is simulated once per rule set, from the same
seed (the same crowd, tasks and per-worker answers; who answers next is drawn afresh once
bans differ).

Crowds (issue 13, ``--shape issue``): 4 labels; ``--workers`` workers: honest ones with accuracy uniform in
[0.6, 0.9] (errors uniform over the other labels), a share uniform in [5%, 30%] of spammers
(uniform answers) and 5% adversaries (always one fixed label), at least one of each; gold
rate 0.1 (a fetch serves a gold task with that probability); overlap 3; settings
``qc_min_accuracy`` 0.5, ``qc_min_gold_accuracy`` 0.5, ``qc_min_answers`` 15,
``qc_min_gold_answers`` 5 (default), ``gold_window`` 20 (default), ``qc_confidence`` 0.95
(default).

Goals: at most 1% of projects ban an honest worker; 99% of spammers and adversaries banned;
the median spammer banned after no more than 1.5x the answers today's rules need.

``--data``: also replay real crowds offline, in file order, runs every ``--every`` answers:
10% of the gold tasks (seeded) serve as the project's gold tasks, the model's accuracy rule
and the gold rule at the settings above; printed, per rule set, how many workers are banned
and their accuracy on all of the dataset's gold (answers on gold tasks they gave).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from crowd import datasets
from crowd.background.aggregation import fit
from crowd.em.quality import WorkerFigures
from crowd.store.projects import Project
from crowd.store.runs import verdict
from crowd.store.snapshot import Snapshot

SETTINGS = {
    "qc_min_accuracy": 0.5,
    "qc_min_gold_accuracy": 0.5,
    "qc_min_answers": 15,
    "qc_min_gold_answers": 5,
    "gold_window": 20,
    "qc_confidence": 0.95,
}
HONEST, SPAMMER, ADVERSARY = 0, 1, 2


def project(labels: int, **settings: float | int) -> Project:
    return Project(
        id=1,
        owner_id=1,
        name="bench",
        labels=[f"l{i}" for i in range(labels)],
        overlap=3,
        lease_seconds=600,
        created_at=datetime.now(UTC),
        method="ds",
        **{**SETTINGS, **settings},  # type: ignore[arg-type]
    )


def point_rules(p: Project, w: WorkerFigures) -> np.ndarray:
    """Today's rules (``apply_bans`` before issue 13): the point estimates against the
    thresholds, past the floors."""
    judged = w.answers >= w.judge_after + p.qc_min_answers
    bad = np.zeros(w.answers.size, dtype=bool)
    if p.qc_min_accuracy is not None:
        bad |= w.accuracy < p.qc_min_accuracy
    if p.qc_min_gold_accuracy is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            gold = w.gold_correct / w.gold_answers
        bad |= (w.gold_answers >= p.qc_min_gold_answers) & (gold < p.qc_min_gold_accuracy)
    return judged & bad


def evidence_rules(p: Project, w: WorkerFigures) -> np.ndarray:
    return np.asarray(verdict(p, w).ban)


RULES: dict[str, Callable[[Project, WorkerFigures], np.ndarray]] = {
    "today (point estimate)": point_rules,
    "evidence (posterior, qc_confidence 0.95 over the rules)": evidence_rules,
}


@dataclass
class Live:
    """A project's state between runs: its answers, ``project_workers`` and bans."""

    p: Project
    gold_tasks: np.ndarray
    gold_labels: np.ndarray
    answers: list[tuple[int, int, int]] = field(default_factory=list)  # task, worker, label
    figures: dict[int, tuple[float, ...]] = field(default_factory=dict)
    warm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    banned: dict[int, int] = field(default_factory=dict)  # worker -> answers at the ban

    def run(self, rule: Callable[[Project, WorkerFigures], np.ndarray]) -> list[int]:
        """One aggregation run; returns the workers banned by it."""
        kept = [a for a in self.answers if a[1] not in self.banned]
        if not kept:
            return []
        arr = np.array(kept, dtype=np.int64)
        warm = self.warm
        k = len(self.p.labels)
        snap = Snapshot(
            answer_ids=np.arange(arr.shape[0], dtype=np.int64),
            task_ids=arr[:, 0],
            worker_ids=arr[:, 1],
            labels=arr[:, 2],
            proposals=np.full(arr.shape[0], -1, dtype=np.int64),  # blind answers only
            gold_task_ids=self.gold_tasks,
            gold_labels=self.gold_labels,
            warm_workers=warm[0] if warm else np.zeros(0, dtype=np.int64),
            warm_confusion=warm[1] if warm else np.zeros((0, k, k)),
            warm_priors=warm[2] if warm else None,
        )
        result, _ = fit(snap, self.p)
        self.warm = (result.worker_ids, result.confusion, result.priors)
        for i, wid in enumerate(result.worker_ids.tolist()):
            self.figures[wid] = (
                float(result.worker_answers[i]),
                0.0,
                float(result.accuracy[i]),
                float(result.accuracy_n[i]),
                float(result.accuracy_right[i]),
                float(result.gold_answers[i]),
                float(result.gold_correct[i]),
            )
        ids = sorted(self.figures)
        figures = WorkerFigures(*np.array([self.figures[w] for w in ids]).T)
        ban = rule(self.p, figures)
        out = []
        for i, wid in enumerate(ids):
            if ban[i] and wid not in self.banned:
                self.banned[wid] = int(figures.answers[i])
                out.append(wid)
        return out


@dataclass(frozen=True)
class Crowd:
    kind: np.ndarray  # (n_workers,) HONEST | SPAMMER | ADVERSARY
    answer: np.ndarray  # (n_workers, n_tasks + n_gold): each worker's answer to each task
    truth: np.ndarray  # (n_tasks + n_gold,)
    n_tasks: int


@dataclass(frozen=True)
class Shape:
    """A crowd's make-up: labels, honest workers' accuracy range, spammers' share range."""

    labels: int = 4
    honest: tuple[float, float] = (0.6, 0.9)
    spam: tuple[float, float] = (0.05, 0.30)


#: The issue's crowd, and a second one to check the rules were not fitted to it: 3 labels,
#: weaker honest workers (0.55-0.85) and more spammers (10%-40%).
SHAPES = {"issue": Shape(), "second": Shape(3, (0.55, 0.85), (0.10, 0.40))}


def make_crowd(
    seed: int, n_workers: int, n_tasks: int, n_gold: int, shape: Shape = SHAPES["issue"]
) -> Crowd:
    rng = np.random.default_rng(seed)
    k = shape.labels
    n_spam = max(1, round(rng.uniform(*shape.spam) * n_workers))
    n_adv = max(1, round(0.05 * n_workers))
    kind = np.zeros(n_workers, dtype=np.int64)
    kind[:n_spam] = SPAMMER
    kind[n_spam : n_spam + n_adv] = ADVERSARY
    kind = rng.permutation(kind)
    total = n_tasks + n_gold
    truth = rng.integers(0, k, size=total)
    accuracy = rng.uniform(*shape.honest, size=n_workers)
    right = rng.random((n_workers, total)) < accuracy[:, None]
    wrong = (truth[None, :] + rng.integers(1, k, size=(n_workers, total))) % k
    answer = np.where(right, truth[None, :], wrong)
    answer[kind == SPAMMER] = rng.integers(0, k, size=(int((kind == SPAMMER).sum()), total))
    answer[kind == ADVERSARY] = rng.integers(0, k, size=(int((kind == ADVERSARY).sum()), 1))
    return Crowd(kind, answer, truth, n_tasks)


def simulate(
    seed: int,
    rule: Callable[[Project, WorkerFigures], np.ndarray],
    *,
    n_workers: int,
    n_tasks: int,
    every: int,
    gold_rate: float = 0.1,
    shape: Shape = SHAPES["issue"],
) -> tuple[Crowd, dict[int, int]]:
    """One project under one rule set; returns the crowd and who was banned after how many
    answers."""
    n_gold = max(20, n_tasks // 5)
    crowd = make_crowd(seed, n_workers, n_tasks, n_gold, shape)
    gold_ids = np.arange(n_tasks, n_tasks + n_gold, dtype=np.int64)
    live = Live(project(shape.labels), gold_ids, crowd.truth[n_tasks:].copy())
    rng = np.random.default_rng([seed, 1])
    taken = np.zeros(n_tasks, dtype=np.int64)
    seen = np.zeros((n_workers, n_tasks + n_gold), dtype=bool)
    next_task = 0  # tasks below it are full
    since = 0
    while True:
        active = [w for w in range(n_workers) if w not in live.banned]
        if not active or next_task >= n_tasks:
            break
        w = active[int(rng.integers(len(active)))]
        if rng.random() < gold_rate and not seen[w, n_tasks:].all():
            t = n_tasks + int(np.flatnonzero(~seen[w, n_tasks:])[0])
        else:
            open_ = np.flatnonzero(~seen[w, next_task:n_tasks] & (taken[next_task:] < 3))
            if open_.size == 0:
                if all(seen[v, next_task:n_tasks].all() for v in active):
                    break
                continue
            t = next_task + int(open_[0])
            taken[t] += 1
            while next_task < n_tasks and taken[next_task] >= 3:
                next_task += 1
        seen[w, t] = True
        live.answers.append((t, w, int(crowd.answer[w, t])))
        since += 1
        if since >= every:
            since = 0
            live.run(rule)
    live.run(rule)
    return crowd, live.banned


def synthetic(args: argparse.Namespace) -> None:
    shape = SHAPES[args.shape]
    print(
        f"Synthetic projects: {args.projects} (seeds {args.seed}-{args.seed + args.projects - 1}),"
        f" crowd {args.shape} {shape}, {args.workers} workers, {args.tasks} tasks"
        f" (+{max(20, args.tasks // 5)} gold), runs every {args.every} answers;"
        f" settings {SETTINGS}"
    )
    rows = []
    for name, rule in RULES.items():
        started = time.perf_counter()
        honest_hit = 0
        bad_total = bad_banned = 0
        spam_at: list[int] = []
        adv_at: list[int] = []
        honest_banned = honest_total = 0
        for seed in range(args.seed, args.seed + args.projects):
            crowd, banned = simulate(
                seed,
                rule,
                n_workers=args.workers,
                n_tasks=args.tasks,
                every=args.every,
                shape=shape,
            )
            honest = np.flatnonzero(crowd.kind == HONEST)
            hit = sum(int(w) in banned for w in honest)
            honest_hit += hit > 0
            honest_banned += hit
            honest_total += honest.size
            for w in np.flatnonzero(crowd.kind != HONEST).tolist():
                bad_total += 1
                if w in banned:
                    bad_banned += 1
                    (spam_at if crowd.kind[w] == SPAMMER else adv_at).append(banned[w])
        rows.append(
            (
                name,
                honest_hit / args.projects,
                honest_banned,
                honest_total,
                bad_banned / bad_total,
                bad_total,
                float(np.median(spam_at)) if spam_at else float("nan"),
                float(np.median(adv_at)) if adv_at else float("nan"),
                time.perf_counter() - started,
            )
        )
    print()
    print(
        "| rules | projects banning an honest worker | honest workers banned |"
        " spammers + adversaries banned | median answers at ban: spammer | adversary | time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, hit, hb, ht, bad, bt, spam, adv, secs in rows:
        print(
            f"| {name} | {hit:.1%} | {hb} of {ht} | {bad:.1%} of {bt} | {spam:g} | {adv:g} |"
            f" {secs:.0f} s |"
        )
    today, new = rows[0], rows[1]
    ratio = new[6] / today[6]
    print()
    print(
        f"goal: projects banning an honest worker <= 1%: {new[1]:.1%} ->"
        f" {'met' if new[1] <= 0.01 else 'NOT met'}"
    )
    print(
        f"goal: spammers + adversaries banned >= 99%: {new[4]:.1%} ->"
        f" {'met' if new[4] >= 0.99 else 'NOT met'}"
    )
    print(
        f"goal: median spammer's answers at ban <= 1.5x today's: {new[6]:g} vs {today[6]:g}"
        f" = {ratio:.2f}x -> {'met' if ratio <= 1.5 else 'NOT met'}"
    )


def replay(folder: Path, args: argparse.Namespace) -> list[tuple[str, ...]]:
    data = datasets.read(folder)
    labels = sorted({label for _, _, label in data.answers})
    label_of = {label: i for i, label in enumerate(labels)}
    tasks = {t: i for i, t in enumerate(dict.fromkeys(t for t, _, _ in data.answers))}
    workers = {w: i for i, w in enumerate(dict.fromkeys(w for _, w, _ in data.answers))}
    gold = {
        tasks[t]: label_of[lab] for t, lab in data.gold.items() if t in tasks and lab in label_of
    }
    rng = np.random.default_rng(args.seed)
    gold_ids = np.array(sorted(gold), dtype=np.int64)
    served = np.sort(rng.choice(gold_ids, size=max(1, gold_ids.size // 10), replace=False))
    first: dict[tuple[int, int], int] = {}
    for t, w, lab in data.answers:
        first.setdefault((tasks[t], workers[w]), label_of[lab])
    stream = [(t, w, lab) for (t, w), lab in first.items()]
    right = np.zeros(len(workers))
    asked = np.zeros(len(workers))
    for t, w, lab in stream:
        if t in gold:
            asked[w] += 1
            right[w] += lab == gold[t]
    out = []
    for name, rule in RULES.items():
        p = project(len(labels))
        live = Live(p, served, np.array([gold[t] for t in served.tolist()], dtype=np.int64))
        every = max(args.every, len(stream) // 40)
        for i in range(0, len(stream), every):
            live.answers.extend(a for a in stream[i : i + every] if a[1] not in live.banned)
            live.run(rule)
        ids = np.array(sorted(live.banned), dtype=np.int64)
        n_right, n_asked = right[ids].sum(), asked[ids].sum()
        acc = f"{n_right / n_asked:.3f} on {int(n_asked)}" if n_asked else "-"
        rest = np.setdiff1d(np.arange(len(workers)), ids)
        rest_acc = right[rest].sum() / max(asked[rest].sum(), 1)
        worst = ids[np.argsort(right[ids] / np.maximum(asked[ids], 1))] if ids.size else ids
        best = (
            f"{right[worst[-1]] / asked[worst[-1]]:.2f} ({int(asked[worst[-1]])} gold)"
            if ids.size and asked[worst[-1]]
            else "-"
        )
        out.append((data.name, name, f"{ids.size} of {len(workers)}", acc, best, f"{rest_acc:.3f}"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--every", type=int, default=50, help="answers between runs")
    ap.add_argument(
        "--seed", type=int, default=1000, help="first seed (0-199 were used to choose the rules)"
    )
    ap.add_argument("--shape", choices=sorted(SHAPES), default="issue", help="the crowd's make-up")
    ap.add_argument("--data", type=Path, help="a datasets folder (or one dataset's folder)")
    ap.add_argument(
        "--datasets",
        nargs="*",
        default=[
            "bluebirds",
            "dog",
            "music_genre",
            "snow_rte",
            "snow_temp",
            "zencrowd_us",
            "zheng_face",
            "web",
        ],
    )
    args = ap.parse_args(argv)
    if args.projects:
        synthetic(args)
    if args.data:
        folders = (
            [args.data]
            if (args.data / "answers.csv").exists()
            else [args.data / name for name in args.datasets]
        )
        print()
        print("Real crowds replayed offline (10% of gold served as gold; accuracy on all gold):")
        print()
        print(
            "| dataset | rules | workers banned | their accuracy on gold | best banned |"
            " accuracy of the rest |"
        )
        print("|---|---|---:|---:|---:|---:|")
        for folder in folders:
            for row in replay(folder, args):
                print("| " + " | ".join(row) + " |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
