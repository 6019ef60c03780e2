"""``crowd serve`` and ``crowd worker``: the long-running processes."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

import click

from crowd.cli._errors import fail
from crowd.config import Settings
from crowd.embedded import Started, servers_for
from crowd.store import accounts, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database


def _default_web_workers() -> int:
    # One process per core, at least 2: gthread workers keep the keep-alive connections they
    # accept, and many small processes left a few of them queueing most clients (see
    # benchmarks/RESULTS.md, API load). Threads mostly wait on PostgreSQL, which frees the GIL.
    return max(2, min(os.cpu_count() or 1, 4))


F = TypeVar("F", bound=Callable[..., object])


def listen_options(command: F) -> F:
    """``--host`` and ``--port``, as `crowd serve` and `crowd demo` take them (check them with
    :func:`check_listen` before starting anything)."""
    command = click.option(
        "--port", default=8000, show_default=True, type=int, help="Port to listen on (1-65535)."
    )(command)
    return click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
    )(command)


def check_listen(host: str, port: int) -> None:
    """Exit with status 2 and one line on stderr unless ``host:port`` can be listened on.

    Called before any server starts: gunicorn, given a port it cannot bind, retries and logs
    for seconds, and a second `make run` would meanwhile find the first one's service
    healthy on that port and drive it instead of its own.
    """

    if not 1 <= port <= 65535:
        fail(f"--port {port} is not a port: give a number from 1 to 65535, e.g. --port 8000")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"cannot listen on --host {host}: {exc.strerror}; give an address such as 127.0.0.1")
    with socket.socket(family, kind, proto) as probe:
        # As gunicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except PermissionError:
            fail(f"port {port} is privileged (below 1024) and needs root: pass --port 8000 or "
                 "another port above 1023")  # fmt: skip
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"{host}:{port} is already in use (is another `crowd serve` or `make run` "
                     "serving there?): stop it, or pass another --port")  # fmt: skip
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; check --host and --port")


@dataclass(frozen=True)
class Servers:
    """The servers the service runs on, ready for it (see :func:`servers_ready`)."""

    settings: Settings  # both URLs filled in
    embedded: bool  # embedded servers were started (or attached to)
    token: str  # the requester token created, or "" when none was
    env: dict[str, str]  # this environment with both URLs: for the service's processes


@contextmanager
def servers_ready(token_name: str, *, first_start_only: bool) -> Iterator[Servers]:
    """What `crowd serve` and `crowd demo` do before they start the service.

    Uses CROWD_DATABASE_URL and CROWD_REDIS_URL, or starts (or attaches to) embedded servers
    under CROWD_DATA_DIR for those unset, stopped when the block ends; applies pending
    migrations; creates a requester token named ``token_name`` (with ``first_start_only``:
    only when the database has no account yet). Each step that did something is said on
    stderr, the token aside.
    """
    configured = Settings.from_env()
    with servers_for(configured) as (settings, started):
        assert settings.database_url and settings.redis_url
        for line in _servers_said(configured, started):
            click.echo(f"crowd: {line}", err=True)
        db = Database(settings.database_url, max_connections=1)
        try:
            applied = migrate.upgrade(db)
            if applied:
                click.echo(f"crowd: applied migrations {', '.join(applied)}", err=True)
            with db.transaction() as cur:
                wanted = not first_start_only or accounts.count(cur) == 0
                token = accounts.create(cur, Role.REQUESTER, token_name)[1] if wanted else ""
        finally:
            db.close()
        env = {
            **os.environ,
            "CROWD_DATABASE_URL": settings.database_url,
            "CROWD_REDIS_URL": settings.redis_url,
        }
        yield Servers(settings, bool(started), token, env)


def _servers_said(configured: Settings, started: list[Started]) -> list[str]:
    """Which PostgreSQL and Redis the service runs on, and where they came from."""
    said = [str(s) for s in started]
    if configured.database_url:
        said.insert(0, "PostgreSQL at CROWD_DATABASE_URL")
    if configured.redis_url:
        said.append("Redis at CROWD_REDIS_URL")
    return said


@click.command()
@listen_options
@click.option(
    "--workers",
    "web_workers",
    default=None,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes [default: one per core, 2 to 4].",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads per gunicorn worker.",
)
@click.option(
    "--with-worker/--no-worker",
    "with_worker",
    default=None,
    help="Also run an aggregation worker [default: only with embedded servers].",
)
def serve(
    host: str, port: int, web_workers: int | None, threads: int, with_worker: bool | None
) -> None:
    """Serve the HTTP API with gunicorn.

    Uses CROWD_DATABASE_URL and CROWD_REDIS_URL when set; otherwise starts embedded PostgreSQL
    and Redis under CROWD_DATA_DIR (default ./.crowd), keeps their data across restarts and
    stops them on exit, and runs an aggregation worker too, so this one command does
    everything. Applies pending migrations first. On the first start against an empty
    database it prints a requester token and the next steps.
    """
    check_listen(host, port)
    with servers_ready("first requester", first_start_only=True) as servers:
        if servers.token:
            _welcome(servers.token, host, port)
        env = {**servers.env, "CROWD_DB_POOL_SIZE": str(max(threads, 1) + 1)}
        command = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{host}:{port}",
            "--workers", str(web_workers or _default_web_workers()),
            "--threads", str(threads),
            "--worker-class", "gthread",
            "--graceful-timeout", "10",
            "--no-control-socket",  # several instances (tests, benchmarks) may run side by side
            "--access-logfile", "-" if os.environ.get("CROWD_ACCESS_LOG") else "/dev/null",
            "crowd.api:create_app()",
        ]  # fmt: skip
        commands = [command]
        if servers.embedded if with_worker is None else with_worker:
            commands.append([sys.executable, "-m", "crowd.cli", "worker"])
        raise SystemExit(_run_children(commands, env))


def _welcome(token: str, host: str, port: int) -> None:
    base = f"http://{host}:{port}/api/v1"
    click.echo(
        f"""
crowd: this is a new database. A requester token was created for you:

    {token}

Next steps:
    export CROWD_TOKEN={token}
    curl -s -X POST {base}/projects -H "Authorization: Bearer $CROWD_TOKEN" \\
         -H 'Content-Type: application/json' -d '{{"name":"demo","labels":["yes","no"],"overlap":3}}'
    curl -s -X POST {base}/workers -H "Authorization: Bearer $CROWD_TOKEN" \\
         -H 'Content-Type: application/json' -d '{{"name":"alice"}}'

A worker labels in the browser at http://{host}:{port}/label#token=<the worker's "token">;
the dashboard is http://{host}:{port}/dashboard#token={token}.
The README walks through the whole flow; GET /openapi.json describes every endpoint.
"""
    )


def _run_children(commands: list[list[str]], env: dict[str, str]) -> int:
    """Run ``commands`` until the first one exits, passing SIGINT/SIGTERM on to all; then
    stop the others. Returns the first command's exit status."""
    children = [subprocess.Popen(command, env=env) for command in commands]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = children[0].wait()
        for child in children[1:]:
            if child.poll() is None:
                child.terminate()
        for child in children[1:]:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@click.command()
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option(
    "--no-large-runs",
    is_flag=True,
    envvar="CROWD_WORKER_NO_LARGE_RUNS",
    help="Never take a large project's run (queue crowd-large), so that small projects keep "
    "this worker while large runs occupy the others; start at least one other worker without "
    "it. Also set by CROWD_WORKER_NO_LARGE_RUNS=1.",
)
def worker(burst: bool, no_large_runs: bool) -> None:
    """Run a background worker for aggregation jobs and webhook deliveries (RQ on Redis,
    with RQ's scheduler, which queues delivery retries when their backoff is over).

    Uses CROWD_REDIS_URL and CROWD_DATABASE_URL, or attaches to the embedded servers of a
    `crowd serve` running with the same CROWD_DATA_DIR. Queues are polled small projects'
    runs first, but a queue with work waiting is polled first once the worker has taken
    CROWD_FAIR_SKIPS (default 4) jobs from the others meanwhile (0: never).
    """
    from workers.bootstrap import run

    with servers_for(Settings.from_env()) as (settings, _started):
        run(settings, burst=burst, large_runs=not no_large_runs)


COMMANDS = [serve, worker]
