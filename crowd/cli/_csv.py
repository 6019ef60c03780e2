"""CSV input and output for the offline commands: exact error lines, fast paths through pyarrow.

Reading is pyarrow's multi-threaded CSV parser plus hash-based dictionary encoding, so a
5M-row file is read and encoded in about a second. When the fast path reports any problem,
the file is re-read with Python's ``csv`` module, which finds the exact line to report (or,
for inputs pyarrow is merely stricter about, such as newlines inside quoted values, parses it).
Every user error ends as one ``crowd: error: FILE:LINE: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NoReturn, TextIO

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv


class InputError(Exception):
    """A problem in an input file that the user can fix; the message names file and line."""


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


def _scan(inp: CsvInput, columns: Sequence[str], may_be_empty: Sequence[str] = ()) -> pa.Table:
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
            if not value and column not in may_be_empty:
                raise InputError(f"{inp.name}:{line}: empty {column}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{inp.name}:{line}: {column} is not valid UTF-8") from None
            out.append(value)
    return pa.table({c: pa.array(v, pa.string()) for c, v in zip(columns, values, strict=True)})


def line_of_row(inp: CsvInput, row: int) -> int:
    """Line number where data row ``row`` (0-based, header excluded) starts."""
    for index, (line, _) in enumerate(_rows(inp)):
        if index == row + 1:
            return line
    raise IndexError(row)


def read_columns(
    inp: CsvInput, columns: Sequence[str], may_be_empty: Sequence[str] = ()
) -> pa.Table:
    """Read the string columns ``columns`` of a CSV with a header (other columns are ignored).

    A field may be empty only in the columns ``may_be_empty``.
    """
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
        return _scan(inp, columns, may_be_empty)
    except OSError as exc:
        raise InputError(f"{inp.name}: {exc}") from None
    for column in columns:
        if column in may_be_empty:
            continue
        lengths = pc.binary_length(table.column(column))
        if len(lengths) and pc.min(lengths).as_py() == 0:
            return _scan(inp, columns, may_be_empty)
    return table


def encode_column(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
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


def unique_tasks(inp: CsvInput, table: pa.Table) -> None:
    duplicate = _first_duplicate(encode_column(table.column("task"))[0])
    if duplicate is not None:
        first, repeat = (line_of_row(inp, row) for row in duplicate)
        task = table.column("task")[duplicate[1]].as_py()
        raise InputError(f"{inp.name}:{repeat}: task {task!r} listed again (first at line {first})")


def write_csv(sink: BinaryIO, header: Sequence[str], table: pa.Table) -> None:
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


def quiet_broken_pipe() -> NoReturn:
    """The reader of stdout went away (``crowd aggregate ... | head``): stop without noise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def open_out(path: str | None) -> BinaryIO:
    return click.open_file(path or "-", "wb")  # type: ignore[return-value]
