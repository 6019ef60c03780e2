"""``crowd aggregate --type multilabel|numeric|pairwise``: the other answer types, offline.

Each type reads its CSV (columns in :data:`crowd.datasets.TYPE_COLUMNS`), encodes ids to
indices once, fits its estimator from :mod:`crowd.em` and writes one row per task (per item
for pairwise). Every user error is one ``crowd: error: FILE:LINE: ...`` line, as for
categorical answers.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crowd.cli._csv import (
    CsvInput,
    InputError,
    encode_column,
    line_of_row,
    open_out,
    quiet_broken_pipe,
    read_columns,
    unique_tasks,
    write_csv,
)
from crowd.cli._errors import fail
from crowd.datasets import TYPE_COLUMNS
from crowd.em import CrowdBradleyTerry, MultilabelDawidSkene, NumericEM, class_order

#: The estimator fitted for each answer type.
ESTIMATORS: dict[str, type] = {
    "multilabel": MultilabelDawidSkene,
    "numeric": NumericEM,
    "pairwise": CrowdBradleyTerry,
}

#: Gold for pairwise answers is a set of known comparisons, not the answers' ``item,score``.
PAIRWISE_GOLD_COLUMNS = ("left", "right", "winner")

Report = Callable[[str], None]


@dataclass(frozen=True)
class Output:
    """What a type writes: the results table and, optionally, the per-worker table."""

    results: dict[str, Any]
    workers: dict[str, Any]
    notes: list[str]


def aggregate_typed(
    answer_type: str,
    answers: CsvInput,
    gold: CsvInput | None,
    options: dict[str, Any],
    *,
    proba: bool,
    report: Report | None,
) -> Output:
    """Read, fit and tabulate answers of ``answer_type``; raises :class:`InputError`."""
    columns = TYPE_COLUMNS[answer_type][0]
    table = read_columns(answers, columns, may_be_empty=("labels",))
    if report is not None:
        report(f"{table.num_rows:,} answers")
    if answer_type == "multilabel":
        return _multilabel(answers, table, gold, options, proba, report)
    if answer_type == "numeric":
        return _numeric(answers, table, gold, options, report)
    return _pairwise(answers, table, gold, options, report)


def build_estimator(
    cls: type, what: str, options: dict[str, Any], report: Report | None, prefix: str = ""
) -> Any:
    """``cls`` with the command-line ``options`` it accepts; another given option is an error.

    ``what`` names the method or type in that error; ``report`` gets every EM iteration.
    """
    accepted = inspect.signature(cls).parameters
    kwargs = {}
    for option, value in options.items():
        if value is None:
            continue
        if option not in accepted:
            fail(f"--{option.replace('_', '-')} does not apply to {what}")
        kwargs[option] = value
    if report is not None and "callback" in accepted:
        kwargs["callback"] = lambda i, obj: report(f"{prefix}iteration {i}: objective {obj:.6f}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


def _estimator(answer_type: str, options: dict[str, Any], report: Report | None) -> Any:
    return build_estimator(ESTIMATORS[answer_type], f"--type {answer_type}", options, report)


def _fit(estimator: Any, *args: Any, **kwargs: Any) -> None:
    """Fit, turning the estimator's own input checks into a user error and warnings into notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(*args, **kwargs)
        except ValueError as exc:
            fail(str(exc))
    for warning in caught:
        click.echo(f"crowd: warning: {warning.message}", err=True)


def _known_tasks(
    gold: pa.Table, task_ids: pa.Array, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(task indices, rows of known)`` for the gold rows whose task is in the answers."""
    index = pc.index_in(gold.column("task"), value_set=task_ids)
    keep = index.is_valid().to_numpy(zero_copy_only=False)
    return index.to_numpy(zero_copy_only=False)[keep].astype(np.intp), known[keep]


def _split_labels(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """``|``-joined label sets -> ``(row, label value)`` pairs, empty names dropped."""
    lists = pc.split_pattern(column.combine_chunks(), "|")
    names = pc.list_flatten(lists)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    keep = pc.greater(pc.binary_length(names), 0)
    return rows[keep.to_numpy(zero_copy_only=False)], names.filter(keep)


def _label_matrix(
    rows: np.ndarray, names: pa.Array, n_rows: int, classes: pa.Array
) -> tuple[np.ndarray, np.ndarray]:
    """``(n_rows, n_labels)`` 0/1 matrix and the rows whose labels are not in ``classes``."""
    index = pc.index_in(names, value_set=classes)
    unknown = rows[index.is_null().to_numpy(zero_copy_only=False)]
    matrix = np.zeros((n_rows, len(classes)), dtype=np.int8)
    valid = index.is_valid().to_numpy(zero_copy_only=False)
    matrix[rows[valid], index.to_numpy(zero_copy_only=False)[valid].astype(np.intp)] = 1
    return matrix, unknown


def _multilabel(
    answers: CsvInput,
    table: pa.Table,
    gold: CsvInput | None,
    options: dict[str, Any],
    proba: bool,
    report: Report | None,
) -> Output:
    tasks, task_ids = encode_column(table.column("task"))
    workers, worker_ids = encode_column(table.column("worker"))
    rows, names = _split_labels(table.column("labels"))
    distinct = pc.unique(names).to_pylist()
    classes = pa.array(class_order(np.array(distinct, dtype=object)).tolist(), pa.string())
    if not distinct:
        classes = pa.array([], pa.string())
    ticked, _ = _label_matrix(rows, names, table.num_rows, classes)
    gold_arg = None
    if gold is not None:
        gold_table = read_columns(gold, TYPE_COLUMNS["multilabel"][1], may_be_empty=("labels",))
        unique_tasks(gold, gold_table)
        g_rows, g_names = _split_labels(gold_table.column("labels"))
        sets, unknown = _label_matrix(g_rows, g_names, gold_table.num_rows, classes)
        if unknown.size:
            row = int(unknown[0])
            raise InputError(
                f"{gold.name}:{line_of_row(gold, row)}: label set "
                f"{gold_table.column('labels')[row].as_py()!r} names a label that no answer "
                f"in {answers.name} uses (labels: {', '.join(classes.to_pylist()[:20])})"
            )
        gold_arg = _known_tasks(gold_table, task_ids, sets)
    estimator = _estimator("multilabel", options, report)
    _fit(
        estimator,
        tasks,
        workers,
        ticked,
        n_tasks=len(task_ids),
        n_workers=len(worker_ids),
        gold=gold_arg,
    )
    chosen = estimator.labels_
    names_list = classes.to_pylist()
    joined = ["|".join(n for n, on in zip(names_list, row, strict=True) if on) for row in chosen]
    results: dict[str, Any] = {"task": task_ids, "labels": pa.array(joined, pa.string())}
    if proba:
        for index, name in enumerate(names_list):
            results[f"p_{name}"] = np.round(estimator.probabilities_[:, index], 6)
    given = np.bincount(workers, minlength=len(worker_ids))
    return Output(
        results,
        {
            "worker": worker_ids,
            "sensitivity": np.round(estimator.sensitivity_, 6),
            "specificity": np.round(estimator.specificity_, 6),
            "answers": given,
        },
        [],
    )


def _numbers(inp: CsvInput, column: pa.ChunkedArray, name: str) -> np.ndarray:
    """The column as finite floats, or an :class:`InputError` naming the first bad line."""
    try:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = None
    if values is not None and np.all(np.isfinite(values)):
        return np.asarray(values, dtype=np.float64)
    parsed = []
    for row, text in enumerate(column.to_pylist()):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InputError(
                f"{inp.name}:{line_of_row(inp, row)}: {name} {text!r} is not a finite number"
            )
        parsed.append(number)
    return np.array(parsed, dtype=np.float64)


def _numeric(
    answers: CsvInput,
    table: pa.Table,
    gold: CsvInput | None,
    options: dict[str, Any],
    report: Report | None,
) -> Output:
    tasks, task_ids = encode_column(table.column("task"))
    workers, worker_ids = encode_column(table.column("worker"))
    values = _numbers(answers, table.column("value"), "value")
    gold_arg = None
    if gold is not None:
        gold_table = read_columns(gold, TYPE_COLUMNS["numeric"][1])
        unique_tasks(gold, gold_table)
        gold_values = _numbers(gold, gold_table.column("value"), "value")
        gold_arg = _known_tasks(gold_table, task_ids, gold_values)
    estimator = _estimator("numeric", options, report)
    _fit(
        estimator,
        tasks,
        workers,
        values,
        n_tasks=len(task_ids),
        n_workers=len(worker_ids),
        gold=gold_arg,
    )
    given = np.bincount(workers, minlength=len(worker_ids))
    return Output(
        {
            "task": task_ids,
            "value": np.round(estimator.values_, 6),
            "lower": np.round(estimator.interval_[:, 0], 6),
            "upper": np.round(estimator.interval_[:, 1], 6),
        },
        {
            "worker": worker_ids,
            "bias": np.round(estimator.bias_, 6),
            "noise": np.round(estimator.noise_, 6),
            "answers": given,
        },
        [],
    )


def _outcomes(inp: CsvInput, table: pa.Table) -> np.ndarray:
    """1 where ``winner`` names the left item, 0 where the right; else an :class:`InputError`."""
    winner = "winner"
    left_won = pc.equal(table.column(winner), table.column("left"))
    right_won = pc.equal(table.column(winner), table.column("right"))
    same = pc.equal(table.column("left"), table.column("right")).to_numpy(zero_copy_only=False)
    left = np.asarray(left_won.to_numpy(zero_copy_only=False), dtype=bool)
    right = np.asarray(right_won.to_numpy(zero_copy_only=False), dtype=bool)
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise InputError(
            f"{inp.name}:{line_of_row(inp, row)}: left and right are the same item "
            f"{table.column('left')[row].as_py()!r}; a comparison needs two items"
        )
    bad = ~(left | right)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{inp.name}:{line_of_row(inp, row)}: {winner} "
            f"{table.column(winner)[row].as_py()!r} is neither the left item "
            f"{table.column('left')[row].as_py()!r} nor the right item "
            f"{table.column('right')[row].as_py()!r}"
        )
    return left.astype(np.float64)


def _pairwise(
    answers: CsvInput,
    table: pa.Table,
    gold: CsvInput | None,
    options: dict[str, Any],
    report: Report | None,
) -> Output:
    outcomes = _outcomes(answers, table)
    n = table.num_rows
    both = pa.chunked_array(table.column("left").chunks + table.column("right").chunks)
    codes, item_ids = encode_column(both)
    left, right = codes[:n], codes[n:]
    workers, worker_ids = encode_column(table.column("worker"))
    gold_arg = None
    if gold is not None:
        gold_table = read_columns(gold, PAIRWISE_GOLD_COLUMNS)
        gold_outcomes = _outcomes(gold, gold_table)
        g_left = pc.index_in(gold_table.column("left"), value_set=item_ids)
        g_right = pc.index_in(gold_table.column("right"), value_set=item_ids)
        valid = np.asarray(
            pc.and_(g_left.is_valid(), g_right.is_valid()).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        gold_arg = (
            g_left.to_numpy(zero_copy_only=False)[valid].astype(np.intp),
            g_right.to_numpy(zero_copy_only=False)[valid].astype(np.intp),
            gold_outcomes[valid],
        )
    estimator = _estimator("pairwise", options, report)
    _fit(
        estimator,
        left,
        right,
        workers,
        outcomes,
        n_items=len(item_ids),
        n_workers=len(worker_ids),
        gold=gold_arg,
    )
    order = np.lexsort((estimator.ranks_, estimator.components_))
    notes = [f"position bias {estimator.position_bias_:+.4f} (log-odds in favour of the left item)"]
    if estimator.n_components_ > 1:
        notes.append(
            f"the comparisons form {estimator.n_components_} separate groups of items; scores "
            "and ranks compare items only within a group (column component, 0 = the largest)"
        )
    given = np.bincount(workers, minlength=len(worker_ids))
    return Output(
        {
            "item": item_ids.take(pa.array(order)),
            "score": np.round(estimator.scores_[order], 6),
            "rank": estimator.ranks_[order],
            "component": estimator.components_[order],
            "comparisons": estimator.comparisons_[order],
        },
        {
            "worker": worker_ids,
            "reliability": np.round(estimator.reliability_, 6),
            "answers": given,
        },
        notes,
    )


def write(output: Output, out: str | None, workers_out: str | None) -> None:
    """Write the results (and the worker table when asked for) as CSV."""
    try:
        with open_out(out) as sink:
            write_csv(sink, list(output.results), pa.table(output.results))
        if workers_out is not None:
            with open_out(workers_out) as sink:
                write_csv(sink, list(output.workers), pa.table(output.workers))
    except BrokenPipeError:
        quiet_broken_pipe()
    except OSError as exc:
        fail(f"{exc.filename or 'output'}: {exc.strerror or exc}")
