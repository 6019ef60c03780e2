"""What the demo's crowd does: tasks with their truth, and workers that answer them.

A scenario is plain data plus, per worker, a ``choose(external_id) -> label | None`` function
(None: skip the task). :func:`simulated` makes up a crowd; :func:`replay` reads a real one
from a dataset folder (:mod:`crowd.datasets`: ``answers.csv`` and ``gold.csv``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowd import datasets
from crowd.em import DawidSkene, MajorityVote, class_order, encode

Choose = Callable[[str], str | None]


@dataclass(frozen=True)
class SimWorker:
    """One member of the crowd. ``bad`` marks the workers a good quality rule should ban
    (spammers; in a replay, workers whose real accuracy is below the scenario's bar)."""

    name: str
    kind: str  # shown in the report, e.g. "good (0.83)", "spammer (random)"
    bad: bool
    choose: Choose
    think: float = 0.0  # seconds spent on each answer


@dataclass(frozen=True)
class Task:
    external_id: str
    truth: str | None  # None: unknown (not scored)
    gold: bool = False  # posted as a gold (control) task, with its truth
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """Tasks, workers and the project settings to run them with.

    ``fixed_answers`` is the comparison for dynamic overlap: the answers on regular tasks a
    fixed overlap would have asked for, described by ``fixed_text``; ``base_answers`` is what
    the project's base ``overlap`` alone asks for (dynamic overlap adds to it where labels
    are unsure). ``bad_name`` and
    ``good_name`` name the two kinds of worker in the report.
    """

    title: str
    labels: list[str]
    tasks: list[Task]
    workers: list[SimWorker]
    settings: dict[str, Any]
    fixed_answers: int
    fixed_text: str
    base_answers: int
    bad_name: str = "spammers"
    good_name: str = "good workers"
    #: Extra (figure, value) rows for the report, e.g. offline accuracy on every answer.
    reference: list[tuple[str, str]] = field(default_factory=list)


def simulated(
    *,
    tasks: int = 400,
    good: int = 16,
    spammers: int = 4,
    labels: int = 3,
    gold_share: float = 0.1,
    think: float = 0.05,
    seed: int = 0,
) -> Scenario:
    """A made-up crowd: ``good`` workers with accuracy drawn from U(0.7, 0.95) (a wrong answer
    is uniform over the other labels) and ``spammers`` who answer at random or always give
    the same label, four times as fast. ``round(tasks * gold_share)`` more tasks are posted
    as gold (the accuracy figures leave them out)."""
    rng = random.Random(seed)
    names = [f"label{k}" for k in range(labels)] if labels > 6 else LABELS[:labels]
    n_gold = round(tasks * gold_share)
    items = [
        Task(f"t{i:05d}", rng.choice(names), gold=i < n_gold, data={"item": i})
        for i in range(tasks + n_gold)
    ]
    rng.shuffle(items)
    truth = {t.external_id: t.truth for t in items}
    crowd: list[SimWorker] = []
    for i in range(good):
        accuracy = rng.uniform(0.7, 0.95)
        crowd.append(
            SimWorker(
                f"good-{i:02d}",
                f"good ({accuracy:.2f})",
                False,
                _noisy(truth, names, accuracy, random.Random(rng.random())),
                think,
            )
        )
    for i in range(spammers):
        if i % 2 == 0:
            crowd.append(
                SimWorker(
                    f"spammer-{i:02d}",
                    "spammer (random)",
                    True,
                    _noisy(truth, names, 1.0 / len(names), random.Random(rng.random())),
                    think / 4,
                )
            )
        else:
            constant = names[i % len(names)]
            crowd.append(
                SimWorker(
                    f"spammer-{i:02d}",
                    f"spammer (always {constant})",
                    True,
                    _always(constant),
                    think / 4,
                )
            )
    return Scenario(
        title=f"simulated crowd: {good} workers of accuracy 0.70-0.95 and {spammers} spammers,"
        f" {tasks} tasks + {n_gold} gold, {labels} labels",
        labels=list(names),
        tasks=items,
        workers=crowd,
        settings={
            "overlap": 3,
            "max_overlap": 7,
            "confidence_target": 0.95,
            "gold_rate": 0.1 if n_gold else 0.0,
            # Early estimates are rough (spammers' answers are still in); the rule bans only
            # when a worker is below the bar with probability qc_confidence (docs/QUALITY.md),
            # so the floor can be the issue 13 example's 15 answers.
            "qc_min_answers": 15,
            "qc_min_accuracy": 0.5,
            "method": "ds",
        },
        fixed_answers=7 * tasks,
        fixed_text="at fixed overlap 7 (max_overlap)",
        base_answers=3 * tasks,
    )


LABELS = ["cat", "dog", "bird", "fish", "frog", "owl"]


def _noisy(
    truth: dict[str, str | None], names: list[str], accuracy: float, rng: random.Random
) -> Choose:
    """Right with probability ``accuracy``, otherwise a uniformly chosen other label."""

    def choose(external_id: str) -> str:
        right = truth[external_id]
        assert right is not None
        if rng.random() < accuracy:
            return right
        return rng.choice([n for n in names if n != right])

    return choose


def _always(label: str) -> Choose:
    def choose(_external_id: str) -> str:
        return label

    return choose


def replay(
    data_dir: Path, *, limit_tasks: int | None = 200, bad_below: float = 0.55, seed: int = 0
) -> Scenario:
    """A real crowd: each worker of ``answers.csv`` answers the tasks it answered with its
    recorded label (its first, if it answered twice) and skips every other task.

    ``limit_tasks`` keeps that many tasks (a seeded sample, in file order). The truth comes
    from ``gold.csv`` and is used only to score; no task is posted as gold. Workers whose
    accuracy on the kept tasks is below ``bad_below`` count as the bad ones in the report; the
    project bans workers whose estimated accuracy falls below it after 20 answers.
    """
    answers_path, gold_path = data_dir / "answers.csv", data_dir / "gold.csv"
    found = datasets.read(data_dir)
    rows, gold = found.answers, found.gold
    order = list(dict.fromkeys(task for task, _w, _l in rows))
    if limit_tasks is not None and limit_tasks < len(order):
        keep = set(random.Random(seed).sample(order, limit_tasks))
        order = [t for t in order if t in keep]
    kept = set(order)
    by_worker: dict[str, dict[str, str]] = {}
    per_task: Counter[str] = Counter()
    for task, worker, label in rows:
        if task in kept and task not in by_worker.setdefault(worker, {}):
            by_worker[worker][task] = label
            per_task[task] += 1
    if not per_task:
        raise ValueError(f"{answers_path} has no answers to replay")
    names = [str(x) for x in class_order(sorted({lab for *_, lab in rows} | set(gold.values())))]
    if len(names) < 2:
        raise ValueError(f"{answers_path} and {gold_path} have fewer than 2 distinct labels")
    crowd = []
    for worker, answered in by_worker.items():
        if not answered:
            continue
        scored = [label == gold[t] for t, label in answered.items() if t in gold]
        accuracy = sum(scored) / len(scored) if scored else None
        crowd.append(
            SimWorker(
                worker,
                f"real ({len(answered)} answers, accuracy {accuracy:.2f})"
                if accuracy is not None
                else f"real ({len(answered)} answers)",
                accuracy is not None and accuracy < bad_below,
                answered.get,
            )
        )
    most = max(per_task.values())
    overlap = min(3, most)
    recorded = [(t, w, lab) for w, answered in by_worker.items() for t, lab in answered.items()]
    return Scenario(
        title=f"replay of {data_dir.name}: {len(order)} tasks, {len(crowd)} real workers,"
        f" {sum(per_task.values())} recorded answers",
        labels=names,
        tasks=[Task(t, gold.get(t)) for t in order],
        workers=crowd,
        settings={
            "overlap": overlap,
            "max_overlap": most,
            "confidence_target": 0.95,
            "gold_rate": 0.0,
            # A real worker's answers are the only ones it has: ban only on firm evidence.
            "qc_min_answers": 20,
            "qc_min_accuracy": bad_below,
            "method": "ds",
        },
        fixed_answers=sum(per_task.values()),
        fixed_text=f"recorded in the dataset (up to {most} per task)",
        # A task with fewer recorded answers than the overlap cannot get more.
        base_answers=sum(min(overlap, n) for n in per_task.values()),
        bad_name=f"workers with accuracy < {bad_below:g}",
        good_name="other workers",
        reference=_offline_accuracy(recorded, gold),
    )


def _offline_accuracy(
    answers: list[tuple[str, str, str]], gold: dict[str, str]
) -> list[tuple[str, str]]:
    """Accuracy on gold of majority vote and Dawid-Skene fitted on every recorded answer (what
    a fixed overlap of all of them gives), as report rows."""
    tasks, workers, labels = (np.array(column) for column in zip(*answers, strict=True))
    enc = encode(tasks, workers, labels)
    scored = np.array([t in gold for t in enc.task_index.tolist()])
    truth = np.array([gold.get(t, "") for t in enc.task_index.tolist()])
    rows = []
    for name, model in (("majority vote", MajorityVote()), ("Dawid-Skene", DawidSkene())):
        fitted = model.fit(enc.tasks, enc.workers, enc.labels, n_classes=enc.n_classes)
        right = enc.decode_labels(fitted.labels_) == truth
        rows.append(
            (
                f"accuracy: {name} on every recorded answer (offline)",
                f"{float(np.mean(right[scored])):.4f}",
            )
        )
    return rows
