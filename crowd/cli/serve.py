"""``crowd serve`` and ``crowd worker``: the long-running processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

import click

from crowd.config import Settings
from crowd.embedded import servers_for
from crowd.store import accounts, migrate
from crowd.store.accounts import Role
from crowd.store.db import Database


def _default_web_workers() -> int:
    # One process per core, at least 2: gthread workers keep the keep-alive connections they
    # accept, and many small processes left a few of them queueing most clients (see
    # benchmarks/RESULTS.md, API load). Threads mostly wait on PostgreSQL, which frees the GIL.
    return max(2, min(os.cpu_count() or 1, 4))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
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
    with servers_for(Settings.from_env()) as (settings, embedded):
        assert settings.database_url and settings.redis_url
        if embedded:
            click.echo(f"crowd: embedded PostgreSQL and Redis under {settings.data_dir}/", err=True)
        db = Database(settings.database_url, max_connections=1)
        applied = migrate.upgrade(db)
        if applied:
            click.echo(f"crowd: applied migrations {', '.join(applied)}", err=True)
        with db.transaction() as cur:
            first_start = accounts.count(cur) == 0
            token = (
                accounts.create(cur, Role.REQUESTER, "first requester")[1] if first_start else ""
            )
        db.close()
        if first_start:
            _welcome(token, host, port)
        env = {
            **os.environ,
            "CROWD_DATABASE_URL": settings.database_url,
            "CROWD_REDIS_URL": settings.redis_url,
            "CROWD_DB_POOL_SIZE": str(max(threads, 1) + 1),
        }
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
        if embedded if with_worker is None else with_worker:
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
def worker(burst: bool) -> None:
    """Run a background worker for aggregation jobs and webhook deliveries (RQ on Redis,
    with RQ's scheduler, which queues delivery retries when their backoff is over).

    Uses CROWD_REDIS_URL and CROWD_DATABASE_URL, or attaches to the embedded servers of a
    `crowd serve` running with the same CROWD_DATA_DIR.
    """
    from workers.bootstrap import run

    with servers_for(Settings.from_env()) as (settings, _embedded):
        run(settings, burst=burst)


COMMANDS = [serve, worker]
