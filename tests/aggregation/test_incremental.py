"""Incremental runs (issue 14): a worker keeps a project's answers between runs and reads only
the new ones, and never publishes from a copy that no longer matches PostgreSQL.

Everything runs for real: answers over the API, runs by forking RQ workers in burst mode on
real Redis, kept copies on disk in a temporary folder per worker "host"."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from flask.testing import FlaskClient
from redis import Redis

from crowd.background.scheduling import flush_all
from crowd.config import Settings
from crowd.store import assignments
from crowd.store.db import Database
from tests.aggregation.test_live import post_tasks, runs
from tests.conftest import auth
from workers.bootstrap import make_worker

LABELS = ["a", "b", "c"]


def drain(settings: Settings, state_dir: Path | None, **changes: Any) -> None:
    """Run the queued jobs with a real RQ worker whose kept copies live in ``state_dir``
    (None: it keeps none, so every run reads all the answers), its settings otherwise
    ``settings`` with ``changes``."""
    flush_all()
    make_worker(replace(settings, state_dir=state_dir, **changes)).work(burst=True)


def answer(client: FlaskClient, worker: str, pid: int, name: str) -> bool:
    """Fetch a task and answer it as worker ``name`` would (seeded by worker and task);
    False when the worker has nothing left to do or is banned."""
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    if r.status_code in (204, 403):
        return False
    assert r.status_code == 201, r.json
    external_id = r.json["task"]["external_id"]  # type: ignore[index]
    truth = int(external_id[1:]) % len(LABELS)
    skill = 0.55 + 0.08 * int(name[1:])  # w0 is poor, w5 is good
    draw = int(hashlib.sha256(f"{name}/{external_id}".encode()).hexdigest()[:8], 16) / 2**32
    label = truth if draw < skill else (truth + 1 + int(draw * 1000) % 2) % len(LABELS)
    a = client.post(
        f"/api/v1/assignments/{r.json['assignment_id']}/answer",  # type: ignore[index]
        json={"label": LABELS[label]},
        headers=auth(worker),
    )
    assert a.status_code == 201, a.json
    return True


def published(database: Database, pid: int) -> dict[str, tuple[int, float, int, float]]:
    """Task external id -> (label, confidence, answers, decision), at full precision."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, r.label, r.confidence, r.answers, r.decision"
            " FROM task_results r JOIN tasks t ON t.id = r.task_id WHERE r.project_id = %s",
            (pid,),
        )
        return {row[0]: tuple(row[1:]) for row in cur.fetchall()}


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, (label, confidence, answers, decision) in a.items():
        other = b[key]
        assert (label, answers) == (other[0], other[2]), key
        assert abs(confidence - other[1]) <= 1e-6, (key, confidence, other[1])
        assert abs(decision - other[3]) <= 1e-6, (key, decision, other[3])


def loads(client: FlaskClient, token: str, pid: int) -> list[str]:
    return [r["load"] for r in runs(client, token, pid) if r["status"] == "succeeded"]


def worker_ids(client: FlaskClient, token: str) -> dict[str, int]:
    r = client.get("/api/v1/workers?limit=1000", headers=auth(token))
    assert r.status_code == 200
    return {w["name"]: w["id"] for w in r.json["workers"]}  # type: ignore[index]


def new_project(client: FlaskClient, make_project: Any, requester: str, n_tasks: int) -> int:
    pid: int = make_project(requester, labels=LABELS, overlap=3, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(n_tasks)])
    return pid


def request_run(client: FlaskClient, token: str, pid: int) -> None:
    r = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(token))
    assert r.status_code == 202, r.json


def test_incremental_runs_publish_what_full_runs_publish_through_answers_bans_and_unbans(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """Two projects get the same seeded stream of answers, bans and unbans; one's runs keep
    their answers between runs, the other's read them all every time."""
    names = [f"w{i}" for i in range(6)]
    tokens = {n: make_worker(requester, n) for n in names}
    ids = worker_ids(client, requester)
    kept, full = (new_project(client, make_project, requester, 30) for _ in range(2))
    rng = np.random.default_rng(14)
    for step in range(9):
        batch = [names[i] for i in rng.integers(0, len(names), int(rng.integers(3, 9)))]
        for pid, state_dir in ((kept, tmp_path), (full, None)):
            for name in batch:
                answer(client, tokens[name], pid, name)
            if step in (3, 6):  # w0 banned, then let back
                verb = "ban" if step == 3 else "unban"
                r = client.post(
                    f"/api/v1/projects/{pid}/workers/{ids['w0']}/{verb}", headers=auth(requester)
                )
                assert r.status_code == 200, r.json
                request_run(client, requester, pid)
            drain(settings, state_dir)
            if step == 4:
                assert published(database, pid), "the stream publishes results"
        assert_same(published(database, kept), published(database, full))

    kept_loads = loads(client, requester, kept)
    assert kept_loads[0] == "full: no copy kept"
    assert kept_loads[1:] and set(kept_loads[1:]) == {"incremental"}
    assert set(loads(client, requester, full)) == {"full: no state directory"}


def test_a_second_worker_host_rebuilds_the_copy_and_the_first_catches_up_from_its_own(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """Each RQ job is a forked process, so nothing survives in memory: a worker restarted on
    the same host finds its copy on disk; a worker on another host (another state directory)
    rebuilds its own, counted on the run; the first host's copy, behind by a run it did not
    do, reads what it lacks."""
    host_a, host_b = tmp_path / "a", tmp_path / "b"
    pid = new_project(client, make_project, requester, 16)
    worker = make_worker(requester, "w3")
    for host in (host_a, host_a, host_b, host_a):
        for _ in range(4):
            answer(client, worker, pid, "w3")
        drain(settings, host)
    assert loads(client, requester, pid) == [
        "full: no copy kept",
        "incremental",
        "full: no copy kept",
        "incremental",
    ]
    reference = published(database, pid)
    request_run(client, requester, pid)
    drain(settings, None)
    assert_same(published(database, pid), reference)
    assert {r["answers"] for r in runs(client, requester, pid)[-2:]} == {16}


def test_a_redis_flush_loses_nothing_of_the_kept_answers(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """The copy is checked against PostgreSQL, not Redis: after Redis loses everything the
    next run still reads only what it lacks, and publishes what a full read would."""
    pid = new_project(client, make_project, requester, 10)
    worker = make_worker(requester, "w4")
    for _ in range(5):
        answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    assert settings.redis_url
    Redis.from_url(settings.redis_url).flushdb()
    for _ in range(5):
        answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    assert loads(client, requester, pid) == ["full: no copy kept", "incremental"]
    reference = published(database, pid)
    assert sum(r[2] for r in reference.values()) == 10
    request_run(client, requester, pid)
    drain(settings, None)
    assert_same(published(database, pid), reference)


def test_a_changed_answer_makes_the_next_run_read_all_answers_again(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    pid = new_project(client, make_project, requester, 3)
    workers = [make_worker(requester, f"w{i}") for i in range(3)]
    for w in workers:
        for _ in range(3):
            answer(client, w, pid, "w5")  # all right: t_i -> labels[i % 3]
    drain(settings, tmp_path)
    assert published(database, pid)["t1"][0] == 1
    with database.transaction() as cur:  # an administrator corrects t1's answers by hand
        cur.execute(
            "UPDATE assignments SET label = 2 FROM tasks t"
            " WHERE t.id = assignments.task_id AND t.external_id = 't1' AND t.project_id = %s",
            (pid,),
        )
    request_run(client, requester, pid)
    drain(settings, tmp_path)
    assert loads(client, requester, pid) == ["full: no copy kept", "full: answers changed"]
    assert published(database, pid)["t1"][0] == 2


def test_a_project_deleted_and_restored_under_its_id_never_uses_the_old_copy(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """A copy is named by the project row's random state key, not its id: a project deleted
    and brought back under the same id (a restore) starts from PostgreSQL."""
    pid = new_project(client, make_project, requester, 3)
    worker = make_worker(requester, "w5")
    for _ in range(3):
        answer(client, worker, pid, "w5")
    drain(settings, tmp_path)
    with database.transaction() as cur:
        cur.execute("SELECT owner_id FROM projects WHERE id = %s", (pid,))
        (owner,) = cur.fetchone() or (None,)
        cur.execute("DELETE FROM projects WHERE id = %s", (pid,))
        cur.execute(
            "INSERT INTO projects (id, owner_id, name, labels, overlap, lease_seconds, gold_rate)"
            " VALUES (%s, %s, 'p', %s, 3, 600, 0)",
            (pid, owner, LABELS),
        )
    post_tasks(client, requester, pid, [{"external_id": "t9"}])
    answer(client, worker, pid, "w5")
    drain(settings, tmp_path)
    (run,) = [r for r in runs(client, requester, pid) if r["status"] == "succeeded"]
    assert run["load"] == "full: no copy kept" and run["answers"] == 1
    assert set(published(database, pid)) == {"t9"}


def test_what_a_worker_that_died_writing_its_copy_left_is_never_published(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """A worker killed while appending leaves rows past the count its meta file gives; one
    killed in a full rewrite leaves no meta file; a copy damaged on disk fails its checksum.
    In each case the next run publishes what a full read would."""
    pid = new_project(client, make_project, requester, 12)
    worker = make_worker(requester, "w2")

    def step() -> None:
        for _ in range(3):
            answer(client, worker, pid, "w2")
        drain(settings, tmp_path)

    step()
    (folder,) = [meta.parent for meta in tmp_path.rglob("meta.json")]
    for name in ("id", "task", "worker", "label", "proposal"):  # a dead appender's rows
        with (folder / name).open("ab") as f:
            f.write(np.arange(7, dtype="<i8").tobytes())
    (folder / "meta.json.tmp").write_text("{")  # and its unfinished meta
    step()
    with (folder / "id").open("r+b") as f:  # a damaged copy: another id in the first row
        f.write(np.array([123456789], dtype="<i8").tobytes())
    step()
    (folder / "meta.json").unlink()  # died in a full rewrite
    (folder / "task").write_bytes(b"")
    step()
    assert loads(client, requester, pid) == [
        "full: no copy kept",
        "incremental",
        "full: damaged copy",
        "full: no copy kept",
    ]
    reference = published(database, pid)
    assert sum(r[2] for r in reference.values()) == 12
    request_run(client, requester, pid)
    drain(settings, None)
    assert_same(published(database, pid), reference)


def test_a_ban_leaves_the_workers_answers_out_of_an_incremental_run(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    pid = new_project(client, make_project, requester, 4)
    good, bad = make_worker(requester, "w5"), make_worker(requester, "w0")
    for w in (good, bad):
        for _ in range(4):
            answer(client, w, pid, "w5")
    drain(settings, tmp_path)
    assert {r[2] for r in published(database, pid).values()} == {2}
    bad_id = worker_ids(client, requester)["w0"]
    r = client.post(f"/api/v1/projects/{pid}/workers/{bad_id}/ban", headers=auth(requester))
    assert r.status_code == 200
    request_run(client, requester, pid)
    drain(settings, tmp_path)
    assert {r[2] for r in published(database, pid).values()} == {1}
    r = client.post(f"/api/v1/projects/{pid}/workers/{bad_id}/unban", headers=auth(requester))
    request_run(client, requester, pid)
    drain(settings, tmp_path)
    assert {r[2] for r in published(database, pid).values()} == {2}
    assert loads(client, requester, pid) == ["full: no copy kept", "incremental", "incremental"]


def test_an_answer_whose_transaction_started_first_and_committed_last_is_read(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    """Transaction ids are handed out at a transaction's first write, not at its commit: an
    answer in a transaction with a lower id can commit after a run read a higher one. The
    copy records its snapshot's in-progress transactions, so the next run still reads it."""
    pid = new_project(client, make_project, requester, 4)
    slow, fast = make_worker(requester, "w1"), make_worker(requester, "w2")
    ids = worker_ids(client, requester)
    answer(client, fast, pid, "w2")
    drain(settings, tmp_path)  # the copy exists: 1 answer

    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(slow))
    assert r.status_code == 201
    held_id = r.json["assignment_id"]
    with database.transaction() as cur:  # the late transaction, committed at the block's end
        cur.execute("SELECT pg_current_xact_id()::text::bigint")  # its id, taken first
        (late_xid,) = cur.fetchone() or (0,)
        answer(client, fast, pid, "w2")  # a higher id, committed at once
        cur.execute(
            "SELECT max(answered_xid::text::bigint) FROM assignments WHERE project_id = %s",
            (pid,),
        )
        assert (cur.fetchone() or (0,))[0] > late_xid
        held = assignments.lock(cur, held_id)
        assert assignments.answer(cur, held, ids["w1"], 0) == assignments.Outcome.CREATED
        drain(settings, tmp_path)  # reads the fast answer; the slow one is not committed
        assert sum(r[2] for r in published(database, pid).values()) == 2
    request_run(client, requester, pid)
    drain(settings, tmp_path)
    assert sum(r[2] for r in published(database, pid).values()) == 3
    assert loads(client, requester, pid) == ["full: no copy kept", "incremental", "incremental"]


def test_a_deleted_answer_and_the_hourly_reload_make_a_run_read_all_answers(
    client, requester, make_worker, make_project, settings, database: Database, tmp_path
) -> None:
    pid = new_project(client, make_project, requester, 6)
    worker = make_worker(requester, "w4")
    for _ in range(4):
        answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    with database.transaction() as cur:  # an answer removed by hand
        cur.execute(
            "DELETE FROM assignments WHERE id = (SELECT max(id) FROM assignments"
            " WHERE project_id = %s AND status = 'answered')",
            (pid,),
        )
        cur.execute(
            "UPDATE tasks SET answers = answers - 1, taken = taken - 1 WHERE id = ("
            " SELECT t.id FROM tasks t LEFT JOIN assignments a ON a.task_id = t.id"
            " WHERE t.project_id = %s AND t.answers > 0 GROUP BY t.id"
            " HAVING count(a.id) < max(t.answers) LIMIT 1)",
            (pid,),
        )
    request_run(client, requester, pid)
    drain(settings, tmp_path)
    answer(client, worker, pid, "w4")
    drain(settings, tmp_path)
    request_run(client, requester, pid)
    drain(settings, tmp_path, full_reload_seconds=0)  # the copy is older than that
    assert loads(client, requester, pid) == [
        "full: no copy kept",
        "full: answers changed",
        "incremental",
        "full: scheduled reload",
    ]
    assert sum(r[2] for r in published(database, pid).values()) == 4
