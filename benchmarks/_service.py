"""What the service benchmarks share: a throw-away database, crowd processes with logs, and
an HTTP client."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import requests
from psycopg2.extensions import make_dsn, parse_dsn

from crowd.client import RequesterClient


@contextlib.contextmanager
def bench_database(server_url: str, keep: bool, prefix: str = "crowd_bench") -> Iterator[str]:
    """A new empty database ``<prefix>_<hex>`` on ``server_url``, dropped afterwards unless
    ``keep``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_dsn(**{**parse_dsn(server_url), "dbname": name})
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def add_server_args(parser: argparse.ArgumentParser, redis_db: int) -> None:
    """The options every service benchmark takes: the servers, the crowd command, --keep-db."""
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default=f"redis://127.0.0.1:6379/{redis_db}")
    parser.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    parser.add_argument("--keep-db", action="store_true")


def crowd_bin(given: str | None) -> str:
    """The `crowd` command: ``given``, else the one beside this Python, else on PATH."""
    if given:
        return given
    beside = Path(sys.executable).parent / "crowd"
    found = str(beside) if beside.exists() else shutil.which("crowd")
    if not found:
        raise SystemExit("error: no `crowd` command; install the project: pip install -e '.[dev]'")
    return found


@dataclass
class Proc:
    """A process started by :func:`spawn`, in a session of its own, with its output in ``log``."""

    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-30:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def spawn(command: list[str], env: dict[str, str], log: Path) -> Proc:
    """Start ``command`` with its output (stdout and stderr) in ``log``."""
    handle = log.open("wb")
    proc = subprocess.Popen(
        command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    return Proc(proc, log)


def wait_healthy(server: Proc, base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"error: server exited with {server.proc.returncode}\n{server.tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"error: server not healthy after {timeout:.0f} s\n{server.tail()}")


def spawn_healthy(
    command: list[str], env: dict[str, str], log: Path, base: str, timeout: float = 60.0
) -> Proc:
    """:func:`spawn` a server, then wait until ``base``/healthz answers 200 (stopping the
    server if it does not)."""
    server = spawn(command, env, log)
    try:
        wait_healthy(server, base, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def service_env(database_url: str, redis_url: str, logs: Path) -> dict[str, str]:
    """The environment for crowd processes on the benchmark's servers."""
    return {
        **os.environ,
        "CROWD_DATABASE_URL": database_url,
        "CROWD_REDIS_URL": redis_url,
        "CROWD_DATA_DIR": str(logs / "data"),
    }


def requester_token(crowd_cmd: str, env: dict[str, str], name: str) -> str:
    """A new requester token from ``crowd token create`` (which also migrates the database)."""
    made = subprocess.run(
        [crowd_cmd, "token", "create", "--role", "requester", "--name", name],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"error: crowd token create failed:\n{made.stderr}")
    return made.stdout.strip().splitlines()[-1]


@dataclass
class Services:
    """``crowd serve --no-worker`` and ``crowd worker`` processes, from :func:`start_services`."""

    crowd_cmd: str
    env: dict[str, str]
    logs: Path
    base: str  # http://host:port
    requester: str  # a requester token
    serve: Proc
    workers: list[Proc] = field(default_factory=list)

    def add_workers(self, n: int) -> None:
        """Start ``n`` more ``crowd worker`` processes (logs ``worker<i>.log``)."""
        for i in range(len(self.workers), len(self.workers) + n):
            self.workers.append(
                spawn([self.crowd_cmd, "worker"], self.env, self.logs / f"worker{i}.log")
            )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.serve.stop()


def start_services(
    crowd_cmd: str, database_url: str, redis_url: str, port: int, logs: Path, *serve_args: str,
    name: str = "bench", workers: int = 1, host: str = "127.0.0.1",
) -> Services:  # fmt: skip
    """A requester token (``name``; this also migrates the database), then ``crowd serve
    --no-worker --host host --port port *serve_args`` (log ``serve.log``) and ``workers``
    ``crowd worker`` processes, on the given servers, logging under ``logs``; returns once the
    server is healthy."""
    env = service_env(database_url, redis_url, logs)
    requester = requester_token(crowd_cmd, env, name)
    base = f"http://{host}:{port}"
    serve = [crowd_cmd, "serve", "--no-worker", "--host", host, "--port", str(port), *serve_args]
    services = Services(
        crowd_cmd, env, logs, base, requester, spawn(serve, env, logs / "serve.log")
    )
    try:
        services.add_workers(workers)  # while the server starts: a worker is slow to import
        wait_healthy(services.serve, base)
    except BaseException:
        services.stop()
        raise
    return services


class Api(RequesterClient):
    """:class:`crowd.client.RequesterClient` with one token (a requester's or a worker's),
    plus :meth:`call` for the raw calls a benchmark makes, and ``requests``: how many HTTP
    responses it has had, every call and page included."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(base, token, timeout=120)
        self.requests = 0
        self.session.hooks["response"].append(self._count)

    @property
    def session(self) -> requests.Session:
        return self.http.session

    def _count(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self.requests += 1

    def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)
    ) -> requests.Response:
        """Send ``body`` as JSON to ``path`` (under the base URL); raise unless the status is
        in ``ok`` (a 4xx raises :class:`crowd.client.ApiError`)."""
        r = self.http.call(method, path, json=body)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
        return r


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (idle, iowait and steal left out)."""
    t = psutil.cpu_times()
    idle = t.idle + sum(getattr(t, k, 0.0) for k in ("iowait", "steal", "guest", "guest_nice"))
    return float(sum(t) - idle)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
