"""Connections and transactions.

One :class:`Database` per process holds a thread-safe psycopg2 pool. Store functions take a
cursor and never commit: the caller decides the transaction with :meth:`Database.transaction`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from crowd.errors import Unavailable

Cursor = psycopg2.extensions.cursor

# Errors that mean "the server is unreachable right now", as opposed to a bug in our SQL.
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# How long a request waits for a free pooled connection before answering 503.
_WAIT_FOR_CONNECTION = 10.0


class _Connection(psycopg2.extensions.connection):
    """A pooled connection that remembers the statements it has PREPAREd, and ``session``:
    values its callers asked the server once because they cannot change while the session
    is open (e.g. :func:`crowd.store.answer_state.database_folder`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()
        self.session: dict[str, Any] = {}


def execute_prepared(cur: Cursor, name: str, sql: str, params: Sequence[Any]) -> None:
    """Run ``sql`` (with ``$1``-style parameters) as the prepared statement ``name``.

    PREPAREd once per connection (PREPARE is not undone by a rollback), then EXECUTEd: the
    server skips parsing and, after a few runs, planning. Connections not from a
    :class:`Database` pool run ``sql`` through a one-off PREPARE as well.
    """
    conn = cur.connection
    prepared: set[str] | None = getattr(conn, "prepared", None)
    if prepared is None or name not in prepared:
        cur.execute(f"PREPARE {name} AS {sql}")
        if prepared is not None:
            prepared.add(name)
        else:
            try:
                cur.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)
            finally:
                cur.execute(f"DEALLOCATE {name}")
            return
    cur.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)


class Database:
    """A lazily opened, fork-safe connection pool for one PostgreSQL URL."""

    def __init__(self, url: str, *, max_connections: int = 8) -> None:
        self.url = url
        self.max_connections = max_connections
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)  # remade with the pool

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        # gunicorn forks after create_app(): a pool inherited from the parent must not be shared.
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    pool = psycopg2.pool.ThreadedConnectionPool(
                        0, self.max_connections, self.url, connection_factory=_Connection
                    )
                    # psycopg2 closes a returned connection unless fewer than `minconn` are
                    # idle. Raising minconn after construction keeps every connection for reuse
                    # while still opening them lazily.
                    pool.minconn = self.max_connections
                    self._pool = pool
                    self._slots = threading.BoundedSemaphore(self.max_connections)
                    self._pid = os.getpid()
        return self._pool

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """Yield a cursor inside one transaction: commit on success, roll back on any error.

        When every pooled connection is in use it waits up to 10 s for one. A lost connection,
        or no free one in time, raises :class:`~crowd.errors.Unavailable` (HTTP 503); a broken
        connection is dropped from the pool, so the next request reconnects by itself.
        """
        pool = self._get_pool()
        slots = self._slots
        # psycopg2's pool fails at once when every connection is out; wait for one instead.
        if not slots.acquire(timeout=_WAIT_FOR_CONNECTION):
            raise Unavailable(
                f"all {self.max_connections} database connections of this process are busy"
            )
        try:
            conn = pool.getconn()
        except (*_CONNECTION_ERRORS, psycopg2.pool.PoolError) as exc:
            slots.release()
            raise Unavailable(f"database unavailable: {_first_line(exc)}") from exc
        broken = False
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except _CONNECTION_ERRORS as exc:
            broken = True
            raise Unavailable(f"database unavailable: {_first_line(exc)}") from exc
        except BaseException:
            try:
                conn.rollback()
            except _CONNECTION_ERRORS:
                broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or bool(conn.closed))
            slots.release()

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.closeall()
        self._pool = None


def one(cur: Cursor) -> tuple[Any, ...]:
    """The single row a statement must return (INSERT ... RETURNING, aggregate SELECT)."""
    row = cur.fetchone()
    if row is None:
        raise LookupError("statement returned no row")
    return tuple(row)


def id_array(ids: Sequence[int]) -> str:
    """An array literal for ``%s::bigint[]``: one string constant parses far faster than
    psycopg2's ``ARRAY[...]`` of 100,000s of elements."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
