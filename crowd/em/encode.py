"""Map task, worker and label ids (any hashable scalars, usually strings) to dense indices once.

The estimators iterate on integer arrays; :func:`encode` is the one place where ids are
matched, and :class:`Encoded` maps indices back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crowd.em._base import IntArray


@dataclass(frozen=True)
class Encoded:
    """Answers as indices, plus the id tables to decode them.

    Attributes:
        tasks, workers, labels: ``(n_answers,)`` indices into the tables below.
        task_index: ``(n_tasks,)`` task ids, sorted (``task_index[tasks[i]]`` is answer i's task).
        worker_index: ``(n_workers,)`` worker ids, sorted.
        classes: ``(n_classes,)`` label values in class order (see :func:`class_order`).
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    task_index: NDArray[Any]
    worker_index: NDArray[Any]
    classes: NDArray[Any]

    @property
    def n_tasks(self) -> int:
        return len(self.task_index)

    @property
    def n_workers(self) -> int:
        return len(self.worker_index)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def decode_labels(self, indices: ArrayLike) -> NDArray[Any]:
        """Class indices -> label values, same shape."""
        return self.classes[np.asarray(indices, dtype=np.intp)]

    def encode_tasks(self, task_ids: ArrayLike) -> IntArray:
        """Task ids -> indices; raises ``KeyError`` naming the first unknown id."""
        return _lookup(self.task_index, task_ids, "task")

    def encode_labels(self, label_values: ArrayLike) -> IntArray:
        """Label values -> class indices; raises ``KeyError`` naming the first unknown label."""
        return _lookup(self.classes, label_values, "label")

    def encode_gold(
        self, task_ids: ArrayLike, label_values: ArrayLike
    ) -> tuple[IntArray, IntArray]:
        """Gold ``(task ids, labels)`` -> ``(task indices, class indices)`` for ``fit(gold=...)``."""
        return self.encode_tasks(task_ids), self.encode_labels(label_values)


def _is_numeric(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def class_order(values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    """Sort distinct label values into class order.

    If every value is a number or a string that parses as one (``"2"``, ``"10"``, ``"0.5"``),
    the order is numeric (``"2"`` before ``"10"``); otherwise it is plain string order. Ties in
    majority vote and argmax go to the lowest class in this order.
    """
    array = np.asarray(values)
    if array.size and all(_is_numeric(v) for v in array.tolist()):
        keys = np.array([float(v) for v in array.tolist()])
        return array[np.lexsort((array.astype(str), keys))]
    return array[np.argsort(array.astype(str), kind="stable")]


def _lookup(table: NDArray[Any], values: ArrayLike, what: str) -> IntArray:
    """Indices of ``values`` in ``table`` (distinct entries, any order)."""
    order = np.argsort(table, kind="stable")
    ordered = table[order]
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.intp)
    position = np.searchsorted(ordered, array).clip(max=max(len(ordered) - 1, 0))
    found = ordered[position] == array if len(ordered) else np.zeros(array.shape, dtype=bool)
    if not np.all(found):
        missing = array[~found][0].item()
        raise KeyError(f"unknown {what} {missing!r}")
    return order[position].astype(np.intp)


def encode(task_ids: ArrayLike, worker_ids: ArrayLike, label_values: ArrayLike) -> Encoded:
    """Encode three equal-length 1-D id arrays (one entry per answer) into :class:`Encoded`.

    Tasks and workers are numbered in sorted id order, classes in :func:`class_order`. Each
    column goes through ``np.unique(..., return_inverse=True)`` once.
    """
    tasks = np.asarray(task_ids)
    workers = np.asarray(worker_ids)
    labels = np.asarray(label_values)
    if not tasks.shape == workers.shape == labels.shape or tasks.ndim != 1:
        raise ValueError("task_ids, worker_ids and label_values must be 1-D and equally long")
    task_index, task_codes = np.unique(tasks, return_inverse=True)
    worker_index, worker_codes = np.unique(workers, return_inverse=True)
    distinct, label_codes = np.unique(labels, return_inverse=True)
    classes = class_order(distinct)
    # np.unique sorted the labels one way; remap its codes to class order.
    remap = _lookup(classes, distinct, "label")
    return Encoded(
        tasks=task_codes.astype(np.intp).reshape(-1),
        workers=worker_codes.astype(np.intp).reshape(-1),
        labels=remap[label_codes].reshape(-1) if distinct.size else label_codes.astype(np.intp),
        task_index=task_index,
        worker_index=worker_index,
        classes=classes,
    )
