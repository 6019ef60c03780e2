"""``crowd aggregate`` and ``crowd evaluate``: aggregate a CSV of answers offline, score it.

Reading and writing CSV (and the error messages naming file and line) are in
:mod:`crowd.cli._csv`; the answer types other than categorical are in
:mod:`crowd.cli.aggregate_types`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
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
from crowd.cli.aggregate_types import ESTIMATORS, aggregate_typed, build_estimator
from crowd.cli.aggregate_types import write as write_typed
from crowd.datasets import TYPE_COLUMNS
from crowd.em import DEFAULT_METHOD, METHODS, class_order

ANSWER_COLUMNS = ("task", "worker", "label")
GOLD_COLUMNS = ("task", "label")
PREDICTION_COLUMNS = ("task", "model", "label")
RESULT_COLUMNS = ("task", "label")


#: Inputs at least this big report progress even when stderr is not a terminal (a log file).
LARGE_INPUT_BYTES = 64 * 1024 * 1024


def _is_large(path: str) -> bool:
    try:
        return path != "-" and os.path.getsize(path) >= LARGE_INPUT_BYTES
    except OSError:
        return False  # the reader reports a missing file with its own message


@click.command("aggregate")
@click.argument("answers", type=click.Path(dir_okay=False))
@click.option(
    "--type",
    "answer_type",
    type=click.Choice(list(TYPE_COLUMNS)),
    default="categorical",
    show_default=True,
    help="What an answer is: one label (task,worker,label), a label set (task,worker,labels, "
    "labels joined by |, empty = none), a number (task,worker,value) or a preference "
    "(left,right,worker,winner; winner is the left or right item).",
)
@click.option(
    "--method",
    type=click.Choice(sorted(METHODS)),
    default=None,
    help="Aggregation method for --type categorical: "
    + ", ".join(f"{name} = {cls.__name__}" for name, cls in sorted(METHODS.items()))
    + f" (crowd.em) [default: {DEFAULT_METHOD}]. The other types have one method each: "
    + ", ".join(f"{t} = {cls.__name__}" for t, cls in ESTIMATORS.items())
    + ".",
)
@click.option(
    "--gold",
    type=click.Path(dir_okay=False),
    help="Known answers, held fixed during fitting: CSV task,label (categorical), task,labels "
    "(multilabel), task,value (numeric) or left,right,winner (pairwise: known comparisons).",
)
@click.option(
    "--predictions",
    type=click.Path(dir_okay=False),
    help="Models' predictions, CSV task,model,label (one per task and model; --type "
    "categorical): each model votes as one more worker with its own confusion matrix "
    "(docs/REVIEW.md); stderr reports each model's estimated accuracy. Rows for tasks absent "
    "from ANSWERS are ignored.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="RESULTS file [default: stdout].")
@click.option(
    "--workers-out",
    type=click.Path(dir_okay=False),
    help="Also write the worker estimates here: worker,accuracy,answers (categorical), "
    "worker,sensitivity,specificity,answers (multilabel), worker,bias,noise,answers (numeric), "
    "worker,reliability,answers (pairwise).",
)
@click.option(
    "--proba",
    is_flag=True,
    help="Add a p_<label> probability column per label (categorical, multilabel).",
)
@click.option("--max-iter", type=click.IntRange(min=1), help="EM iteration limit.")
@click.option(
    "--tol",
    type=click.FloatRange(min=0),
    help="EM stops when the per-answer log-posterior changes less.",
)
@click.option(
    "--smoothing", type=click.FloatRange(min=0), help="Dirichlet pseudo-count per confusion cell."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Report reading and EM progress on stderr [default: when stderr is a terminal or "
    "ANSWERS is a file of 64 MiB or more].",
)
def aggregate_command(
    answers: str,
    answer_type: str,
    method: str | None,
    gold: str | None,
    predictions: str | None,
    out: str | None,
    workers_out: str | None,
    proba: bool,
    max_iter: int | None,
    tol: float | None,
    smoothing: float | None,
    progress: bool | None,
) -> None:
    """Aggregate crowd ANSWERS (CSV; - for stdin) into one result per task.

    Categorical (the default): ANSWERS is task,worker,label and RESULTS is
    task,label,confidence (plus p_<label> columns with --proba), one row per task in order of
    first appearance in ANSWERS; confidence is the posterior probability of the chosen label.
    Every answer row counts, including a worker's repeated answers to a task. Labels are
    arbitrary strings; ties go to the lowest label, numerically when all labels are numbers,
    else in string order. Gold rows for tasks absent from ANSWERS are ignored.

    --type multilabel writes task,labels (the chosen set joined by |; p_<label> columns with
    --proba). --type numeric writes task,value,lower,upper (a 90% credible interval).
    --type pairwise writes item,score,rank,component,comparisons, sorted by component and
    rank: scores and ranks compare items only within a component, a group of items linked by
    comparisons (0 is the largest); stderr notes the fitted position bias, and says so when
    there is more than one component.
    """
    started = time.perf_counter()
    show = progress if progress is not None else (sys.stderr.isatty() or _is_large(answers))

    def report(message: str) -> None:
        click.echo(f"crowd: {message} ({time.perf_counter() - started:.1f} s)", err=True)

    if answer_type != "categorical":
        if method is not None:
            fail(f"--method applies to --type categorical only, not to --type {answer_type}")
        if predictions is not None:
            fail(f"--predictions applies to --type categorical only, not to --type {answer_type}")
        if proba and answer_type != "multilabel":
            fail(f"--proba applies to --type categorical and multilabel, not to {answer_type}")
        if show:
            report(f"reading {click.format_filename(answers)}")
        try:
            output = aggregate_typed(
                answer_type,
                CsvInput.from_path(answers),
                None if gold is None else CsvInput.from_path(gold),
                {"max_iter": max_iter, "tol": tol, "smoothing": smoothing},
                proba=proba,
                report=report if show else None,
            )
        except InputError as exc:
            fail(str(exc))
        for note in output.notes:
            click.echo(f"crowd: note: {note}", err=True)
        write_typed(output, out, workers_out)
        if show:
            report("done")
        return
    method = method or DEFAULT_METHOD

    try:
        if show:
            report(f"reading {click.format_filename(answers)}")
        answers_in = CsvInput.from_path(answers)
        table = read_columns(answers_in, ANSWER_COLUMNS)
        tasks, task_ids = encode_column(table.column("task"))
        workers, worker_ids = encode_column(table.column("worker"))
        raw_labels, label_values = encode_column(table.column("label"))
        classes = class_order(np.array(label_values.to_pylist(), dtype=object))
        classes_arr = pa.array(classes.tolist(), pa.string())
        remap = pc.index_in(label_values, value_set=classes_arr).to_numpy(zero_copy_only=False)
        labels = remap[raw_labels] if raw_labels.size else raw_labels
        del table
        gold_arg = None
        if gold is not None:
            gold_arg = _read_gold(CsvInput.from_path(gold), answers_in.name, task_ids, classes_arr)
        n_people = len(worker_ids)
        models: list[str] = []
        if predictions is not None:
            voted = _read_predictions(
                CsvInput.from_path(predictions), answers_in.name, task_ids, classes_arr
            )
            models = voted[3]
            tasks = np.concatenate([tasks, voted[0]])
            workers = np.concatenate([workers, n_people + voted[1]])
            labels = np.concatenate([labels, voted[2]])
    except InputError as exc:
        fail(str(exc))
    if show:
        report(
            f"{len(tasks):,} answers, {len(task_ids):,} tasks, {len(worker_ids):,} workers, "
            f"{len(classes):,} labels"
        )

    estimator = build_estimator(
        METHODS[method],
        f"method {method}",
        {"max_iter": max_iter, "tol": tol, "smoothing": smoothing},
        report if show else None,
        prefix=f"{method} ",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(
                tasks,
                workers,
                labels,
                n_tasks=len(task_ids),
                n_workers=n_people + len(models),
                n_classes=max(len(classes), 1),
                gold=gold_arg,
                voters=len(models),
            )
        except ValueError as exc:  # a method's own check on its inputs or hyperparameters
            fail(f"{method}: {exc}")
    for warning in caught:
        click.echo(f"crowd: warning: {warning.message}", err=True)
    if hasattr(estimator, "method_"):
        click.echo(f"crowd: {method} chose {estimator.method_}: {estimator.reason_}", err=True)
    voted_by = np.bincount(workers, minlength=n_people + len(models))
    for i, model in enumerate(models):
        accuracy = float(estimator.worker_accuracy_[n_people + i])
        click.echo(
            f"crowd: model {model!r}: estimated accuracy {accuracy:.4f} on "
            f"{int(voted_by[n_people + i]):,} predictions",
            err=True,
        )

    posteriors = estimator.posteriors_[: len(task_ids), : len(classes)]
    chosen = estimator.labels_[: len(task_ids)]
    columns: dict[str, Any] = {
        "task": task_ids,
        "label": classes_arr.take(pa.array(chosen)),
        "confidence": np.round(posteriors[np.arange(len(chosen)), chosen], 6),
    }
    if proba:
        for index, value in enumerate(classes.tolist()):
            columns[f"p_{value}"] = np.round(posteriors[:, index], 6)
    try:
        with open_out(out) as sink:
            write_csv(sink, list(columns), pa.table(columns))
        if workers_out is not None:
            given = voted_by[:n_people]
            with open_out(workers_out) as sink:
                write_csv(
                    sink,
                    ["worker", "accuracy", "answers"],
                    pa.table(
                        {
                            "worker": worker_ids,
                            "accuracy": np.round(estimator.worker_accuracy_[:n_people], 6),
                            "answers": given,
                        }
                    ),
                )
    except BrokenPipeError:
        quiet_broken_pipe()
    except OSError as exc:
        fail(f"{exc.filename or 'output'}: {exc.strerror or exc}")
    if show:
        report("done")


def _read_gold(
    gold: CsvInput, answers: str, task_ids: pa.Array, classes: pa.Array
) -> tuple[np.ndarray, np.ndarray]:
    """Gold rows as ``(task indices, class indices)`` for tasks present in the answers."""
    table = read_columns(gold, GOLD_COLUMNS)
    unique_tasks(gold, table)
    label_index = pc.index_in(table.column("label"), value_set=classes)
    if label_index.null_count:
        row = int(np.flatnonzero(label_index.is_null().to_numpy(zero_copy_only=False))[0])
        known = ", ".join(classes.to_pylist()[:20])
        raise InputError(
            f"{gold.name}:{line_of_row(gold, row)}: label "
            f"{table.column('label')[row].as_py()!r} does not occur in {answers} "
            f"(labels: {known})"
        )
    task_index = pc.index_in(table.column("task"), value_set=task_ids)
    keep = task_index.is_valid().to_numpy(zero_copy_only=False)
    return (
        task_index.to_numpy(zero_copy_only=False)[keep].astype(np.intp),
        label_index.to_numpy(zero_copy_only=False)[keep].astype(np.intp),
    )


def _read_predictions(
    inp: CsvInput, answers: str, task_ids: pa.Array, classes: pa.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Prediction rows for tasks present in the answers: ``(task indices, model indices,
    class indices, model names)``."""
    table = read_columns(inp, PREDICTION_COLUMNS)
    label_index = pc.index_in(table.column("label"), value_set=classes)
    if label_index.null_count:
        row = int(np.flatnonzero(label_index.is_null().to_numpy(zero_copy_only=False))[0])
        known = ", ".join(classes.to_pylist()[:20])
        raise InputError(
            f"{inp.name}:{line_of_row(inp, row)}: label "
            f"{table.column('label')[row].as_py()!r} does not occur in {answers} "
            f"(labels: {known})"
        )
    model_codes, model_names = encode_column(table.column("model"))
    task_index = pc.index_in(table.column("task"), value_set=task_ids)
    keep = task_index.is_valid().to_numpy(zero_copy_only=False)
    task_codes = task_index.to_numpy(zero_copy_only=False)
    pairs = np.where(keep, task_codes, -1).astype(np.int64) * max(len(model_names), 1)
    pairs = pairs + model_codes
    _, first, seen = np.unique(pairs[keep], return_index=True, return_counts=True)
    if (seen > 1).any():
        rows = np.flatnonzero(keep)
        repeat = pairs[keep] == pairs[keep][first[np.argmax(seen > 1)]]
        row = int(rows[np.flatnonzero(repeat)[1]])
        raise InputError(
            f"{inp.name}:{line_of_row(inp, row)}: task {table.column('task')[row].as_py()!r} "
            f"is predicted twice by model {table.column('model')[row].as_py()!r}"
        )
    used, models = np.unique(model_codes[keep], return_inverse=True)
    names = [str(model_names[int(code)].as_py()) for code in used]
    return (
        task_codes[keep].astype(np.intp),
        models.astype(np.intp),
        label_index.to_numpy(zero_copy_only=False)[keep].astype(np.intp),
        names,
    )


@click.command("evaluate")
@click.argument("results", type=click.Path(dir_okay=False))
@click.argument("gold", type=click.Path(dir_okay=False))
def evaluate_command(results: str, gold: str) -> None:
    """Print the accuracy of RESULTS (CSV with task,label) on GOLD (CSV task,label; - for stdin).

    Accuracy is over every row of GOLD: a gold task missing from RESULTS counts as wrong (and
    is reported on stderr). Labels are compared as strings.
    """
    try:
        results_in, gold_in = CsvInput.from_path(results), CsvInput.from_path(gold)
        predicted = read_columns(results_in, RESULT_COLUMNS)
        truth = read_columns(gold_in, GOLD_COLUMNS)
        unique_tasks(results_in, predicted)
        unique_tasks(gold_in, truth)
    except InputError as exc:
        fail(str(exc))
    if truth.num_rows == 0:
        fail(f"{gold_in.name}: no gold rows to evaluate against")
    position = pc.index_in(truth.column("task"), value_set=predicted.column("task"))
    guess = predicted.column("label").take(position)
    correct = int(pc.sum(pc.equal(guess, truth.column("label"))).as_py() or 0)
    total = truth.num_rows
    click.echo(f"accuracy {correct / total:.4f} ({correct}/{total} gold tasks)")
    if position.null_count:
        click.echo(
            f"crowd: note: {position.null_count} gold tasks are missing from "
            f"{results_in.name} and count as wrong",
            err=True,
        )


COMMANDS = [aggregate_command, evaluate_command]
