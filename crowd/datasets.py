"""A crowd's answers and their truth, as a folder of two CSV files.

``answers.csv`` has a row per answer (``task,worker,label``) and ``gold.csv`` a row per task
whose true label is known (``task,label``); ids and labels are strings. ``crowd demo --data``
replays such a folder, and the benchmarks score against such folders.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ANSWER_COLUMNS = ("task", "worker", "label")
GOLD_COLUMNS = ("task", "label")

#: The answer types and the columns of their ``answers.csv`` and ``gold.csv``
#: (``../shared/datasets/TYPES.md``). Multi-label sets are ``|``-joined label names, where an
#: empty field is the empty set; a pairwise ``winner`` is the left or the right item's id.
TYPE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "categorical": (ANSWER_COLUMNS, GOLD_COLUMNS),
    "multilabel": (("task", "worker", "labels"), ("task", "labels")),
    "numeric": (("task", "worker", "value"), ("task", "value")),
    "pairwise": (("left", "right", "worker", "winner"), ("item", "score")),
}


@dataclass(frozen=True)
class Dataset:
    """A dataset folder as read by :func:`read`."""

    name: str  # the folder's name
    answers: list[tuple[str, str, str]]  # (task, worker, label), in file order, repeats kept
    gold: dict[str, str]  # task -> true label


def read(folder: Path) -> Dataset:
    """Read ``folder/answers.csv`` and ``folder/gold.csv``.

    Raises FileNotFoundError when either is missing, ValueError (naming the file and the
    line) when one is not in the format.
    """
    for path in (folder / "answers.csv", folder / "gold.csv"):
        _exists(path)
    answers = read_csv(folder / "answers.csv", ANSWER_COLUMNS)
    gold = read_csv(folder / "gold.csv", GOLD_COLUMNS)
    return Dataset(
        folder.name,
        [(task, worker, label) for task, worker, label in answers],
        {task: label for task, label in gold},
    )


def read_csv(path: Path, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """The ``columns`` of every row of the CSV file ``path``, in file order.

    The file's first line names its columns: ``columns`` must be among them (others are left
    out). Every further row must have as many fields as that line; blank lines are skipped.
    """
    _exists(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(
                f"{path}: the first line must name the columns {','.join(columns)}"
                f" ({','.join(missing)} missing)"
            )
        at = [header.index(c) for c in columns]
        out = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
            out.append(tuple(row[i] for i in at))
    return out


def _exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: a dataset folder holds answers.csv (task,worker,label) and"
            " gold.csv (task,label)"
        )
