"""kill -9 of a gunicorn worker in the middle of an answer: a retry with the same
Idempotency-Key ends with exactly one stored answer, whether the kill landed before the
answer's commit or after it (the response lost)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import psycopg2
import pytest
import requests

from crowd.config import Settings
from crowd.store.db import Database


@pytest.fixture()
def gunicorn(settings: Settings, clean: None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real gunicorn (one gthread worker) serving the test database; yields (url, master)."""
    assert settings.database_url and settings.redis_url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(
        CROWD_DATABASE_URL=settings.database_url,
        CROWD_REDIS_URL=settings.redis_url,
        CROWD_DB_POOL_SIZE="5",
    )
    master = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--threads", "4", "--worker-class", "gthread", "--graceful-timeout", "2",
            "--no-control-socket",
            "crowd.api:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _healthy(url), "gunicorn to serve")
        yield url, master
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            for p in [*psutil.Process(master.pid).children(recursive=True), master]:
                p.kill()
            master.wait(10)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _scalar(database: Database, sql: str, *params: Any) -> Any:
    with database.transaction() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
        assert row is not None
        return row[0]


def _waiting_on_a_lock(database: Database) -> bool:
    return bool(
        _scalar(
            database,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


def _kill_worker_mid_request(
    url: str,
    master: subprocess.Popen[bytes],
    database: Database,
    lock_sql: str,
    lock_params: tuple[Any, ...],
    send: Callable[[], requests.Response],
) -> None:
    """Hold a row lock (``lock_sql``) so that ``send`` stalls on it inside the worker, kill -9
    the worker, check the client saw no response, then release the lock."""
    assert database.url
    blocker = psycopg2.connect(database.url)
    outcome: list[BaseException | requests.Response] = []
    try:
        with blocker.cursor() as cur:
            cur.execute(lock_sql, lock_params)

        def call() -> None:
            try:
                outcome.append(send())
            except requests.RequestException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        _wait_for(lambda: _waiting_on_a_lock(database), "the request to stall on the lock")
        (worker,) = psutil.Process(master.pid).children()
        os.kill(worker.pid, signal.SIGKILL)
        caller.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError), outcome
    finally:
        blocker.rollback()
        blocker.close()
    _wait_for(lambda: _healthy(url), "gunicorn to replace the killed worker")


def _setup(url: str, requester: str, tasks: int) -> tuple[int, str, str]:
    """A project (overlap 1, no gold) with ``tasks`` tasks; returns it and two worker tokens."""
    api, hdr = f"{url}/api/v1", {"Authorization": f"Bearer {requester}"}
    spec = {"name": "kill", "labels": ["a", "b"], "overlap": 1, "gold_rate": 0.0}
    pid = requests.post(f"{api}/projects", json=spec, headers=hdr, timeout=30).json()["id"]
    batch = {"tasks": [{"external_id": f"t{i}"} for i in range(tasks)]}
    assert requests.post(f"{api}/projects/{pid}/tasks", json=batch, headers=hdr, timeout=30).ok
    w1, w2 = (
        requests.post(f"{api}/workers", json={"name": n}, headers=hdr, timeout=30).json()["token"]
        for n in ("w1", "w2")
    )
    return pid, w1, w2


def _fetch(url: str, pid: int, worker: str) -> dict[str, Any]:
    r = requests.post(
        f"{url}/api/v1/projects/{pid}/assignments",
        headers={"Authorization": f"Bearer {worker}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _answered(database: Database) -> int:
    return int(_scalar(database, "SELECT count(*) FROM assignments WHERE status = 'answered'"))


def test_killed_before_the_commit_the_retry_stores_the_one_answer(
    gunicorn, requester, database
) -> None:
    url, master = gunicorn
    pid, w1, _ = _setup(url, requester, tasks=2)
    aid = _fetch(url, pid, w1)["assignment_id"]
    headers = {"Authorization": f"Bearer {w1}", "Idempotency-Key": "answer-1"}

    def send() -> requests.Response:
        return requests.post(
            f"{url}/api/v1/assignments/{aid}/answer", json={"label": "a"}, headers=headers,
            timeout=30,
        )  # fmt: skip

    _kill_worker_mid_request(
        url, master, database, "SELECT 1 FROM assignments WHERE id = %s FOR UPDATE", (aid,), send
    )
    assert _answered(database) == 0  # the killed attempt committed nothing
    retry = send()
    assert retry.status_code == 201 and retry.json()["status"] == "created"
    again = send()
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == retry.json()
    assert _answered(database) == 1
    assert _scalar(database, "SELECT answers FROM tasks WHERE id = ("
                   " SELECT task_id FROM assignments WHERE id = %s)", aid) == 1  # fmt: skip


def test_killed_after_the_commit_the_retry_gets_the_lost_response(
    gunicorn, requester, database
) -> None:
    """The answer commits, then the request stalls in the sweep that looks for a next task
    (a lock on the row of a task whose reservation ran out); the kill loses the response."""
    url, master = gunicorn
    pid, w1, w2 = _setup(url, requester, tasks=2)
    aid = _fetch(url, pid, w1)["assignment_id"]
    lapsed = _fetch(url, pid, w2)
    with database.transaction() as cur:
        cur.execute(
            "UPDATE assignments SET expires_at = now() - interval '1 s' WHERE id = %s",
            (lapsed["assignment_id"],),
        )
    headers = {"Authorization": f"Bearer {w1}", "Idempotency-Key": "answer-2"}

    def send() -> requests.Response:
        return requests.post(
            f"{url}/api/v1/assignments/{aid}/answer", json={"label": "b", "next": True},
            headers=headers, timeout=30,
        )  # fmt: skip

    _kill_worker_mid_request(
        url, master, database, "SELECT 1 FROM tasks WHERE id = %s FOR UPDATE",
        (lapsed["task"]["id"],), send,
    )  # fmt: skip
    assert _answered(database) == 1  # committed before the kill; the client saw no response
    retry = send()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.status_code == 201
    assert retry.json() == {"assignment_id": aid, "label": "b", "status": "created", "next": None}
    assert _answered(database) == 1
