"""An export holds a database connection and a snapshot while its client downloads, so it is
bounded: a few at once per API process (429 beyond), and PostgreSQL ends one whose client
stalls. A stalled client is a streaming response the server has begun and not finished
sending (the Flask test client with ``buffered=False``, read a chunk at a time)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from crowd.api import create_app
from crowd.config import Settings
from crowd.errors import Unavailable
from crowd.store.db import Database
from tests.aggregation.test_live import post_tasks
from tests.conftest import ClosingClient, auth
from tests.service.servers import wait_for


def _client(settings: Settings, **changes: Any) -> FlaskClient:
    app = create_app(replace(settings, **changes))
    app.test_client_class = ClosingClient
    return app.test_client()


def _project(client: FlaskClient, make_project: Any, requester: str) -> int:
    pid = int(make_project(requester, labels=["neg", "pos"])["id"])
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(30)])
    return pid


def _begin(
    client: FlaskClient, requester: str, pid: int
) -> tuple[TestResponse, bytes, Iterator[bytes]]:
    """Start an export and read its first chunk (its transaction is then open), no more;
    returns the response, that chunk and the rest, unread."""
    response = client.get(f"/api/v1/projects/{pid}/export", headers=auth(requester), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    first = next(chunks)
    assert first.startswith(b'{"task_id"')
    return response, first, chunks


def _exports_open(database: Database) -> int:
    """Sessions of this database holding an export's cursor, waiting on their client."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle in transaction' AND query LIKE '%%crowd_export_%%'"
        )
        return int(cur.fetchone()[0])


def test_exports_beyond_the_per_process_limit_get_429_until_one_ends(
    client, requester, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester)
    api = _client(settings, export_concurrency=2)
    first, _, _ = _begin(api, requester, pid)
    second, second_head, second_rest = _begin(api, requester, pid)
    assert _exports_open(database) == 2

    refused = api.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    error = refused.json["error"]  # type: ignore[index]
    assert error["code"] == "too_many_exports"
    assert "CROWD_EXPORT_CONCURRENCY" in error["message"] and "retry after" in error["message"]
    assert _exports_open(database) == 2  # the refused one took no connection

    first.close()  # its client went away: the slot and the connection are given back
    assert _exports_open(database) == 1
    third = api.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
    assert third.status_code == 200 and len(third.get_data(as_text=True).splitlines()) == 30

    # The export that waited all along is whole.
    lines = (second_head + b"".join(second_rest)).decode().splitlines()
    second.close()
    assert [json.loads(line)["external_id"] for line in lines] == [f"t{i}" for i in range(30)]
    assert _exports_open(database) == 0
    assert api.get(f"/api/v1/projects/{pid}/export", headers=auth(requester)).status_code == 200


def test_postgresql_ends_an_export_whose_client_stalls_and_its_slot_is_freed(
    client, requester, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester)
    api = _client(settings, export_concurrency=1, export_idle_timeout=1)
    stalled, _, rest = _begin(api, requester, pid)
    assert _exports_open(database) == 1

    # The client reads nothing: after 1 s PostgreSQL ends the session, and its snapshot.
    wait_for(lambda: _exports_open(database) == 0, 30, "the stalled export to be ended")
    with pytest.raises(Unavailable):  # the download stops short when the client reads again
        b"".join(rest)
    stalled.close()

    again = api.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
    assert again.status_code == 200 and len(again.get_data(as_text=True).splitlines()) == 30
