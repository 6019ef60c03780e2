"""Query results as numpy columns: ``COPY (query) TO STDOUT`` parsed by pyarrow.

At a million rows this is a fraction of the time row-by-row fetching takes.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from crowd.store.db import Cursor


def copy_columns(cur: Cursor, query: str, columns: dict[str, pa.DataType]) -> dict[str, np.ndarray]:
    """Run ``COPY (query) TO STDOUT`` (values already inlined by mogrify); return its columns
    as numpy arrays of the given arrow types."""
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
    if buffer.tell() == 0:
        return {name: np.zeros(0, dtype=kind.to_pandas_dtype()) for name, kind in columns.items()}
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=list(columns)),
        convert_options=pacsv.ConvertOptions(column_types=columns),
    )
    return {name: table.column(name).to_numpy() for name in columns}
