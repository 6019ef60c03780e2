"""``crowd aggregate`` and ``crowd evaluate``: aggregate a CSV of answers offline, score it.

Reading is pyarrow's multi-threaded CSV parser plus hash-based dictionary encoding, so a
5M-row file is read and encoded in about a second. When the fast path reports any problem,
the file is re-read with Python's ``csv`` module, which finds the exact line to report (or,
for inputs pyarrow is merely stricter about, such as newlines inside quoted values, parses it).
Every user error ends as one ``crowd: error: FILE:LINE: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn, TextIO

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crowd.em import DEFAULT_METHOD, METHODS, class_order

ANSWER_COLUMNS = ("task", "worker", "label")
GOLD_COLUMNS = ("task", "label")
RESULT_COLUMNS = ("task", "label")


class InputError(Exception):
    """A problem in an input file that the user can fix; the message names file and line."""


def _fail(message: str) -> NoReturn:
    click.echo(f"crowd: error: {message}", err=True)
    sys.exit(2)


@dataclass(frozen=True)
class CsvInput:
    """A CSV file to read: its name for messages and a path, or the bytes of a pipe or stdin."""

    name: str
    source: str | bytes

    @classmethod
    def from_path(cls, path: str) -> CsvInput:
        """``path`` as given; ``-`` is stdin. Pipes are read into memory (they cannot seek)."""
        if path == "-":
            return cls("<stdin>", sys.stdin.buffer.read())
        name = click.format_filename(path)
        try:
            with open(path, "rb") as file:
                return cls(name, path if file.seekable() else file.read())
        except OSError as exc:
            raise InputError(f"{name}: {exc.strerror or exc}") from None

    def text(self) -> TextIO:
        if isinstance(self.source, bytes):
            binary: BinaryIO = io.BytesIO(self.source)
        else:
            binary = open(self.source, "rb")  # noqa: SIM115 (closed by the wrapper)
        return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def arrow(self) -> str | pa.BufferReader:
        return self.source if isinstance(self.source, str) else pa.BufferReader(self.source)


def _rows(inp: CsvInput) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, fields)`` of every non-blank CSV record, header included."""
    try:
        with inp.text() as file:
            reader = csv.reader(file, strict=True)
            line = 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise InputError(f"{inp.name}:{reader.line_num}: {exc}") from None
                if row:
                    yield line, row
                line = reader.line_num + 1
    except OSError as exc:
        raise InputError(f"{inp.name}: {exc.strerror or exc}") from None


def _header(inp: CsvInput, columns: Sequence[str]) -> list[str]:
    """The header fields, checked to name every column in ``columns``."""
    first = next(_rows(inp), None)
    if first is None:
        raise InputError(f"{inp.name}: empty file; expected a header line {','.join(columns)}")
    header = first[1]
    for column in columns:
        if column not in header:
            raise InputError(
                f"{inp.name}:1: missing column {column!r}; the header must name "
                f"{','.join(columns)} (got {','.join(header)!r})"
            )
    return header


def _scan(inp: CsvInput, columns: Sequence[str]) -> pa.Table:
    """Exact, slow reader: raise :class:`InputError` at the first bad line, else parse."""
    header = _header(inp, columns)
    positions = [header.index(column) for column in columns]
    values: list[list[str]] = [[] for _ in columns]
    rows = _rows(inp)
    next(rows)
    for line, row in rows:
        if len(row) != len(header):
            raise InputError(
                f"{inp.name}:{line}: expected {len(header)} fields ({','.join(header)}), "
                f"got {len(row)}"
            )
        for column, position, out in zip(columns, positions, values, strict=True):
            value = row[position]
            if not value:
                raise InputError(f"{inp.name}:{line}: empty {column}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{inp.name}:{line}: {column} is not valid UTF-8") from None
            out.append(value)
    return pa.table({c: pa.array(v, pa.string()) for c, v in zip(columns, values, strict=True)})


def _line_of_row(inp: CsvInput, row: int) -> int:
    """Line number where data row ``row`` (0-based, header excluded) starts."""
    for index, (line, _) in enumerate(_rows(inp)):
        if index == row + 1:
            return line
    raise IndexError(row)


def read_columns(inp: CsvInput, columns: Sequence[str]) -> pa.Table:
    """Read the string columns ``columns`` of a CSV with a header (other columns are ignored)."""
    _header(inp, columns)
    try:
        table = pa_csv.read_csv(
            inp.arrow(),
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                include_columns=list(columns),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return _scan(inp, columns)
    except OSError as exc:
        raise InputError(f"{inp.name}: {exc}") from None
    for column in columns:
        lengths = pc.binary_length(table.column(column))
        if len(lengths) and pc.min(lengths).as_py() == 0:
            return _scan(inp, columns)
    return table


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Codes in first-appearance order ``(n,)`` and the distinct values."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary


def _first_duplicate(codes: np.ndarray) -> tuple[int, int] | None:
    """``(first row, repeated row)`` of the first value seen twice, or ``None``."""
    _, first = np.unique(codes, return_index=True)
    if first.size == codes.size:
        return None
    seen = np.zeros(codes.size, dtype=bool)
    seen[first] = True
    repeat = int(np.argmin(seen))
    return int(np.flatnonzero(codes == codes[repeat])[0]), repeat


def _unique_tasks(inp: CsvInput, table: pa.Table) -> None:
    duplicate = _first_duplicate(_encode(table.column("task"))[0])
    if duplicate is not None:
        first, repeat = (_line_of_row(inp, row) for row in duplicate)
        task = table.column("task")[duplicate[1]].as_py()
        raise InputError(f"{inp.name}:{repeat}: task {task!r} listed again (first at line {first})")


def _write_csv(sink: BinaryIO, header: Sequence[str], table: pa.Table) -> None:
    """Header plus rows, quoting only where a value needs it."""
    sink.write((",".join(header) + "\n").encode())
    needs_quotes = any(
        pc.any(pc.match_substring_regex(table.column(c), r'[",\r\n]')).as_py()
        for c in header
        if pa.types.is_string(table.schema.field(c).type)
    )
    if needs_quotes:  # an id holds a comma, quote or newline: let the csv module quote it
        text = csv.writer(_TextSink(sink), lineterminator="\n")
        text.writerows(zip(*(table.column(c).to_pylist() for c in header), strict=True))
    else:
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        pa_csv.write_csv(table, sink, write_options=options)


class _TextSink:
    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        return self.sink.write(text.encode("utf-8", errors="surrogateescape"))


def _quiet_broken_pipe() -> NoReturn:
    """The reader of stdout went away (``crowd aggregate ... | head``): stop without noise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def _open_out(path: str | None) -> BinaryIO:
    return click.open_file(path or "-", "wb")  # type: ignore[return-value]


#: Inputs at least this big report progress even when stderr is not a terminal (a log file).
LARGE_INPUT_BYTES = 64 * 1024 * 1024


def _is_large(path: str) -> bool:
    try:
        return path != "-" and os.path.getsize(path) >= LARGE_INPUT_BYTES
    except OSError:
        return False  # the reader reports a missing file with its own message


def _estimator(method: str, options: dict[str, Any], progress: Callable[[str], None] | None) -> Any:
    cls = METHODS[method]
    accepted = inspect.signature(cls).parameters
    kwargs = {}
    for option, value in options.items():
        if value is None:
            continue
        if option not in accepted:
            _fail(f"--{option.replace('_', '-')} does not apply to method {method}")
        kwargs[option] = value
    if progress is not None and "callback" in accepted:
        kwargs["callback"] = lambda i, obj: progress(f"{method} iteration {i}: objective {obj:.6f}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        _fail(str(exc))


@click.command("aggregate")
@click.argument("answers", type=click.Path(dir_okay=False))
@click.option(
    "--method",
    type=click.Choice(sorted(METHODS)),
    default=DEFAULT_METHOD,
    show_default=True,
    help="Aggregation method: "
    + ", ".join(f"{name} = {cls.__name__}" for name, cls in sorted(METHODS.items()))
    + " (crowd.em).",
)
@click.option(
    "--gold",
    type=click.Path(dir_okay=False),
    help="CSV with header task,label: known labels, held fixed during fitting.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="RESULTS file [default: stdout].")
@click.option(
    "--workers-out",
    type=click.Path(dir_okay=False),
    help="Also write worker,accuracy,answers here (accuracy: the method's estimate).",
)
@click.option("--proba", is_flag=True, help="Add a p_<label> probability column per label.")
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
    method: str,
    gold: str | None,
    out: str | None,
    workers_out: str | None,
    proba: bool,
    max_iter: int | None,
    tol: float | None,
    smoothing: float | None,
    progress: bool | None,
) -> None:
    """Aggregate crowd ANSWERS (CSV: task,worker,label; - for stdin) into one label per task.

    Writes RESULTS as CSV task,label,confidence (plus p_<label> columns with --proba), one row
    per task in order of first appearance in ANSWERS; confidence is the posterior probability
    of the chosen label. Every answer row counts, including a worker's repeated answers to a
    task. Labels are arbitrary strings; ties go to the lowest label, numerically when all
    labels are numbers, else in string order. Gold rows for tasks absent from ANSWERS are
    ignored.
    """
    started = time.perf_counter()
    show = progress if progress is not None else (sys.stderr.isatty() or _is_large(answers))

    def report(message: str) -> None:
        click.echo(f"crowd: {message} ({time.perf_counter() - started:.1f} s)", err=True)

    try:
        if show:
            report(f"reading {click.format_filename(answers)}")
        answers_in = CsvInput.from_path(answers)
        table = read_columns(answers_in, ANSWER_COLUMNS)
        tasks, task_ids = _encode(table.column("task"))
        workers, worker_ids = _encode(table.column("worker"))
        raw_labels, label_values = _encode(table.column("label"))
        classes = class_order(np.array(label_values.to_pylist(), dtype=object))
        classes_arr = pa.array(classes.tolist(), pa.string())
        remap = pc.index_in(label_values, value_set=classes_arr).to_numpy(zero_copy_only=False)
        labels = remap[raw_labels] if raw_labels.size else raw_labels
        del table
        gold_arg = None
        if gold is not None:
            gold_arg = _read_gold(CsvInput.from_path(gold), answers_in.name, task_ids, classes_arr)
    except InputError as exc:
        _fail(str(exc))
    if show:
        report(
            f"{len(tasks):,} answers, {len(task_ids):,} tasks, {len(worker_ids):,} workers, "
            f"{len(classes):,} labels"
        )

    estimator = _estimator(
        method, {"max_iter": max_iter, "tol": tol, "smoothing": smoothing}, report if show else None
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(
                tasks,
                workers,
                labels,
                n_tasks=len(task_ids),
                n_workers=len(worker_ids),
                n_classes=max(len(classes), 1),
                gold=gold_arg,
            )
        except ValueError as exc:  # a method's own check on its inputs or hyperparameters
            _fail(f"{method}: {exc}")
    for warning in caught:
        click.echo(f"crowd: warning: {warning.message}", err=True)
    if hasattr(estimator, "method_"):
        click.echo(f"crowd: {method} chose {estimator.method_}: {estimator.reason_}", err=True)

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
        with _open_out(out) as sink:
            _write_csv(sink, list(columns), pa.table(columns))
        if workers_out is not None:
            given = np.bincount(workers, minlength=len(worker_ids))
            with _open_out(workers_out) as sink:
                _write_csv(
                    sink,
                    ["worker", "accuracy", "answers"],
                    pa.table(
                        {
                            "worker": worker_ids,
                            "accuracy": np.round(estimator.worker_accuracy_, 6),
                            "answers": given,
                        }
                    ),
                )
    except BrokenPipeError:
        _quiet_broken_pipe()
    except OSError as exc:
        _fail(f"{exc.filename or 'output'}: {exc.strerror or exc}")
    if show:
        report("done")


def _read_gold(
    gold: CsvInput, answers: str, task_ids: pa.Array, classes: pa.Array
) -> tuple[np.ndarray, np.ndarray]:
    """Gold rows as ``(task indices, class indices)`` for tasks present in the answers."""
    table = read_columns(gold, GOLD_COLUMNS)
    _unique_tasks(gold, table)
    label_index = pc.index_in(table.column("label"), value_set=classes)
    if label_index.null_count:
        row = int(np.flatnonzero(label_index.is_null().to_numpy(zero_copy_only=False))[0])
        known = ", ".join(classes.to_pylist()[:20])
        raise InputError(
            f"{gold.name}:{_line_of_row(gold, row)}: label "
            f"{table.column('label')[row].as_py()!r} does not occur in {answers} "
            f"(labels: {known})"
        )
    task_index = pc.index_in(table.column("task"), value_set=task_ids)
    keep = task_index.is_valid().to_numpy(zero_copy_only=False)
    return (
        task_index.to_numpy(zero_copy_only=False)[keep].astype(np.intp),
        label_index.to_numpy(zero_copy_only=False)[keep].astype(np.intp),
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
        _unique_tasks(results_in, predicted)
        _unique_tasks(gold_in, truth)
    except InputError as exc:
        _fail(str(exc))
    if truth.num_rows == 0:
        _fail(f"{gold_in.name}: no gold rows to evaluate against")
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
