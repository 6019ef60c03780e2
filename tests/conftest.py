"""Shared fixtures: real PostgreSQL and Redis, never mocks.

Servers come from CROWD_TEST_DATABASE_URL / CROWD_TEST_REDIS_URL when set (CI sets them to the
machine's servers, and a missing server then fails the run); otherwise embedded ones are
started for the session. Each session gets its own freshly migrated database, dropped at the end.

`make test` runs the suite on two pytest-xdist processes. Each is a session of its own: its own
database, its own Redis database number (or its own embedded servers), its own app.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import HTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errors
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from psycopg2.extensions import make_dsn, parse_dsn
from redis import Redis
from werkzeug.serving import make_server

from crowd.api import create_app
from crowd.background import scheduling
from crowd.config import Settings
from crowd.embedded import EmbeddedServers, NoRedis
from crowd.errors import Unavailable
from crowd.store import accounts, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _xdist_index() -> int:
    """This process's index among pytest-xdist's workers (gw0, gw1, ...); 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def _redis_db_of_this_process(url: str) -> str:
    """``url`` with a Redis database of this process's own: the given one for the first
    xdist worker, the one below it for the second, and so on. Each test empties its database
    (see :func:`clean`), so two processes must never share one."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{(db - _xdist_index()) % 16}"))


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """``(server_dsn, redis_url)`` of running servers.

    Embedded ones live in a folder of their own, not in pytest's temporary folders: pytest
    deletes old ones of those at the start of each session, maybe another's still running
    (and a Redis whose folder is gone could not stop by SIGTERM). They are stopped, and the
    folder removed, when the session ends: passed, failed, Ctrl-C, or SIGTERM, which ends the
    session as Ctrl-C does while they run.
    """
    dsn = os.environ.get("CROWD_TEST_DATABASE_URL")
    redis_url = os.environ.get("CROWD_TEST_REDIS_URL")
    if redis_url:
        redis_url = _redis_db_of_this_process(redis_url)
    if dsn and redis_url:
        yield dsn, redis_url
        return
    folder = Path(tempfile.mkdtemp(prefix="crowd-test-servers-"))
    embedded = EmbeddedServers(folder, persistent=False)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = embedded.start(postgres=not dsn, redis=not redis_url)
        yield dsn or started[0] or "", redis_url or started[1] or ""
    except NoRedis as exc:
        pytest.exit(f"{exc} (or set CROWD_TEST_REDIS_URL)", returncode=2)
    finally:
        embedded.stop()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(servers: tuple[str, str]) -> Iterator[str]:
    """A new, migrated database for this test session."""
    server_dsn = servers[0]
    name = f"crowd_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
        # Commits return before their WAL reaches the disk. This database is thrown away at
        # the end; the tests of what survives a crash run servers of their own
        # (tests/service/servers.py), which keep the default.
        cur.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = make_dsn(**{**parse_dsn(server_dsn), "dbname": name})
    migrate.upgrade(Database(url))
    yield url
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, servers: tuple[str, str]) -> Settings:
    """The environment's settings on the test servers. Webhooks refuse private addresses, as
    by default, whatever CROWD_WEBHOOK_ALLOW_PRIVATE says: tests that deliver to receivers on
    127.0.0.1 allow it in a settings fixture of their own."""
    return replace(
        Settings.from_env(),
        database_url=database_url,
        redis_url=servers[1],
        pool_size=40,
        webhook_allow_private=(),
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    assert settings.database_url
    db = Database(settings.database_url, max_connections=4)
    yield db
    db.close()


@pytest.fixture()
def clean(database: Database, settings: Settings) -> None:
    """Empty every table and the Redis database, so each test starts from nothing.

    TRUNCATE locks the tables one by one; a process a previous test left winding down (a
    server or worker finishing its last read) can hold one of them and ask for another, and
    PostgreSQL then breaks the deadlock by failing one side. If that side is ours, try again:
    the other has finished by then. The likeliest such reader, this process's own stale-marks
    thread (the session app marks a project 50 ms after its last answer), is flushed first."""
    scheduling.flush_all()
    for attempt in range(5):
        try:
            with database.transaction() as cur:
                cur.execute(
                    "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
                )
                (tables,) = cur.fetchone()
                cur.execute(f"TRUNCATE {tables} CASCADE")
            break
        except Unavailable as exc:
            if attempt == 4 or not isinstance(exc.__cause__, psycopg2.errors.DeadlockDetected):
                raise
            time.sleep(0.2 * (attempt + 1))
    assert settings.redis_url
    Redis.from_url(settings.redis_url).flushdb()


class ClosingClient(FlaskClient):
    """A test client that reads every response whole and closes it, as a WSGI server does
    (werkzeug's default leaves a streamed body unread and open: an export would then keep its
    slot for the rest of the session). Pass ``buffered=False`` to read a stream yourself, and
    close the response when done."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


@contextmanager
def app_for(settings: Settings) -> Iterator[Flask]:
    """Another API app, on ``settings``; its connections are closed when the block ends."""
    app = create_app(settings)
    app.test_client_class = ClosingClient
    try:
        yield app
    finally:
        app.extensions["crowd.db"].close()
        app.extensions["crowd.redis"].close()


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.test_client_class = ClosingClient
    return app


@pytest.fixture()
def client(app: Flask, clean: None) -> FlaskClient:
    return app.test_client()


def _token(database: Database, role: Role, name: str) -> str:
    with database.transaction() as cur:
        return accounts.create(cur, role, name)[1]


@pytest.fixture()
def requester(database: Database, clean: None) -> str:
    """A requester's bearer token."""
    return _token(database, Role.REQUESTER, "req")


@pytest.fixture()
def other_requester(database: Database, clean: None) -> str:
    return _token(database, Role.REQUESTER, "other")


@pytest.fixture()
def admin(database: Database, clean: None) -> str:
    return _token(database, Role.ADMIN, "root")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving_in_thread(server: HTTPServer) -> Iterator[int]:
    """Serve ``server`` from a daemon thread until the block ends; yields its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture()
def make_worker(client: FlaskClient) -> Callable[[str], str]:
    """Create a worker through the API on behalf of a requester; return the worker's token."""

    def make(requester_token: str, name: str = "w") -> str:
        response = client.post(
            "/api/v1/workers", json={"name": name}, headers=auth(requester_token)
        )
        assert response.status_code == 201, response.json
        token: str = response.json["token"]  # type: ignore[index]
        return token

    return make


@pytest.fixture()
def make_project(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    def make(token: str, **fields: Any) -> dict[str, Any]:
        spec = {"name": "p", "labels": ["a", "b", "c"], "overlap": 3, **fields}
        response = client.post("/api/v1/projects", json=spec, headers=auth(token))
        assert response.status_code == 201, response.json
        project: dict[str, Any] = response.json  # type: ignore[assignment]
        return project

    return make


@pytest.fixture()
def live_url(app: Flask, clean: None) -> Iterator[str]:
    """The app served over real HTTP by a threaded server, for concurrency tests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture()
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


#: A test whose call takes longer than this must say why in its docstring: the suite's time is a
#: guarded figure (the target is under 6 minutes on a 2-core machine), and a slow test with no reason
#: fails the session (see :func:`pytest_sessionfinish`).
SLOW_SECONDS = 20.0
_slow_without_reason: list[tuple[str, float]] = []


_NO_REASON = "slow test with no reason in its docstring"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Mark the report of a slow call whose test has no docstring. The mark travels with the
    report, so under xdist the controlling process (which has no test functions) sees it."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.duration > SLOW_SECONDS:
        function = getattr(item, "function", None)
        if not (function is not None and (function.__doc__ or "").strip()):
            report.user_properties.append((_NO_REASON, True))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if (_NO_REASON, True) in report.user_properties:
        _slow_without_reason.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _slow_without_reason:
        terminalreporter.section(f"tests over {SLOW_SECONDS:.0f} s with no reason given")
        for nodeid, seconds in _slow_without_reason:
            terminalreporter.write_line(
                f"{seconds:6.1f} s {nodeid}: say in its docstring why it needs this long"
            )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _slow_without_reason and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
