"""The connection pool: connections are reused, and broken ones are replaced."""

from __future__ import annotations

import psycopg2
import pytest

from crowd.errors import Unavailable
from crowd.store.db import Database


def _backend_pid(db: Database) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def test_consecutive_transactions_reuse_one_connection(database_url: str) -> None:
    db = Database(database_url, max_connections=4)
    try:
        assert _backend_pid(db) == _backend_pid(db)
    finally:
        db.close()


def test_a_killed_connection_is_a_503_once_and_then_replaced(database_url: str) -> None:
    db = Database(database_url, max_connections=1)
    try:
        victim = _backend_pid(db)
        killer = psycopg2.connect(database_url)
        killer.autocommit = True
        with killer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (victim,))
        killer.close()
        with pytest.raises(Unavailable), db.transaction() as cur:
            cur.execute("SELECT 1")
        assert _backend_pid(db) != victim
    finally:
        db.close()


def test_an_error_rolls_back_and_keeps_the_connection_usable(database_url: str) -> None:
    db = Database(database_url, max_connections=1)
    try:
        with pytest.raises(psycopg2.errors.UndefinedTable), db.transaction() as cur:
            cur.execute("SELECT * FROM no_such_table")
        assert _backend_pid(db) > 0
    finally:
        db.close()


def test_a_request_waits_for_a_busy_pool_instead_of_failing(database_url: str) -> None:
    import threading
    import time

    db = Database(database_url, max_connections=1)
    held = threading.Event()

    def hold() -> None:
        with db.transaction() as cur:
            cur.execute("SELECT 1")
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5)
        started = time.monotonic()
        assert _backend_pid(db) > 0  # waited for the one connection, then used it
        assert time.monotonic() - started >= 0.3
    finally:
        holder.join()
        db.close()
