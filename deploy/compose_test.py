"""`make compose-test`: docker-compose.yml run for real, faults included.

Builds the crowd image, starts the compose stack (PostgreSQL, Redis, the API, 2 workers),
waits for every healthcheck, makes the first token as docs/DEPLOY.md says, walks the README's
API walk-through, plays `crowd demo --url` against it, then injects three faults:

* `docker kill` of the worker running an aggregation: the run is retried and its results
  equal those of an undisturbed run over the same answers;
* `docker restart` of PostgreSQL while workers answer: no acknowledged answer is lost or
  counted twice;
* `--scale worker=3`: runs spread over the three workers.

Everything is torn down at the end (`down -v`), pass or fail. Every wait is bounded and says
what it waited for when it gives up. Needs DOCKER_HOST (deploy/docker-engine.sh prints it) and
the base images (deploy/local-images.sh, or the official ones with CROWD_*_IMAGE set to them).
Prints the figures docs/DEPLOY.md quotes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from crowd.client import ClientError, RequesterClient, WorkerClient

ROOT = Path(__file__).resolve().parent.parent
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "crowdci")
IMAGES = {
    "CROWD_PYTHON_IMAGE": "crowd-local/python:3.11",
    "CROWD_POSTGRES_IMAGE": "crowd-local/postgres:15",
    "CROWD_REDIS_IMAGE": "crowd-local/redis:7",
    "CROWD_IMAGE": "crowd-compose-test:latest",
}
CROWD = str(Path(sys.executable).with_name("crowd"))
FIGURES: list[tuple[str, str]] = []


class Failed(Exception):
    """A check failed: the message says which and what was seen."""


def figure(name: str, value: str) -> None:
    FIGURES.append((name, value))
    print(f"compose-test: {name}: {value}", flush=True)


def step(text: str) -> None:
    print(f"\ncompose-test: == {text}", flush=True)


def check(ok: object, message: str) -> None:
    if not ok:
        raise Failed(message)


def wait_for(what: str, test: Callable[[], Any], seconds: float, every: float = 0.5) -> Any:
    """Poll ``test`` until it returns something truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = test()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(every)


# -- docker and compose ---------------------------------------------------------------------


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Failed("neither `docker compose` nor `docker-compose` is installed")


def run(*args: str, check_: bool = True, timeout: float = 600, quiet: bool = False,
        input_: str | None = None) -> str:  # fmt: skip
    done = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, input=input_
    )
    if check_ and done.returncode != 0:
        raise Failed(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
    if not quiet and done.stderr.strip() and done.returncode != 0:
        print(done.stderr, file=sys.stderr)
    return done.stdout


_RQ_WORKERS = """
import json, os, redis, rq
r = redis.Redis.from_url(os.environ["CROWD_REDIS_URL"])
print(json.dumps([{"name": w.name, "host": w.hostname, "job": w.get_current_job_id(),
                   "ok": w.successful_job_count, "failed": w.failed_job_count}
                  for w in rq.Worker.all(connection=r)]))
"""


class Stack:
    """The compose project under test."""

    def __init__(self, port: int) -> None:
        self.base = [*compose_command(), "-p", PROJECT]
        self.url = f"http://127.0.0.1:{port}"
        self.api = f"{self.url}/api/v1"
        os.environ["CROWD_PORT"] = str(port)
        for name, default in IMAGES.items():
            os.environ.setdefault(name, default)

    def compose(self, *args: str, timeout: float = 600, check_: bool = True) -> str:
        return run(*self.base, *args, timeout=timeout, check_=check_)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def health(self, container: str) -> str:
        out = run("docker", "inspect", "--format",
                  "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                  container, check_=False, quiet=True)  # fmt: skip
        return out.strip()

    def all_healthy(self, workers: int) -> bool:
        want = {"postgres": 1, "redis": 1, "api": 1, "worker": workers}
        for service, count in want.items():
            ids = self.containers(service)
            if len(ids) != count or any(self.health(c) != "running healthy" for c in ids):
                return False
        return True

    def psql(self, sql: str) -> str:
        return self.compose("exec", "-T", "postgres", "psql", "-U", "crowd", "-d", "crowd",
                            "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql)  # fmt: skip

    def rq_workers(self) -> list[dict[str, Any]]:
        """RQ's record of each registered worker: its name, its hostname (the container's short
        id), the job it runs now and its job counts. A container can have two records: a killed
        worker's stays until its heartbeat expires, beside the restarted container's new one.
        Asked of RQ itself, in the api container: since RQ 2 the running job lives in the
        worker's executions, not in a field of its hash."""
        out = self.compose("exec", "-T", "api", "python", "-c", _RQ_WORKERS)
        return list(json.loads(out))

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check_=False)


# -- the checks -----------------------------------------------------------------------------


def up(stack: Stack) -> None:
    step("build the image and start the stack (2 workers)")
    began = time.monotonic()
    build = ["docker", "build"]
    env = dict(os.environ)
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        # Docker 20.10's own client has BuildKit built in; newer clients need buildx for it.
        build = ["/usr/bin/docker", "build"] if Path("/usr/bin/docker").exists() else build
        env["DOCKER_BUILDKIT"] = "1"
    image = os.environ["CROWD_IMAGE"]
    inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", image]
    previous = run(*inspect, check_=False, quiet=True).strip()
    subprocess.run(
        [*build, "-q", "-t", image, "--build-arg",
         f"PYTHON_IMAGE={os.environ['CROWD_PYTHON_IMAGE']}", "."],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=1200,
    )  # fmt: skip
    if previous and previous != run(*inspect, quiet=True).strip():
        # The image of the last code change, untagged now: drop it, not one per landing.
        run("docker", "image", "rm", previous, check_=False, quiet=True)
    figure("image build", f"{time.monotonic() - began:.0f} s")
    began = time.monotonic()
    stack.compose("up", "-d", "--no-build", "--scale", "worker=2")
    wait_for("postgres, redis, api and 2 workers to be healthy",
             lambda: stack.all_healthy(2), 240, every=1)  # fmt: skip
    figure("time from `up` to every healthcheck passing", f"{time.monotonic() - began:.0f} s")


def first_token(stack: Stack) -> str:
    step("the first token, as docs/DEPLOY.md says")
    logs = stack.compose("logs", "--no-color", "api")
    check("token was created" in logs, f"the API's first start printed no token:\n{logs[-2000:]}")
    token = stack.compose(
        "exec", "-T", "api", "crowd", "token", "create", "--role", "requester", "--name", "ci"
    ).strip()
    check(re.fullmatch(r"\S+", token), f"`crowd token create` printed {token!r}")
    health = requests.get(f"{stack.url}/healthz", timeout=10).json()
    check(health == {"status": "ok", "database": "ok", "redis": "ok"}, f"/healthz: {health}")
    return token


def walkthrough(stack: Stack, req: str) -> None:
    """The README's walk through the API, step by step, with the answers it documents."""
    step("the README's walk through the API")
    began = time.monotonic()
    s = requests.Session()

    def call(method: str, path: str, token: str, body: Any = None, want: int = 200) -> Any:
        r = s.request(method, f"{stack.api}{path}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        check(r.status_code == want, f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    project = call("POST", "/projects", req, {"name": "sentiment", "labels": ["pos", "neg"],
                   "overlap": 3, "lease_seconds": 600}, 201)  # fmt: skip
    check(project["labels"] == ["pos", "neg"] and project["overlap"] == 3, project)
    pid = project["id"]
    batch = {"tasks": [{"external_id": "r1", "data": {"text": "loved it"}},
                       {"external_id": "r2", "data": {"text": "meh"}, "gold": "neg"}]}  # fmt: skip
    check(call("POST", f"/projects/{pid}/tasks", req, batch, 201) == {"created": 2, "existing": 0},
          "first batch")  # fmt: skip
    again = call("POST", f"/projects/{pid}/tasks", req, batch, 201)
    check(again == {"created": 0, "existing": 2}, f"the same batch again: {again}")
    changed = {"tasks": [{"external_id": "r1", "data": {"text": "hated it"}}]}
    check(call("POST", f"/projects/{pid}/tasks", req, changed, 409)["error"]["code"] == "task_changed",
          "a changed task is a 409 task_changed")  # fmt: skip
    extra = {"tasks": [{"external_id": f"r{i}", "data": {"text": "fine"}} for i in (3, 4)]}
    call("POST", f"/projects/{pid}/tasks", req, extra, 201)
    w = call("POST", "/workers", req, {"name": "alice"}, 201)["token"]
    first = call("POST", f"/projects/{pid}/assignments", w, want=201)
    a1 = first["assignment_id"]
    call("POST", f"/assignments/{a1}/answer", w, {"label": "pos"}, 201)
    call("POST", f"/assignments/{a1}/answer", w, {"label": "pos"}, 200)  # a retry
    call("POST", f"/assignments/{a1}/answer", w, {"label": "neg"}, 409)  # another label
    answered = {first["task"]["external_id"]: "pos"}
    second = call("POST", f"/projects/{pid}/assignments", w, want=201)
    call("POST", f"/assignments/{second['assignment_id']}/skip", w)
    # The rest in the one-request loop: answer and reserve the next, until "next" is null.
    current = call("POST", f"/projects/{pid}/assignments", w, want=201)
    while current is not None:
        both = call("POST", f"/assignments/{current['assignment_id']}/answer", w,
                    {"label": "neg", "next": True}, 201)  # fmt: skip
        check(both["status"] == "created" and "next" in both, both)
        answered[current["task"]["external_id"]] = "neg"
        current = both["next"]
    r = s.post(f"{stack.api}/projects/{pid}/assignments", timeout=30,
               headers={"Authorization": f"Bearer {w}"})  # fmt: skip
    check(r.status_code == 204, f"nothing left for alice: {r.status_code}")
    check(len(answered) >= 2, f"alice answered {answered}")
    counts = call("GET", f"/projects/{pid}", req)
    n = len(answered)
    check(counts["counts"]["answers"] == n, f"{n} answers stored: {counts}")
    regular = {t: label for t, label in answered.items() if t != "r2"}

    def labelled() -> dict[str, str]:
        page = call("GET", f"/projects/{pid}/results?limit=100", req)["results"]
        return {x["external_id"]: x["label"] for x in page if x["answers"] == 1}

    results = wait_for("the walk-through's results (an aggregation run on a worker)",
                       lambda: labelled() == regular, 60)  # fmt: skip
    check(results, "results")
    gold = call("GET", f"/projects/{pid}/results?include_gold=true", req)["results"]
    want = {"r1": None, "r2": "neg", "r3": None, "r4": None}
    check({x["external_id"]: x["gold"] for x in gold} == want, gold)
    answers = call("GET", f"/projects/{pid}/answers?limit=1000", req)["answers"]
    check(len(answers) == n, f"{n} raw answers: {answers}")
    figure("README walk-through", f"passed in {time.monotonic() - began:.1f} s")


def demo(stack: Stack, req: str) -> None:
    step("a simulated crowd: `crowd demo --url`")
    began = time.monotonic()
    done = subprocess.run(
        [CROWD, "demo", "--url", stack.url, "--token", req, "--tasks", "200",
         "--good-workers", "8", "--spammers", "2", "--think", "0", "--timeout", "300"],
        capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    check(done.returncode == 0, f"crowd demo exited {done.returncode}:\n{done.stdout}{done.stderr}")
    rows = dict(re.findall(r"^\| (.+?) +\| (.+?) \|$", done.stdout, re.MULTILINE))
    check(rows.get("tasks complete") == "200", f"every task complete:\n{done.stdout}")
    ds = float(rows["accuracy: crowd (Dawid-Skene, bans, dynamic overlap)"])
    mv = float(rows["accuracy: majority vote (all answers)"])
    check(ds >= 0.85 and ds >= mv - 0.03, f"Dawid-Skene accuracy {ds}, majority vote {mv}")
    # The evidence rules ban when a worker is below the bar with probability qc_confidence
    # (docs/QUALITY.md); in a project this short a spammer's last runs can come before that, so
    # the check is that they act on spammers, and at most as often on good workers as
    # tests/service/test_demo.py allows.
    banned = int(rows["spammers banned"].split(" of ")[0])
    wrong = int(rows["good workers banned (wrongly)"].split(" of ")[0])
    check(banned >= 1 and wrong <= 1, f"spammers banned, good workers not:\n{done.stdout}")
    figure("crowd demo --url (200 tasks, 8 good workers, 2 spammers)",
           f"{time.monotonic() - began:.0f} s, accuracy {ds:.3f} (majority vote {mv:.3f}), "
           f"{rows['answers used on regular tasks']} answers, "
           f"{rows['aggregation runs']} runs, {rows['spammers banned']} spammers banned")  # fmt: skip


# The kill fault needs a run long enough to be caught in the middle: answers are inserted in
# PostgreSQL directly (posting 100,000 answers over HTTP would take minutes), each task
# answered by OVERLAP of WORKERS workers, a quarter of them spammers.
KILL_TASKS = 20000
KILL_WORKERS = 40
KILL_OVERLAP = 5


def tasks_project(req: RequesterClient, name: str) -> int:
    project = req.create_project(name, ["a", "b", "c"], overlap=KILL_OVERLAP)
    pid = int(project["id"])
    req.post_tasks(pid, [{"external_id": f"t{i}", "data": {}} for i in range(KILL_TASKS)])
    return pid


def insert_answers(stack: Stack, pid: int, workers: list[int]) -> None:
    """Every task answered by KILL_OVERLAP workers, in one transaction. The API does not see
    these answers come: within 15 s a worker's reaper queues a catch-up run for them."""
    ids = "{" + ",".join(map(str, workers)) + "}"
    stack.psql(f"""
        BEGIN;
        INSERT INTO assignments (project_id, task_id, worker_id, status, label, expires_at,
                                 answered_at)
        SELECT {pid}, t.id, w.id, 'answered',
               CASE WHEN w.j % 4 = 0 THEN (t.i * w.j) % 3             -- spammers
                    WHEN (t.i * 7 + w.j * 13) % 10 < 8 THEN t.i % 3    -- right 80% of the time
                    ELSE (t.i + 1) % 3 END,
               now(), now()
        FROM (SELECT id, row_number() OVER (ORDER BY id) AS i FROM tasks
              WHERE project_id = {pid}) t
        JOIN (SELECT id, ord AS j FROM unnest('{ids}'::bigint[]) WITH ORDINALITY AS u(id, ord)) w
          ON (t.i + w.j) % {KILL_WORKERS} < {KILL_OVERLAP};
        UPDATE tasks SET answers = {KILL_OVERLAP}, taken = {KILL_OVERLAP}
        WHERE project_id = {pid};
        COMMIT;""")


def run_of(req: RequesterClient, pid: int) -> dict[str, Any]:
    queued = req.request_run(pid)
    check(queued is not None, f"project {pid} already had a run queued")
    assert queued is not None
    return queued


def run_status(req: RequesterClient, pid: int, run_id: int) -> dict[str, Any]:
    for r in req.runs(pid):
        if r["id"] == run_id:
            return r
    raise Failed(f"run {run_id} of project {pid} is gone")


def results_of(req: RequesterClient, pid: int) -> dict[str, tuple[str, float]]:
    return {r["external_id"]: (r["label"], round(r["confidence"], 9))
            for r in req.results(pid)}  # fmt: skip


def kill_worker_mid_run(stack: Stack, req: RequesterClient) -> None:
    step(f"fault 1: docker kill the worker running a run ({KILL_TASKS * KILL_OVERLAP} answers)")
    workers = [req.create_worker(f"kill-{j}").id for j in range(KILL_WORKERS)]
    every = KILL_TASKS * KILL_OVERLAP
    calm = tasks_project(req, "undisturbed")
    hit = tasks_project(req, "killed")
    insert_answers(stack, calm, workers)
    # Ours or the reaper's catch-up run (request_run is None when that one came first).
    req.request_run(calm)

    def covered() -> dict[str, Any] | None:
        return next((r for r in req.runs(calm) if r["status"] == "succeeded"
                     and r["answers"] == every), None)  # fmt: skip

    done = wait_for(f"an undisturbed run over the {every} answers", covered, 300, every=1)
    figure(f"aggregation run over {every:,} answers (undisturbed)", f"{done['seconds']:.1f} s")
    calm_results = results_of(req, calm)

    # Catch the run in its last step: a transaction of our own holds the project's row, so
    # the run's publishing transaction (it ends by updating that row) waits, mid-run, for as
    # long as we need to find and kill its worker. The run reads and fits as usual. The row
    # is held FOR NO KEY UPDATE, which the answers' foreign keys (FOR KEY SHARE) pass, and
    # taken before the answers go in, so that whichever run covers them (the reaper's
    # catch-up or ours) is caught.
    holder = subprocess.Popen(
        [*stack.base, "exec", "-T", "postgres", "psql", "-U", "crowd", "-d", "crowd",
         "-v", "ON_ERROR_STOP=1", "-qAt"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write(
        f"BEGIN; SELECT 'locked' FROM projects WHERE id = {hit} FOR NO KEY UPDATE;\n"
    )
    holder.stdin.flush()
    check(holder.stdout.readline().strip() == "locked", "could not lock the project's row")
    try:
        insert_answers(stack, hit, workers)
        req.request_run(hit)
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'UPDATE projects SET last_run_id%'"
        )
        wait_for("the run to reach its publishing step", lambda: stack.psql(waiting).strip()
                 == "1", 120, every=0.5)  # fmt: skip
        running = [r for r in req.runs(hit) if r["status"] == "running"]
        check(len(running) == 1, f"one run running, not {running}")
        victim = running[0]
        job = f"crowd-run-{victim['id']}"  # crowd.background.scheduling.job_id
        busy = wait_for(
            f"a worker to hold job {job}",
            lambda: [w["host"] for w in stack.rq_workers() if w["job"] == job],
            30,
        )[0]
        container = next(c for c in stack.containers("worker") if c.startswith(busy))
        run("docker", "kill", container)
        killed_at = time.monotonic()
        print(f"compose-test: killed worker {busy} running job {job}", flush=True)
    finally:
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        holder.wait(timeout=60)

    def retries() -> list[dict[str, Any]]:
        return [r for r in req.runs(hit) if r["trigger"] == "retry" and r["status"] == "succeeded"
                and r["answers"] == every]  # fmt: skip

    retried = wait_for("the retried run to succeed", retries, 180, every=1)
    failed = run_status(req, hit, victim["id"])
    check(failed["status"] == "failed" and "retried" in (failed["error"] or ""),
          f"the killed run is recorded as failed and retried: {failed}")  # fmt: skip
    hit_results = results_of(req, hit)
    check(len(hit_results) == KILL_TASKS, f"{len(hit_results)} results, want {KILL_TASKS}")
    differ = [t for t in calm_results if calm_results[t] != hit_results.get(t)]
    check(not differ, f"{len(differ)} results differ from the undisturbed run's, e.g. "
          f"{[(t, calm_results[t], hit_results.get(t)) for t in differ[:3]]}")  # fmt: skip
    figure("docker kill of the worker mid-run",
           f"run {victim['id']} failed ('{failed['error']}'), retry run {retried[0]['id']} "
           f"succeeded {time.monotonic() - killed_at:.0f} s after the kill; "
           f"{KILL_TASKS} results equal the undisturbed run's")  # fmt: skip


def restart_postgres_under_load(stack: Stack, req: RequesterClient) -> None:
    step("fault 2: docker restart PostgreSQL while workers answer")
    pid = int(req.create_project("under-load", ["x", "y"], overlap=3)["id"])
    req.post_tasks(pid, [{"external_id": f"u{i}", "data": {}} for i in range(400)])
    acked: list[tuple[int, str]] = []
    errors: list[str] = []
    crashed: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def work(token: str, n: int) -> None:
        with WorkerClient(stack.url, token) as client:
            current = None
            while not stop.is_set():
                try:
                    if current is None:
                        current = client.fetch(pid)
                        if current is None:
                            return
                    label = "x" if (current.task_id + n) % 3 else "y"
                    done = client.answer(current.id, label, fetch_next=True)
                    with lock:
                        acked.append((current.id, label))
                    current = done.next
                except (ClientError, requests.RequestException) as exc:
                    with lock:
                        errors.append(str(exc)[:200])
                    time.sleep(0.5)  # not acknowledged: ask again (the same assignment)
                except Exception as exc:  # a bug here: fail the check, not a silent thread
                    with lock:
                        crashed.append(repr(exc))
                    return

    tokens = [req.create_worker(f"load-{n}").token for n in range(12)]
    threads = [threading.Thread(target=work, args=(t, n)) for n, t in enumerate(tokens)]
    began = time.monotonic()
    for t in threads:
        t.start()
    wait_for("some answers before the restart", lambda: len(acked) >= 150 or crashed, 60, 0.2)
    check(not crashed, f"answering threads crashed: {crashed[:3]}")
    before = len(acked)
    restart_began = time.monotonic()
    stack.compose("restart", "postgres", timeout=120)
    wait_for(
        "PostgreSQL to be healthy again",
        lambda: stack.health(stack.containers("postgres")[0]) == "running healthy",
        90,
    )
    back = time.monotonic() - restart_began
    for t in threads:
        t.join(timeout=240)
    stop.set()
    check(not any(t.is_alive() for t in threads), "the answering did not end within 240 s")
    check(not crashed, f"answering threads crashed: {crashed[:3]}")
    stored = list(req.answers(pid))
    by_assignment: dict[int, list[str]] = {}
    for a in stored:
        by_assignment.setdefault(int(a["id"]), []).append(a["label"])
    lost = [(a, label) for a, label in acked if by_assignment.get(a) != [label]]
    check(not lost, f"{len(lost)} acknowledged answers lost or changed, e.g. {lost[:5]}")
    pairs = {(a["task_id"], a["worker_id"]) for a in stored}
    check(len(pairs) == len(stored), "a worker's answer to a task is stored twice")
    check(len(set(a for a, _ in acked)) == len(acked), "an answer was acknowledged twice")
    project = req.project(pid)
    check(project["counts"]["answers"] == len(stored), f"counts: {project} != {len(stored)}")
    figure(
        "docker restart of PostgreSQL under load (12 workers answering)",
        f"{len(acked)} answers acknowledged ({before} before the restart), all stored once; "
        f"PostgreSQL healthy again {back:.0f} s after the restart began; {len(errors)} "
        f"calls failed and were asked again; {time.monotonic() - began:.0f} s in all",
    )


def scale_to_three(stack: Stack, req: RequesterClient) -> None:
    step("fault 3: --scale worker=3, and runs spread over the three")
    stack.compose("up", "-d", "--no-build", "--scale", "worker=3")
    wait_for("3 healthy workers", lambda: stack.all_healthy(3), 180, every=1)
    hosts = {c[:12] for c in stack.containers("worker")}
    wait_for("3 workers registered with Redis",
             lambda: hosts <= {w["host"] for w in stack.rq_workers()}, 60)  # fmt: skip
    before = {w["name"]: int(w["ok"]) for w in stack.rq_workers()}
    pids = []
    for n in range(6):
        p = int(req.create_project(f"spread-{n}", ["x", "y"], overlap=1)["id"])
        req.post_tasks(p, [{"external_id": f"s{i}", "data": {}} for i in range(20)])
        pids.append(p)
    queued = []
    for _ in range(2):
        for p in pids:
            queued.append((p, run_of(req, p)["id"]))
        wait_for(
            "the runs to finish",
            lambda: all(run_status(req, p, r)["finished_at"] for p, r in queued),
            120,
        )
    did = dict.fromkeys(hosts, 0)
    for w in stack.rq_workers():  # per worker record, so a dead record beside a live one adds 0
        if w["host"] in did:
            did[w["host"]] += int(w["ok"]) - before.get(w["name"], 0)
    check(all(n > 0 for n in did.values()), f"jobs done by each worker: {did}")
    figure("--scale worker=3", f"{len(queued)} runs; jobs done by each worker: "
           f"{sorted(did.values(), reverse=True)}")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def stack_up() -> Iterator[Stack]:
    # CROWD_COMPOSE_TEST_PORT pins the API's host port (e.g. to a range kept free for it).
    stack = Stack(int(os.environ.get("CROWD_COMPOSE_TEST_PORT") or free_port()))
    stack.compose("down", "-v", "--remove-orphans", check_=False)  # leftovers of an aborted run
    try:
        yield stack
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "20", check_=False)


def main() -> int:
    began = time.monotonic()
    try:
        with stack_up() as stack:
            up(stack)
            token = first_token(stack)
            walkthrough(stack, token)
            demo(stack, token)
            with RequesterClient(stack.url, token) as req:
                kill_worker_mid_run(stack, req)
                restart_postgres_under_load(stack, req)
                scale_to_three(stack, req)
    except Failed as exc:
        print(f"\ncompose-test: FAILED: {exc}", file=sys.stderr)
        return 1
    figure("compose-test in all", f"{time.monotonic() - began:.0f} s")
    print("\ncompose-test: passed\n" + json.dumps(dict(FIGURES), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
