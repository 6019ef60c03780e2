"""The floor for benchmarks/api_load.py: the least a Flask + psycopg2 answer endpoint can do.

``POST /answer`` with ``{"label": "..."}`` parses the JSON body, then in ONE transaction
INSERTs a row into ``floor_answers`` and UPDATEs one of many ``floor_counters`` rows chosen
at random (so no single hot row), commits and returns a small JSON 201. No auth, no
validation beyond the JSON parse: any web app storing an answer pays at least this much.

Served by the same gunicorn command line as ``crowd serve`` (gthread workers, same
``--workers``/``--threads``); each thread keeps one connection::

    FLOOR_DATABASE_URL=postgresql://... gunicorn --chdir benchmarks '_floor_app:create_app()'

:func:`setup` creates the two tables; the benchmark calls it before starting gunicorn.
"""

from __future__ import annotations

import json
import os
import random
import threading

import psycopg2
import psycopg2.extensions
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


class _Connections(threading.local):
    """One connection per gunicorn thread, opened on its first request and kept.

    The least a threaded app can do: no pool bookkeeping, no reconnects.
    """

    conn: psycopg2.extensions.connection | None = None


def create_app() -> Flask:
    url = os.environ["FLOOR_DATABASE_URL"]
    counters = int(os.environ.get("FLOOR_COUNTER_ROWS", str(COUNTER_ROWS)))
    local = _Connections()
    app = Flask(__name__)

    @app.post("/answer")
    def answer() -> tuple[Response, int]:
        label = str(json.loads(request.get_data(cache=False))["label"])
        counter_id = random.randint(1, counters)
        if local.conn is None or local.conn.closed:
            local.conn = psycopg2.connect(url)
        conn = local.conn
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
        assert row is not None
        return jsonify({"id": row[0], "label": label, "status": "created"}), 201

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app
