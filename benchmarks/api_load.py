"""API load: closed-loop simulated workers against `crowd serve`, and the floor beside it.

    python benchmarks/api_load.py [--tasks 100000 --concurrency 64 --seconds 30]
                                  [--loop next|fetch-answer] [--rounds 3 --client-procs 2]
                                  [--web-workers N --threads T] [--profile] [--explain]
                                  [--idempotency-keys]

What happens, in one run and against the machine's PostgreSQL and Redis:

1. A fresh database ``crowd_bench_<hex>`` is created (and dropped at the end; ``--keep-db``
   keeps it). ``crowd token create --role requester`` makes the requester token (it migrates
   the database first), then ``crowd serve`` starts gunicorn with its own default processes
   and threads (``--workers``/``--threads`` are passed only when ``--web-workers``/``--threads``
   are given); the shape it chose is read off the gunicorn command line and printed.
2. Over HTTP: one project (3 labels, overlap 3), ``--tasks`` tasks in batches of
   ``--batch``, and ``--concurrency`` workers (POST /api/v1/workers, one token each).
3. ``--concurrency`` simulated workers run closed loops for ``--warmup`` seconds unrecorded,
   then ``--seconds / --rounds`` recorded. ``--loop next`` (default): fetch one task, then
   answer each with ``{"label": ..., "next": true}``, which stores the answer and reserves the
   next task in one request; fetch again only when ``next`` is null. ``--loop fetch-answer``:
   fetch, then answer, two requests per answer. Latencies are reported per request type used
   (fetch, answer, answer+next), and per answer (the cycle: the requests one answer took).
   Crowd and the floor alternate ``--rounds`` times, so that load from other processes falls
   on both alike. A cycle or request counts in the window when it completes inside it.
4. The floor: ``benchmarks/_floor_app.py`` (Flask + psycopg2, one INSERT and one UPDATE of a
   random counter row in one transaction) under the same gunicorn command line and worker and
   thread counts, driven by the same client at the same concurrency.
5. Invariants are checked in PostgreSQL and printed; a violation makes the exit status 1.

The client is kept cheap so that it does not starve a 2-core server: ``--client-procs``
processes (default 2), each an asyncio loop holding one keep-alive connection per simulated
worker and speaking just enough HTTP/1.1 (prebuilt request bytes, Content-Length framing).
Its CPU per request is measured and printed beside the server's (gunicorn process tree and
the benchmark database's PostgreSQL backends, from /proc via psutil). ``--profile`` adds a
py-spy profile of the gunicorn workers and a cProfile of one client process; profiled runs
are slower, so their figures are for finding where time goes, not for RESULTS.md.

Goals (issue 2): at 64 concurrent workers, crowd answers/s >= 0.6 x floor requests/s; and
each crowd request type's p99 <= 3 x its median (no lock convoys).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _floor_app
from _service import (
    bench_database,
    crowd_bin,
    loadavg,
    machine_cpu,
    requester_token,
    service_env,
    spawn_healthy,
)

HERE = Path(__file__).resolve().parent
GOAL_THROUGHPUT_RATIO = 0.6
GOAL_TAIL_RATIO = 3.0
# Crowd request types, in report order. The tail goal is judged for each type that is at least
# this share of crowd's requests: in the default loop a fetch only starts a worker's chain (or
# restarts it when no task was left), a handful of requests mostly in the warm-up.
REQUEST_TYPES = ("fetch", "answer", "answer+next")
TAIL_JUDGED_SHARE = 0.05
LABELS = ("cat", "dog", "bird")
OVERLAP = 3


# --------------------------------------------------------------------------------------------
# The client: asyncio, one keep-alive connection per simulated worker, minimal HTTP/1.1.


class HttpError(Exception):
    pass


class KeepAlive:
    """One persistent HTTP/1.1 connection that POSTs prebuilt requests.

    Only what gunicorn + Flask send back is understood: Content-Length framed bodies and 204s.
    A keep-alive connection the server closed while idle is reopened and the request resent
    (counted in ``reconnects``; the server had not read it, so nothing ran twice).
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host = host
        self.port = port
        self.head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    def request(self, path: str, body: bytes, key: str | None = None) -> bytes:
        """The bytes of a POST; with ``key``, an ``Idempotency-Key`` header too."""
        keyed = b"Idempotency-Key: " + key.encode() + b"\r\n" if key else b""
        return (
            b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head + keyed
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip

    async def send(self, message: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(message)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                self.close()
                if partial or attempt:
                    raise HttpError(f"connection lost mid-response: {exc!r}") from None
                self.reconnects += 1
                continue
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.index(b"\r\n", at + 2)
                body = await self.reader.readexactly(int(lower[at + 17 : end]))
            elif status == 204 or status == 304:
                body = b""
            else:
                raise HttpError(f"response without Content-Length: {head[:200]!r}")
            if b"\r\nconnection: close" in lower:
                self.close()
            return status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class Plan:
    """What one client process does; picklable."""

    mode: str  # "crowd" or "floor" (POST /answer)
    loop: str  # crowd's loop: "next" (answer with "next": true) or "fetch-answer"
    host: str
    port: int
    project_id: int
    tokens: tuple[str, ...]
    start: float  # time.monotonic() values, shared by every process on this machine
    measure_start: float
    measure_end: float
    profile: bool = False
    keys: bool = False  # send an Idempotency-Key (a new uuid4) with every crowd request


@dataclass
class Samples:
    """What one client process saw. Latencies in seconds, for events completing in the window."""

    cycle: list[float] = field(default_factory=list)  # per answer: the requests it took
    # per request type ("fetch", "answer", "answer+next", "floor"): each request's latency
    latency: collections.defaultdict[str, list[float]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    created_total: int = 0  # answers acknowledged 201, whole run (warm-up included)
    repeated_total: int = 0  # answers acknowledged 200 "repeated" (a resent request)
    empty_fetches: int = 0  # 204: no task available
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    reconnects: int = 0
    profile: str = ""

    def merge(self, other: Samples) -> None:
        self.cycle += other.cycle
        for kind, values in other.latency.items():
            self.latency[kind] += values
        self.created_total += other.created_total
        self.repeated_total += other.repeated_total
        self.empty_fetches += other.empty_fetches
        self.errors.update(other.errors)
        self.reconnects += other.reconnects
        self.profile = self.profile or other.profile


def _why(status: int, body: bytes) -> str:
    """A short error key: the status and crowd's error message, if the body has one."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        return f"{status} {json.loads(body)['error']['message'][:70]}"
    return str(status)


def _answered(out: Samples, status: int, body: bytes) -> dict[str, Any] | None:
    """Count an answer response; its JSON when the answer is stored (201, or 200 repeated)."""
    if status in (200, 201):
        reply = json.loads(body)
        if status == 201:
            out.created_total += 1
            return dict(reply)
        if reply.get("status") == "repeated":
            out.repeated_total += 1
            return dict(reply)
    out.errors[f"answer {_why(status, body)}"] += 1
    return None


def _key(plan: Plan) -> str | None:
    return uuid.uuid4().hex if plan.keys else None


def _keyed(http: KeepAlive, plan: Plan, prebuilt: bytes, path: str) -> bytes:
    """``prebuilt`` (an empty-body POST to ``path``), with a new Idempotency-Key if asked."""
    return http.request(path, b"", _key(plan)) if plan.keys else prebuilt


async def _crowd_worker(plan: Plan, token: str, out: Samples) -> None:
    """The two-request loop (``--loop fetch-answer``): fetch a task, answer it, repeat."""
    http = KeepAlive(plan.host, plan.port, token)
    fetch_path = f"/api/v1/projects/{plan.project_id}/assignments"
    fetch = http.request(fetch_path, b"")
    bodies = [json.dumps({"label": label}).encode() for label in LABELS]
    rng = random.Random(token)
    clock = time.monotonic
    lo, hi = plan.measure_start, plan.measure_end
    try:
        while clock() < hi:
            t0 = clock()
            status, body = await http.send(_keyed(http, plan, fetch, fetch_path))
            t1 = clock()
            if status == 204:
                out.empty_fetches += 1
                await asyncio.sleep(0.05)
                continue
            if status != 201:
                out.errors[f"fetch {_why(status, body)}"] += 1
                continue
            assignment_id = json.loads(body)["assignment_id"]
            answer = http.request(
                f"/api/v1/assignments/{assignment_id}/answer", rng.choice(bodies), _key(plan)
            )
            status, body = await http.send(answer)
            t2 = clock()
            if lo <= t1 < hi:
                out.latency["fetch"].append(t1 - t0)
            if _answered(out, status, body) is None:
                continue
            if lo <= t2 < hi:
                out.latency["answer"].append(t2 - t1)
                out.cycle.append(t2 - t0)
    finally:
        out.reconnects += http.reconnects
        http.close()


async def _crowd_next_worker(plan: Plan, token: str, out: Samples) -> None:
    """The default loop: fetch once, then answer with ``"next": true``, one request per answer.

    Fetches again only when an answer's ``next`` is null (or the answer failed); a fetch's
    latency is added to the cycle of the answer it led to.
    """
    http = KeepAlive(plan.host, plan.port, token)
    fetch_path = f"/api/v1/projects/{plan.project_id}/assignments"
    fetch = http.request(fetch_path, b"")
    bodies = [json.dumps({"label": label, "next": True}).encode() for label in LABELS]
    rng = random.Random(token)
    clock = time.monotonic
    lo, hi = plan.measure_start, plan.measure_end
    assignment_id: int | None = None
    fetching = 0.0  # seconds spent fetching the assignment held now
    try:
        while clock() < hi:
            if assignment_id is None:
                t0 = clock()
                status, body = await http.send(_keyed(http, plan, fetch, fetch_path))
                t1 = clock()
                if status == 204:
                    out.empty_fetches += 1
                    await asyncio.sleep(0.05)
                    continue
                if status != 201:
                    out.errors[f"fetch {_why(status, body)}"] += 1
                    continue
                assignment_id = int(json.loads(body)["assignment_id"])
                fetching = t1 - t0
                if lo <= t1 < hi:
                    out.latency["fetch"].append(fetching)
            answer = http.request(
                f"/api/v1/assignments/{assignment_id}/answer", rng.choice(bodies), _key(plan)
            )
            t1 = clock()
            status, body = await http.send(answer)
            t2 = clock()
            if lo <= t2 < hi:
                out.latency["answer+next"].append(t2 - t1)
            reply = _answered(out, status, body)
            assignment_id = None
            if reply is None:
                continue
            following = reply.get("next")
            if following is not None:
                assignment_id = int(following["assignment_id"])
            if lo <= t2 < hi:
                out.cycle.append(t2 - t1 + fetching)
            fetching = 0.0
    finally:
        out.reconnects += http.reconnects
        http.close()


async def _floor_worker(plan: Plan, token: str, out: Samples) -> None:
    http = KeepAlive(plan.host, plan.port, token)
    rng = random.Random(token)
    messages = [http.request("/answer", json.dumps({"label": label}).encode()) for label in LABELS]
    clock = time.monotonic
    lo, hi = plan.measure_start, plan.measure_end
    try:
        while clock() < hi:
            t0 = clock()
            status, _ = await http.send(rng.choice(messages))
            t1 = clock()
            if status != 201:
                out.errors[f"floor {status}"] += 1
                continue
            out.created_total += 1
            if lo <= t1 < hi:
                out.latency["floor"].append(t1 - t0)
                out.cycle.append(t1 - t0)
    finally:
        out.reconnects += http.reconnects
        http.close()


async def _client(plan: Plan) -> Samples:
    out = Samples()
    await asyncio.sleep(max(0.0, plan.start - time.monotonic()))
    if plan.mode == "floor":
        run = _floor_worker
    else:
        run = _crowd_next_worker if plan.loop == "next" else _crowd_worker
    results = await asyncio.gather(
        *(run(plan, t, out) for t in plan.tokens), return_exceptions=True
    )
    for r in results:
        if isinstance(r, BaseException):
            out.errors[f"client {type(r).__name__}: {str(r)[:80]}"] += 1
    return out


def _client_main(plan: Plan, pipe: Connection) -> None:
    profiler = cProfile.Profile() if plan.profile else None
    if profiler is not None:
        profiler.enable()
    samples = asyncio.run(_client(plan))
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
        samples.profile = text.getvalue()
    pipe.send(samples)
    pipe.close()


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc.


def _cpu(pids: Sequence[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            seconds[pid] = t.user + t.system
    return seconds


def _tree(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [root.pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.Error:
        return []


def _postmaster(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            return psutil.Process(int(cur.fetchone()[0])).ppid()  # type: ignore[index]
    finally:
        conn.close()


def _pg_cpu(postmaster: int) -> float:
    """CPU seconds of the whole PostgreSQL server so far, exited backends included.

    Whole server: short-lived backends (a connection per transaction) cannot be told apart by
    database once gone, so other databases' work on this server counts too.
    """
    try:
        root = psutil.Process(postmaster)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        return total + sum(_cpu([c.pid for c in root.children()]).values())
    except psutil.Error:
        return 0.0


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[p] - before.get(p, 0.0) for p in after)


@dataclass
class Load:
    """A load phase's samples and the CPU seconds each side used during the recorded window."""

    mode: str
    loop: str
    seconds: float
    samples: Samples
    server_cpu: float
    postgres_cpu: float
    client_cpu: float
    machine_cpu: float  # every process on the machine, ours included
    connections_per_worker: list[int]
    pyspy: str = ""

    def rate(self) -> float:
        return len(self.samples.cycle) / self.seconds

    def requests(self) -> int:
        return sum(len(v) for v in self.samples.latency.values())

    def other_cpu(self) -> float:
        return max(0.0, self.machine_cpu - self.server_cpu - self.postgres_cpu - self.client_cpu)

    def merge(self, other: Load) -> None:
        self.seconds += other.seconds
        self.samples.merge(other.samples)
        self.server_cpu += other.server_cpu
        self.postgres_cpu += other.postgres_cpu
        self.client_cpu += other.client_cpu
        self.machine_cpu += other.machine_cpu
        self.pyspy = self.pyspy or other.pyspy


def _connections(server_pid: int, port: int) -> list[int]:
    """Established client connections held by each gunicorn worker (load balance check)."""
    counts = []
    for pid in _tree(server_pid):
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            n = sum(
                1
                for c in p.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
            )
            if n:
                counts.append(n)
    return sorted(counts, reverse=True)


@dataclass(frozen=True)
class Target:
    """Where a load phase goes and how the client is shaped."""

    mode: str
    loop: str
    host: str
    port: int
    project_id: int
    server_pid: int
    postmaster: int
    tokens: tuple[str, ...]
    client_procs: int
    keys: bool = False


def run_load(target: Target, warmup: float, seconds: float, profile: bool) -> Load:
    start = time.monotonic() + 1.0
    measure_start = start + warmup
    measure_end = measure_start + seconds
    ctx = mp.get_context("fork")
    procs = []
    pipes = []
    tokens = target.tokens
    groups = [tokens[i :: target.client_procs] for i in range(target.client_procs)]
    for i, group in enumerate(g for g in groups if g):
        plan = Plan(
            target.mode, target.loop, target.host, target.port, target.project_id, group,
            start, measure_start, measure_end, profile=profile and i == 0, keys=target.keys,
        )  # fmt: skip
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_main, args=(plan, sender), daemon=True)
        proc.start()
        sender.close()
        procs.append(proc)
        pipes.append(receiver)
    client_pids = [p.pid for p in procs if p.pid is not None]

    time.sleep(max(0.0, measure_start - time.monotonic()))
    server = _tree(target.server_pid)
    before = (_cpu(server), _pg_cpu(target.postmaster), _cpu(client_pids), machine_cpu())
    spy = _start_pyspy(target.server_pid, seconds) if profile else None
    time.sleep(max(0.0, measure_start + seconds / 2 - time.monotonic()))
    connections = _connections(target.server_pid, target.port)
    time.sleep(max(0.0, measure_end - time.monotonic()))
    after = (_cpu(server), _pg_cpu(target.postmaster), _cpu(client_pids), machine_cpu())

    total = Samples()
    for proc, pipe in zip(procs, pipes, strict=True):
        if not pipe.poll(120):
            raise SystemExit(f"error: client process {proc.pid} sent no results within 120 s")
        total.merge(pipe.recv())
        proc.join(10)
    return Load(
        mode=target.mode,
        loop=target.loop,
        seconds=seconds,
        samples=total,
        server_cpu=_used(before[0], after[0]),
        postgres_cpu=after[1] - before[1],
        client_cpu=_used(before[2], after[2]),
        machine_cpu=after[3] - before[3],
        connections_per_worker=connections,
        pyspy=_finish_pyspy(spy),
    )


# --------------------------------------------------------------------------------------------
# py-spy: where the gunicorn workers spend CPU (--profile).


def _start_pyspy(server_pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("note: py-spy not found (pip install py-spy); no server profile", file=sys.stderr)
        return None
    out = Path(tempfile.mkdtemp(prefix="crowd_pyspy_")) / "profile.txt"
    cmd = [
        exe, "record", "--pid", str(server_pid), "--subprocesses", "--nonblocking",
        "--rate", "200", "--duration", str(max(1, int(seconds) - 1)), "--format", "raw",
        "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def _finish_pyspy(spy: tuple[subprocess.Popen[bytes], Path] | None) -> str:
    if spy is None:
        return ""
    proc, out = spy
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
    if not out.exists():
        return "py-spy produced no profile (is ptrace allowed?)"
    return summarise_stacks(out.read_text())


def _frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def summarise_stacks(raw: str, top: int = 22) -> str:
    """Self and inclusive sample shares from py-spy's collapsed-stack ("raw") output."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for name in set(frames):
            incl_counts[name] += n
    if not total:
        return "py-spy: no samples"
    lines = [f"py-spy, gunicorn workers, {total} active samples", "  self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in self_counts.most_common(top)]
    lines.append("  inclusive (crowd, flask, werkzeug, psycopg2, pydantic, json frames):")
    keep = ("crowd/", "flask/", "werkzeug/", "psycopg2/", "pydantic", "json/", "_floor_app")
    picked = [(k, n) for k, n in incl_counts.most_common() if any(s in k for s in keep)]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in picked[:top]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Servers.


def _check_connections(url: str, web_workers: int, threads: int) -> None:
    """Both apps stay up through the run: their connections must fit under max_connections."""
    need = web_workers * (threads + 1) + web_workers * threads  # crowd's pools + floor's threads
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            free = int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()
    if need > free:
        raise SystemExit(
            f"error: {web_workers} workers x {threads} threads need up to {need} PostgreSQL"
            f" connections (crowd: threads + 1 per worker, floor: threads), {free} are free;"
            " use fewer --web-workers or --threads, or raise max_connections"
        )


def _gunicorn_shape(serve_pid: int, timeout: float = 10.0) -> tuple[int, int]:
    """(workers, threads) of the gunicorn that ``crowd serve`` (``serve_pid``) started."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in _tree(serve_pid):
            with contextlib.suppress(psutil.Error):
                argv = psutil.Process(pid).cmdline()
                if "gunicorn" in argv and "--workers" in argv and "--threads" in argv:
                    workers = int(argv[argv.index("--workers") + 1])
                    return workers, int(argv[argv.index("--threads") + 1])
        if time.monotonic() > deadline:
            raise SystemExit(f"error: no gunicorn --workers/--threads under pid {serve_pid}")
        time.sleep(0.2)


def _python_beside(crowd: str) -> str:
    python = Path(crowd).parent / "python"
    return str(python) if python.exists() else sys.executable


# --------------------------------------------------------------------------------------------
# Setup over HTTP, invariants in SQL.


def setup_project(
    base: str, requester: str, n_tasks: int, batch: int, n_workers: int
) -> tuple[int, list[str], float]:
    """Create the project, its tasks and the workers; return (project id, worker tokens, tasks/s)."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {requester}"
    r = s.post(
        f"{base}/api/v1/projects",
        json={"name": "bench", "labels": list(LABELS), "overlap": OVERLAP},
    )
    r.raise_for_status()
    project_id = int(r.json()["id"])
    t0 = time.perf_counter()
    for lo in range(0, n_tasks, batch):
        tasks = [
            {"external_id": f"t{i}", "data": {"text": f"picture {i}", "n": i}}
            for i in range(lo, min(lo + batch, n_tasks))
        ]
        r = s.post(f"{base}/api/v1/projects/{project_id}/tasks", json={"tasks": tasks})
        r.raise_for_status()
        assert r.json()["created"] == len(tasks), r.text
    tasks_per_second = n_tasks / (time.perf_counter() - t0)
    tokens = []
    for i in range(n_workers):
        r = s.post(f"{base}/api/v1/workers", json={"name": f"bench worker {i}"})
        r.raise_for_status()
        tokens.append(str(r.json()["token"]))
    return project_id, tokens, tasks_per_second


def _scalar(cur: Any, sql: str, *params: object) -> int:
    cur.execute(sql, params)
    return int(cur.fetchone()[0])


def crowd_invariants(url: str, project_id: int, load: Load) -> list[tuple[str, str, bool]]:
    """(check, observed, ok) rows."""
    acked = load.samples.created_total
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            over = _scalar(
                cur,
                "SELECT count(*) FROM tasks WHERE project_id = %s"
                " AND (answers > target OR taken > target)",
                project_id,
            )
            twice = _scalar(
                cur,
                "SELECT count(*) FROM (SELECT 1 FROM assignments GROUP BY task_id, worker_id"
                " HAVING count(*) > 1) d",
            )
            stored = _scalar(
                cur,
                "SELECT count(*) FROM assignments WHERE project_id = %s AND status = 'answered'",
                project_id,
            )
            counted = _scalar(
                cur, "SELECT coalesce(sum(answers), 0) FROM tasks WHERE project_id = %s", project_id
            )
            drift = _scalar(
                cur,
                """
                SELECT count(*) FROM tasks t LEFT JOIN (
                    SELECT task_id,
                           count(*) FILTER (WHERE status = 'answered') AS answered,
                           count(*) FILTER (WHERE status IN ('answered', 'reserved')) AS held
                    FROM assignments GROUP BY task_id
                ) a ON a.task_id = t.id
                WHERE t.project_id = %s
                  AND (t.answers <> coalesce(a.answered, 0) OR t.taken <> coalesce(a.held, 0))
                """,
                project_id,
            )
    finally:
        conn.close()
    retried = load.samples.repeated_total
    return [
        ("tasks over their target (answers or taken > target)", str(over), over == 0),
        ("(task, worker) pairs assigned twice", str(twice), twice == 0),
        (
            "answered assignment rows = acknowledged 201s",
            f"{stored} rows, {acked} x 201" + (f" (+{retried} x 200 repeated)" if retried else ""),
            stored == acked + retried,
        ),
        ("sum(tasks.answers) = answered rows", f"{counted} vs {stored}", counted == stored),
        ("tasks whose answers/taken counters disagree with rows", str(drift), drift == 0),
    ]


def floor_invariants(url: str, load: Load) -> list[tuple[str, str, bool]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            rows = _scalar(cur, "SELECT count(*) FROM floor_answers")
            summed = _scalar(cur, "SELECT coalesce(sum(n), 0) FROM floor_counters")
    finally:
        conn.close()
    acked = load.samples.created_total
    return [
        ("floor: rows = acknowledged 201s", f"{rows} rows, {acked} x 201", rows == acked),
        ("floor: sum(counters) = rows", f"{summed} vs {rows}", summed == rows),
    ]


def explain_fetch(url: str, project_id: int, worker_token_hash_source: str) -> str:
    """EXPLAIN ANALYZE of the reservation query, as one worker would run it now (rolled back)."""
    from crowd.store import accounts

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM accounts WHERE token_hash = %s",
                (accounts.hash_token(worker_token_hash_source),),
            )
            worker_id = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute(
                """
                EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
                WITH pick AS (
                    SELECT t.id FROM tasks t
                    WHERE t.project_id = %(project)s AND t.taken < t.target
                      AND NOT EXISTS (
                          SELECT 1 FROM assignments a
                          WHERE a.task_id = t.id AND a.worker_id = %(worker)s)
                    ORDER BY t.answers DESC, t.id
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED
                )
                SELECT * FROM pick
                """,
                {"project": project_id, "worker": worker_id},
            )
            plan = "\n".join(r[0] for r in cur.fetchall())
        conn.rollback()
    finally:
        conn.close()
    return plan


# --------------------------------------------------------------------------------------------
# Report.


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def report(crowd: Load, floor: Load, concurrency: int) -> tuple[str, bool]:
    c, f = crowd.samples, floor.samples
    ratio = _div(crowd.rate(), floor.rate())
    met = ratio >= GOAL_THROUGHPUT_RATIO
    rows = [
        ["metric", "crowd", "floor", "ratio", "goal", "met?"],
        ["---"] * 6,
        [
            f"answers/s (floor: requests/s), {concurrency} workers",
            f"{crowd.rate():.0f}",
            f"{floor.rate():.0f}",
            f"{ratio:.2f}",
            f">= {GOAL_THROUGHPUT_RATIO}",
            "yes" if met else "NO",
        ],
        [
            "HTTP requests/s",
            f"{crowd.requests() / crowd.seconds:.0f}",
            f"{floor.requests() / floor.seconds:.0f}",
            f"{_div(crowd.requests() / crowd.seconds, floor.requests() / floor.seconds):.2f}",
            "",
            "",
        ],
    ]
    cycle = "answer+next (+ any fetch)" if crowd.loop == "next" else "fetch+answer"
    for q in (50, 99):
        cq, fq = _ms(c.cycle, q), _ms(f.cycle, q)
        rows.append(
            [f"{cycle} cycle p{q} ms (floor: request)", f"{cq:.1f}", f"{fq:.1f}",
             f"{_div(cq, fq):.2f}", "", ""]
        )  # fmt: skip
    total = max(crowd.requests(), 1)
    for name in REQUEST_TYPES:
        values = c.latency.get(name, [])
        if not values:
            continue
        p50, p99 = _ms(values, 50), _ms(values, 99)
        share = len(values) / total
        judged = share >= TAIL_JUDGED_SHARE
        ok = _div(p99, p50) <= GOAL_TAIL_RATIO
        if judged:
            met = met and ok
        goal, verdict = (
            (f"<= {GOAL_TAIL_RATIO:.0f}", "yes" if ok else "NO")
            if judged
            else (f"not judged: {100 * share:.1f}% of requests", "")
        )
        rows.append([f"{name} p50 ms ({len(values)} requests)", f"{p50:.1f}", "", "", "", ""])
        rows.append(
            [f"{name} p99 ms (ratio: p99/p50)", f"{p99:.1f}", "", f"{_div(p99, p50):.2f}",
             goal, verdict]
        )  # fmt: skip
    rows.append(
        ["floor request p99/p50", "", f"{_div(_ms(f.cycle, 99), _ms(f.cycle, 50)):.2f}", "", "", ""]
    )
    for label, cv, fv in (
        ("gunicorn", crowd.server_cpu, floor.server_cpu),
        ("PostgreSQL server", crowd.postgres_cpu, floor.postgres_cpu),
        ("client", crowd.client_cpu, floor.client_cpu),
        ("other processes (noise)", crowd.other_cpu(), floor.other_cpu()),
    ):
        cms = 1000 * cv / max(len(c.cycle), 1)
        fms = 1000 * fv / max(len(f.cycle), 1)
        rows.append(
            [f"{label} CPU ms per answer (floor: per request)", f"{cms:.2f}", f"{fms:.2f}",
             f"{_div(cms, fms):.2f}", "", ""]
        )  # fmt: skip
    cores = os.cpu_count() or 1
    rows.append(
        [f"machine CPU busy ({cores} cores)",
         f"{100 * crowd.machine_cpu / crowd.seconds / cores:.0f}%",
         f"{100 * floor.machine_cpu / floor.seconds / cores:.0f}%", "", "", ""]
    )  # fmt: skip
    return "\n".join(_row(r) for r in rows), met


def _details(load: Load) -> str:
    s = load.samples
    lines = [
        f"{load.mode}: {len(s.cycle)} completed in {load.seconds:.0f} s"
        + (f" ({load.loop} loop);" if load.mode == "crowd" else ";")
        + f" requests {dict((k, len(v)) for k, v in sorted(s.latency.items()))};"
        f" client CPU {load.client_cpu:.1f} s ({100 * load.client_cpu / load.seconds:.0f}% of a"
        f" core, {1e6 * load.client_cpu / max(load.requests(), 1):.0f} us per request);"
        f" other processes {load.other_cpu() / load.seconds:.2f} cores;"
        f" keep-alive connections per gunicorn worker {load.connections_per_worker}",
    ]
    if s.empty_fetches:
        lines.append(f"  {s.empty_fetches} fetches found no task (204): raise --tasks")
    if s.reconnects:
        lines.append(f"  {s.reconnects} idle keep-alive connections reopened")
    for what, n in sorted(s.errors.items()):
        lines.append(f"  error: {what}: {n}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=10_000, help="tasks per POST")
    p.add_argument("--concurrency", type=int, default=64, help="simulated workers")
    p.add_argument("--seconds", type=float, default=30.0, help="recorded seconds per app")
    p.add_argument(
        "--rounds", type=int, default=3,
        help="alternate crowd and floor this many times, --seconds/rounds each, so that load "
        "from other processes on the machine falls on both alike",
    )  # fmt: skip
    p.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per phase")
    p.add_argument("--port", type=int, default=8765, help="crowd's port; the floor uses port+1")
    p.add_argument(
        "--loop", choices=("next", "fetch-answer"), default="next",
        help="crowd's client loop: fetch once, then answer with \"next\": true (one request "
        "per answer); or fetch then answer (two requests per answer) [default: next]",
    )  # fmt: skip
    p.add_argument(
        "--idempotency-keys", action="store_true",
        help="send an Idempotency-Key (a new uuid4) with every crowd fetch and answer",
    )  # fmt: skip
    p.add_argument(
        "--web-workers", type=int, default=None,
        help="gunicorn workers for both apps [default: crowd serve's own default]",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, default=None,
        help="threads per gunicorn worker [default: crowd serve's own default]",
    )  # fmt: skip
    p.add_argument("--client-procs", type=int, default=2, help="client processes")
    p.add_argument("--profile", action="store_true", help="py-spy the server, cProfile the client")
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the fetch at the end")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    p.add_argument("--crowd", default=None, help="the crowd command [default: beside python]")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args(argv)

    crowd_cmd = crowd_bin(args.crowd)
    host = "127.0.0.1"
    logs = Path(tempfile.mkdtemp(prefix="crowd_api_load_"))
    window = args.seconds / args.rounds
    with bench_database(args.postgres, args.keep_db) as url, contextlib.ExitStack() as up:
        env = service_env(url, args.redis, logs)
        requester = requester_token(crowd_cmd, env, "bench")
        serve = [crowd_cmd, "serve", "--host", host, "--port", str(args.port)]
        if args.web_workers is not None:
            serve += ["--workers", str(args.web_workers)]
        if args.threads is not None:
            serve += ["--threads", str(args.threads)]
        base = f"http://{host}:{args.port}"
        crowd_server = spawn_healthy(serve, env, logs / "crowd.log", base)
        up.callback(crowd_server.stop)
        # The floor gets the shape crowd serve chose, read off the gunicorn it started.
        web_workers, threads = _gunicorn_shape(crowd_server.proc.pid)
        print(
            f"api_load: {' '.join(['crowd', *serve[1:]])} -> gunicorn gthread {web_workers}"
            f" workers x {threads} threads; {args.tasks} tasks, {args.concurrency} workers in"
            f" the {args.loop} loop, {args.rounds} x {window:.0f} s per app"
            f" (+{args.warmup:.0f} s warm-up each); {args.client_procs} client processes;"
            f" {os.cpu_count()} cores; load average {loadavg()}",
            flush=True,
        )
        _check_connections(url, web_workers, threads)
        project_id, tokens, tasks_rate = setup_project(
            base, requester, args.tasks, args.batch, args.concurrency
        )
        print(f"setup: {args.tasks} tasks posted at {tasks_rate:.0f} tasks/s")

        _floor_app.setup(url)
        floor_env = {
            **os.environ,
            "FLOOR_DATABASE_URL": url,
            "FLOOR_COUNTER_ROWS": str(_floor_app.COUNTER_ROWS),
        }
        floor_cmd = [
            _python_beside(crowd_cmd), "-m", "gunicorn", "--bind", f"{host}:{args.port + 1}",
            "--workers", str(web_workers), "--threads", str(threads),
            "--worker-class", "gthread", "--graceful-timeout", "10",
            "--access-logfile", "/dev/null", "--chdir", str(HERE), "_floor_app:create_app()",
        ]  # fmt: skip
        floor_server = spawn_healthy(
            floor_cmd, floor_env, logs / "floor.log", f"http://{host}:{args.port + 1}"
        )
        up.callback(floor_server.stop)

        postmaster = _postmaster(url)
        targets = [
            Target("crowd", args.loop, host, args.port, project_id, crowd_server.proc.pid,
                   postmaster, tuple(tokens), args.client_procs, args.idempotency_keys),
            Target("floor", "", host, args.port + 1, 0, floor_server.proc.pid, postmaster,
                   tuple(tokens), args.client_procs),
        ]  # fmt: skip
        loads: dict[str, Load] = {}
        for r in range(args.rounds):
            for target in targets:
                print(f"round {r + 1}/{args.rounds}: {target.mode}", flush=True)
                load = run_load(target, args.warmup, window, args.profile and r == 0)
                if target.mode in loads:
                    loads[target.mode].merge(load)
                else:
                    loads[target.mode] = load
        up.close()
        crowd, floor = loads["crowd"], loads["floor"]
        checks = crowd_invariants(url, project_id, crowd) + floor_invariants(url, floor)
        plan = explain_fetch(url, project_id, tokens[0]) if args.explain else ""

    table, goals_met = report(crowd, floor, args.concurrency)
    print()
    print(table)
    print()
    print(_details(crowd))
    print(_details(floor))
    print()
    print("invariants (PostgreSQL, after the run):")
    for name, observed, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {observed}")
    for load in (crowd, floor):
        if load.pyspy:
            print(f"\n{load.mode} server profile (round 1)\n{load.pyspy}")
        if load.samples.profile:
            print(f"\n{load.mode} client profile (round 1, one client process, cProfile)")
            print(load.samples.profile)
    if plan:
        print(f"\nfetch query plan now:\n{plan}")
    print(f"\nload average at the end {loadavg()}")
    print(f"goals {'met' if goals_met else 'NOT met'}; server logs in {logs}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
