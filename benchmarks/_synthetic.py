"""Synthetic crowdsourcing answers with a known truth, for benchmarks.

Model (Dawid-Skene's own, so the aggregators are compared on data they can fit):

* true labels ``z_t ~ Categorical(priors)``, with ``priors ~ Dirichlet(4, ..., 4)``;
* each task gets ``answers_per_task`` answers from distinct workers; workers are
  picked with log-normal activity weights, so some workers answer far more than others;
* a fraction ``spammers`` of the workers answers uniformly at random;
* every other worker has accuracy ``a_w = 0.55 + 0.43 * Beta(4, 2)`` (mean 0.84, most
  within 0.6-0.95), jittered per true class, and spreads its errors over the other
  classes with a per-worker, per-class ``Dirichlet(1, ..., 1)`` draw (non-uniform).

Everything is vectorised and derived from one ``numpy.random.Generator`` seeded by
``seed``, so a given set of arguments always yields the same arrays. Answers are returned
in a random ("arrival") order, not grouped by task, as a database export would give them.

``write_csv`` writes the answers as ``task,worker,label`` with string ids
(``t0000001``, ``w0001``) and string labels, at disk speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]

# Fixed-width names keep every CSV line the same length (see write_csv).
_LABEL_NAMES = ("cat", "dog", "owl", "fox", "bee", "elk", "ant", "yak", "eel", "emu")

# Tasks generated per block: bounds the temporaries for the 100M-answer run.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class SyntheticCrowd:
    """Answers plus the truth that generated them.

    ``tasks``, ``workers`` and ``labels`` are parallel int32 arrays of shape (n_answers,);
    ``true_labels`` has shape (n_tasks,); ``confusion`` has shape (n_workers, K, K) with
    ``confusion[w, true, observed]`` (rows sum to 1); ``priors`` has shape (K,).
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    true_labels: IntArray
    confusion: FloatArray
    priors: FloatArray
    is_spammer: npt.NDArray[np.bool_]
    n_tasks: int
    n_workers: int
    n_classes: int

    @property
    def n_answers(self) -> int:
        return int(self.tasks.shape[0])


def worker_confusions(
    rng: np.random.Generator, n_workers: int, n_classes: int, spammers: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Draw confusion matrices, shape (n_workers, K, K), and the spammer mask, shape (n_workers,)."""
    k = n_classes
    accuracy = 0.55 + 0.43 * rng.beta(4.0, 2.0, size=n_workers)
    per_class = np.clip(accuracy[:, None] + rng.normal(0.0, 0.03, size=(n_workers, k)), 0.5, 0.99)
    confusion = np.empty((n_workers, k, k))
    if k > 1:
        # Errors of true class c spread over the other K-1 classes, unevenly.
        spread = rng.dirichlet(np.ones(k - 1), size=(n_workers, k))
        off = ~np.eye(k, dtype=bool)
        confusion[:, off] = (spread * (1.0 - per_class)[:, :, None]).reshape(n_workers, -1)
    confusion[:, np.arange(k), np.arange(k)] = per_class
    n_spam = round(spammers * n_workers)
    is_spammer = np.zeros(n_workers, dtype=bool)
    is_spammer[rng.choice(n_workers, size=n_spam, replace=False)] = True
    confusion[is_spammer] = 1.0 / k
    return confusion, is_spammer


def _distinct_workers(
    rng: np.random.Generator, n_tasks: int, per_task: int, cdf: FloatArray
) -> IntArray:
    """Pick ``per_task`` distinct workers for each task, shape (n_tasks, per_task).

    Draws with the activity weights and redraws the (rare) rows that repeat a worker.
    """
    n_workers = cdf.shape[0]
    picks = np.searchsorted(cdf, rng.random((n_tasks, per_task)), side="right")
    np.minimum(picks, n_workers - 1, out=picks)  # guards cdf[-1] rounding below 1
    bad = np.arange(n_tasks)
    for _ in range(1000):
        rows = np.sort(picks[bad], axis=1)
        bad = bad[(rows[:, 1:] == rows[:, :-1]).any(axis=1)]
        if bad.size == 0:
            return picks.astype(np.int32)
        redraw = np.searchsorted(cdf, rng.random((bad.size, per_task)), side="right")
        picks[bad] = np.minimum(redraw, n_workers - 1)
    # Only reachable when a few workers hold almost all the activity weight.
    for t in bad:
        picks[t] = rng.choice(n_workers, size=per_task, replace=False)
    return picks.astype(np.int32)


def generate(
    n_tasks: int = 1_000_000,
    answers_per_task: int = 5,
    n_workers: int = 1000,
    n_classes: int = 4,
    spammers: float = 0.15,
    seed: int = 0,
    shuffle: bool = True,
) -> SyntheticCrowd:
    """Generate ``n_tasks * answers_per_task`` answers (see the module docstring)."""
    if not 1 <= answers_per_task <= n_workers:
        raise ValueError(
            f"answers_per_task must be between 1 and n_workers ({n_workers}), "
            f"got {answers_per_task}: a worker answers a task at most once"
        )
    if n_classes < 2 or n_tasks < 1:
        raise ValueError(f"need n_classes >= 2 and n_tasks >= 1, got {n_classes}, {n_tasks}")
    if not 0.0 <= spammers <= 1.0:
        raise ValueError(f"spammers is a fraction of workers in [0, 1], got {spammers}")

    rng = np.random.default_rng(seed)
    k = n_classes
    priors = rng.dirichlet(np.full(k, 4.0))
    confusion, is_spammer = worker_confusions(rng, n_workers, k, spammers)
    activity = rng.lognormal(0.0, 0.75, size=n_workers)
    worker_cdf = np.cumsum(activity / activity.sum())
    class_cdf = np.cumsum(priors)
    # cdf over observed labels for each (worker, true label); last column forced to 1.
    confusion_cdf = np.cumsum(confusion, axis=2)
    confusion_cdf[:, :, -1] = 1.0

    n_answers = n_tasks * answers_per_task
    tasks = np.empty(n_answers, dtype=np.int32)
    workers = np.empty(n_answers, dtype=np.int32)
    labels = np.empty(n_answers, dtype=np.int32)
    true_labels = np.empty(n_tasks, dtype=np.int32)
    for start in range(0, n_tasks, _BLOCK):
        stop = min(start + _BLOCK, n_tasks)
        m = stop - start
        z = np.searchsorted(class_cdf, rng.random(m), side="right").clip(max=k - 1)
        true_labels[start:stop] = z
        w = _distinct_workers(rng, m, answers_per_task, worker_cdf).ravel()
        cdf_rows = confusion_cdf[w, np.repeat(z, answers_per_task)]  # (m * r, K)
        y = (rng.random(m * answers_per_task)[:, None] >= cdf_rows).sum(axis=1)
        a, b = start * answers_per_task, stop * answers_per_task
        tasks[a:b] = np.repeat(np.arange(start, stop, dtype=np.int32), answers_per_task)
        workers[a:b] = w
        labels[a:b] = y
    if shuffle:
        order = rng.permutation(n_answers)
        tasks, workers, labels = tasks[order], workers[order], labels[order]
        del order
    return SyntheticCrowd(
        tasks=tasks,
        workers=workers,
        labels=labels,
        true_labels=true_labels,
        confusion=confusion,
        priors=priors,
        is_spammer=is_spammer,
        n_tasks=n_tasks,
        n_workers=n_workers,
        n_classes=k,
    )


def label_names(n_classes: int) -> list[str]:
    """String labels used in CSVs, all of one width: ``cat, dog, ...`` or ``c000, c001, ...``."""
    if n_classes <= len(_LABEL_NAMES):
        return list(_LABEL_NAMES[:n_classes])
    width = len(str(n_classes - 1))
    return [f"c{i:0{width}d}" for i in range(n_classes)]


def _id_width(n: int) -> int:
    return max(4, len(str(max(n - 1, 0))))


def task_id(i: int, n_tasks: int) -> str:
    """The CSV id of task ``i`` (``t0000001``-style, zero-padded to fit ``n_tasks``)."""
    return f"t{i:0{_id_width(n_tasks)}d}"


def worker_id(i: int, n_workers: int) -> str:
    """The CSV id of worker ``i`` (``w0001``-style)."""
    return f"w{i:0{_id_width(n_workers)}d}"


def _digits(values: IntArray, width: int) -> npt.NDArray[np.uint8]:
    """ASCII zero-padded decimals, shape (n, width)."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    v = values.astype(np.int64)
    for col in range(width - 1, -1, -1):
        out[:, col] = 48 + v % 10
        v //= 10
    return out


def write_csv(crowd: SyntheticCrowd, path: str | Path, block: int = 1 << 22) -> None:
    """Write ``task,worker,label`` with a header, string ids and string labels.

    Every line has the same width, so each block of lines is a uint8 matrix
    written with one ``tofile`` call.
    """
    tw, ww = _id_width(crowd.n_tasks), _id_width(crowd.n_workers)
    names = np.array(
        [list(s.encode()) for s in label_names(crowd.n_classes)], dtype=np.uint8
    )  # (K, label width)
    lw = names.shape[1]
    width = 1 + tw + 1 + 1 + ww + 1 + lw + 1
    with open(path, "wb") as f:
        f.write(b"task,worker,label\n")
        for a in range(0, crowd.n_answers, block):
            b = min(a + block, crowd.n_answers)
            line = np.empty((b - a, width), dtype=np.uint8)
            line[:, 0] = ord("t")
            line[:, 1 : 1 + tw] = _digits(crowd.tasks[a:b], tw)
            c = 1 + tw
            line[:, c] = ord(",")
            line[:, c + 1] = ord("w")
            line[:, c + 2 : c + 2 + ww] = _digits(crowd.workers[a:b], ww)
            c += 2 + ww
            line[:, c] = ord(",")
            line[:, c + 1 : c + 1 + lw] = names[crowd.labels[a:b]]
            line[:, -1] = ord("\n")
            line.tofile(f)
