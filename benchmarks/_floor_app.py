"""The floor for benchmarks/api_load.py: the least a Flask + psycopg2 answer endpoint can do.

``POST /answer`` with ``{"label": "..."}`` parses the JSON body, then in ONE transaction
INSERTs a row into ``floor_answers`` and UPDATEs one of many ``floor_counters`` rows chosen
at random (so no single hot row), commits and returns a small JSON 201. No auth, no
validation beyond the JSON parse: any web app storing an answer pays at least this much.

Served by the same gunicorn command line as ``crowd serve`` (gthread workers, same
``--workers``/``--threads``, a pool of ``threads + 1`` connections per process)::

    FLOOR_DATABASE_URL=postgresql://... gunicorn --chdir benchmarks '_floor_app:create_app()'

:func:`setup` creates the two tables; the benchmark calls it before starting gunicorn.
"""

from __future__ import annotations

import json
import os
import random
import threading

import psycopg2
import psycopg2.pool
from flask import Flask, Response, jsonify, request

COUNTER_ROWS = 100_000


def setup(url: str, counter_rows: int = COUNTER_ROWS) -> None:
    """(Re)create ``floor_answers`` and ``floor_counters`` with ``counter_rows`` counters."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                DROP TABLE IF EXISTS floor_answers, floor_counters;
                CREATE TABLE floor_counters (id integer PRIMARY KEY, n integer NOT NULL);
                CREATE TABLE floor_answers (
                    id          bigserial PRIMARY KEY,
                    counter_id  integer NOT NULL,
                    label       text NOT NULL,
                    created_at  timestamptz NOT NULL DEFAULT now()
                );
                """
            )
            cur.execute(
                "INSERT INTO floor_counters (id, n) SELECT g, 0 FROM generate_series(1, %s) g",
                (counter_rows,),
            )
    finally:
        conn.close()


class _Pool:
    """A per-process connection pool, opened after gunicorn forks (like crowd's Database)."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> psycopg2.pool.ThreadedConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    # minconn = maxconn: psycopg2 closes a returned connection whenever the
                    # pool already holds minconn idle ones, so minconn=0 means a new
                    # PostgreSQL connection (a backend fork) for every transaction.
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        self.size, self.size, self.url
                    )
                    self._pid = os.getpid()
        return self._pool


def create_app() -> Flask:
    url = os.environ["FLOOR_DATABASE_URL"]
    pool = _Pool(url, int(os.environ.get("FLOOR_POOL_SIZE", "8")))
    counters = int(os.environ.get("FLOOR_COUNTER_ROWS", str(COUNTER_ROWS)))
    app = Flask(__name__)

    @app.post("/answer")
    def answer() -> tuple[Response, int]:
        label = str(json.loads(request.get_data(cache=False))["label"])
        counter_id = random.randint(1, counters)
        p = pool.get()
        conn = p.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO floor_answers (counter_id, label) VALUES (%s, %s) RETURNING id",
                    (counter_id, label),
                )
                row = cur.fetchone()
                cur.execute("UPDATE floor_counters SET n = n + 1 WHERE id = %s", (counter_id,))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            p.putconn(conn)
        assert row is not None
        return jsonify({"id": row[0], "label": label, "status": "created"}), 201

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app
